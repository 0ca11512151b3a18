"""Deriving again only what new entries change (`relink`) gives exactly the episodes of deriving
the customer's whole log. What would break: an incremental table that keeps an episode a late
event, a recontact or a returning conversation changed, or loses one it split off."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from factories import NOVEMBER, SOURCE, conversation, entries, holdout
from raas.core.episodes import (
    Entry,
    Episode,
    customer_holdout_group,
    derive_episodes,
    derive_episodes_and_segments,
    derive_groups,
    derive_relinked,
    relink,
)
from raas.core.events import (
    ConversationClosed,
    ConversationStarted,
    Csat,
    CustomerConfirmation,
    Event,
    Handoff,
    HoldoutAssignment,
    Message,
    ModelCall,
    Recontact,
    ResolutionClaimed,
    make_event,
)

HORIZON = timedelta(hours=72)
CONVERSATIONS = ["c0", "c1", "c2", "c3", "c4"]
INTENTS = [None, "refund", "billing"]
DATA = st.one_of(
    st.builds(ConversationStarted, channel=st.sampled_from(["chat", "voice"])),
    st.just(ConversationClosed()),
    st.builds(Message, role=st.sampled_from(["customer", "ai", "human_agent"]), text=st.just("x")),
    st.builds(
        ModelCall,
        tier=st.sampled_from(["small", "large"]),
        model=st.just("m"),
        input_tokens=st.just(10),
        output_tokens=st.just(5),
        latency_ms=st.integers(1, 900),
        cost=st.sampled_from([Decimal("0.01"), Decimal("0.0125")]),
    ),
    st.builds(Handoff, context_passed=st.booleans()),
    st.builds(ResolutionClaimed, by=st.sampled_from(["ai", "human_agent"])),
    st.builds(CustomerConfirmation, resolved=st.booleans()),
    st.builds(Csat, score=st.integers(1, 5)),
    st.builds(Recontact, previous_conversation=st.sampled_from(CONVERSATIONS)),
)


@st.composite
def logs(draw: st.DrawFn) -> list[Event]:
    """One customer's events over ten days, in the order they arrive (not their times')."""
    events = []
    for number in range(draw(st.integers(1, 40))):
        events.append(
            make_event(
                draw(DATA),
                id=f"e{number}",
                source=SOURCE,
                time=NOVEMBER + timedelta(hours=draw(st.integers(0, 240))),
                tenant="acme",
                customer="customer-1",
                conversation=draw(st.sampled_from(CONVERSATIONS)),
                intent=draw(st.sampled_from(INTENTS)),
            )
        )
    for number in range(draw(st.integers(0, 2))):
        assignment = make_event(
            HoldoutAssignment(
                group=draw(st.sampled_from(["treatment", "control"])), experiment="campaign-1"
            ),
            id=f"holdout-{number}",
            source=SOURCE,
            time=NOVEMBER + timedelta(hours=draw(st.integers(0, 240))),
            tenant="acme",
            customer="customer-1",
            conversation=draw(st.sampled_from(CONVERSATIONS)),
        )
        events.insert(draw(st.integers(0, len(events))), assignment)
    return events


def is_holdout(entry: Entry) -> bool:
    return isinstance(entry.event.data, HoldoutAssignment)


def incrementally(earlier: list[Entry], new: list[Entry]) -> list[Episode]:
    """The customer's episodes after `new` arrives, from what `earlier` gave and `relink`; a
    new holdout assignment sets the group of the episodes that stand, and adds its hash."""
    before, segments = derive_episodes_and_segments(earlier, link_horizon=HORIZON)
    holdouts = [e for e in new if is_holdout(e)]
    new = [e for e in new if not is_holdout(e)]
    touched = {entry.event.conversation for entry in new}
    touched_entries = [
        e for e in earlier if e.event.conversation in touched and not is_holdout(e)
    ] + new
    found = relink(segments, touched, touched_entries, link_horizon=HORIZON)
    assert found.conversations >= touched & {s.conversation for s in found.segments}
    customer_facts = [e for e in earlier if is_holdout(e)] + holdouts
    given_entries = (
        touched_entries
        + [
            e
            for e in earlier
            if e.event.conversation in found.conversations - touched and not is_holdout(e)
        ]
        + customer_facts
    )
    derived = derive_groups(given_entries, found.groups)
    # From the touched conversations relink put together, and the others' entries alone.
    assert derive_relinked(found, given_entries[len(touched_entries) :]) == derived
    stale = set(found.stale)
    assert stale <= {episode.id for episode in before}
    kept = [episode for episode in before if episode.id not in stale]
    if holdouts:
        group = customer_holdout_group(customer_facts)
        hashes = [entry.leaf_hash.hex() for entry in holdouts]
        kept = [
            replace(
                episode,
                holdout_group=group,
                event_hashes=tuple(sorted([*episode.event_hashes, *hashes])),
            )
            for episode in kept
        ]
    return sorted([*kept, *derived], key=lambda episode: episode.id)


@settings(max_examples=300, deadline=None)
@given(events=logs(), cut=st.integers(0, 40))
def test_relinking_the_new_entries_gives_the_episodes_of_the_whole_log(
    events: list[Event], cut: int
) -> None:
    stored = entries(events)
    earlier, new = stored[: min(cut, len(stored))], stored[min(cut, len(stored)) :]
    whole = sorted(derive_episodes(stored, link_horizon=HORIZON), key=lambda e: e.id)
    assert incrementally(earlier, new) == whole
    _, segments = derive_episodes_and_segments(stored, link_horizon=HORIZON)
    touched = {entry.event.conversation for entry in new if not is_holdout(entry)}
    found = relink(
        derive_episodes_and_segments(earlier, link_horizon=HORIZON)[1],
        touched,
        [e for e in stored if e.event.conversation in touched and not is_holdout(e)],
        link_horizon=HORIZON,
    )
    assert found.segments == segments  # what the next update starts from


def test_a_returning_conversation_derives_only_the_episode_it_joins() -> None:
    first = conversation("c1", start=NOVEMBER, intents=("refund",))
    other = conversation("c2", start=NOVEMBER + timedelta(days=5), intents=("billing",))
    earlier = entries(first + other)
    back = entries(conversation("c3", start=NOVEMBER + timedelta(hours=30), intents=("refund",)))
    _, segments = derive_episodes_and_segments(earlier, link_horizon=HORIZON)
    found = relink(segments, {"c3"}, back, link_horizon=HORIZON)
    assert found.stale == ["c1#refund"]  # c3 joins it within the horizon
    assert found.groups == [(("c1", "refund"), ("c3", "refund"))]
    assert found.conversations == {"c1", "c3"}  # c2's entries need not be read
    assert incrementally(earlier, back) == sorted(
        derive_episodes(earlier + back, link_horizon=HORIZON), key=lambda e: e.id
    )


def test_a_holdout_assignment_among_the_touched_entries_is_refused_naming_why() -> None:
    with pytest.raises(ValueError, match="holdout assignment belongs to no segment"):
        relink([], {"holdout-customer-1"}, entries([holdout("customer-1", "control")]))


def test_deriving_what_relink_found_refuses_entries_of_the_touched_conversations() -> None:
    earlier = entries(conversation("c1", start=NOVEMBER, intents=("refund",)))
    back = entries(conversation("c3", start=NOVEMBER + timedelta(hours=30), intents=("refund",)))
    _, segments = derive_episodes_and_segments(earlier, link_horizon=HORIZON)
    found = relink(segments, {"c3"}, back, link_horizon=HORIZON)
    assert derive_relinked(found, earlier) == derive_groups(earlier + back, found.groups)
    with pytest.raises(ValueError, match="other conversations"):
        derive_relinked(found, earlier + back[:1])
