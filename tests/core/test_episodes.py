"""Episode derivation: what breaks here is the unit of billing itself (double counts, lost
problems, recontacts that do not join their episode)."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

from factories import NOVEMBER, conversation, entries, last_ai_answer
from raas.core.episodes import derive_episodes


def test_one_problem_one_conversation_gives_one_episode_with_its_features() -> None:
    events = conversation("c1", confirm=True, csat=5, model_cost="0.0125")
    [episode] = derive_episodes(entries(events))
    assert episode.id == "c1#refund"
    assert episode.conversations == ("c1",)
    assert episode.channels == ("chat",)
    assert episode.ai_answered and not episode.handed_off
    assert episode.confirmed is True and episode.csat == 5
    assert episode.model_calls == 1 and episode.model_cost == Decimal("0.0125")
    assert episode.tiers == ("small",) and episode.models == ("small-model",)
    assert episode.resolution_at == last_ai_answer(events, "refund")
    assert (
        episode.time_to_resolution_seconds
        == (last_ai_answer(events, "refund") - NOVEMBER).total_seconds()
    )
    assert len(episode.event_hashes) == len(events)


def test_several_problems_in_one_conversation_are_several_episodes() -> None:
    events = conversation("c1", intents=("refund", "address_change", "invoice_copy"))
    episodes = derive_episodes(entries(events))
    assert [episode.intent for episode in episodes] == ["refund", "address_change", "invoice_copy"]
    # Conversation-level facts (start, close) stand behind every episode of the conversation.
    hashes = [set(episode.event_hashes) for episode in episodes]
    assert set.intersection(*hashes), "start and close events are shared"
    assert sum(episode.model_calls for episode in episodes) == 3


def test_recontact_about_the_same_intent_joins_the_earlier_episode() -> None:
    first = conversation("c1")
    later = conversation("c2", start=NOVEMBER + timedelta(hours=5), recontact_of="c1")
    [episode] = derive_episodes(entries(first + later))
    assert episode.conversations == ("c1", "c2")
    assert episode.recontact_at == NOVEMBER + timedelta(hours=5)
    assert episode.resolution_at == last_ai_answer(first, "refund")


def test_recontact_is_inferred_without_a_recontact_event_within_the_horizon() -> None:
    first = conversation("c1")
    later = conversation("c2", start=NOVEMBER + timedelta(days=3))
    much_later = conversation("c3", start=NOVEMBER + timedelta(days=90))
    episodes = derive_episodes(entries(first + later + much_later))
    assert [episode.conversations for episode in episodes] == [("c1", "c2"), ("c3",)]


def test_other_intent_or_other_customer_does_not_join() -> None:
    first = conversation("c1", intents=("refund",))
    other_intent = conversation("c2", intents=("delivery",), start=NOVEMBER + timedelta(hours=1))
    assert len(derive_episodes(entries(first + other_intent))) == 2


def test_handoff_features() -> None:
    [episode] = derive_episodes(entries(conversation("c1", handoff="without")))
    assert episode.handed_off and episode.context_passed is False and not episode.ai_answered
    [episode] = derive_episodes(entries(conversation("c1", handoff="with")))
    assert episode.context_passed is True


def test_arrival_order_and_duplicates_do_not_change_episodes() -> None:
    events = (
        conversation("c1", intents=("refund", "delivery"), confirm=False)
        + conversation("c2", start=NOVEMBER + timedelta(hours=2), recontact_of="c1")
        + conversation("c3", intents=("delivery",), start=NOVEMBER + timedelta(days=2))
    )
    expected = derive_episodes(entries(events))
    rng = random.Random(7)
    for _ in range(20):
        shuffled = events + rng.sample(events, k=5)
        rng.shuffle(shuffled)
        assert derive_episodes(entries(shuffled)) == expected


def test_no_events_no_episodes() -> None:
    assert derive_episodes([]) == []


def test_holdout_assignment_belongs_to_every_episode_of_the_customer() -> None:
    from raas.core.events import HoldoutAssignment, make_event

    assignment = make_event(
        HoldoutAssignment(group="control", experiment="ai-vs-human"),
        id="h1",
        source="urn:test",
        time=NOVEMBER - timedelta(days=1),
        tenant="acme",
        customer="customer-1",
        conversation="c0",
    )
    events = [
        assignment,
        *conversation("c1"),
        *conversation("c2", intents=("delivery",), start=NOVEMBER + timedelta(days=10)),
    ]
    episodes = derive_episodes(entries(events))
    assert [episode.holdout_group for episode in episodes] == ["control", "control"]
    # The assignment is evidence for both, but does not move when the problems started.
    assert episodes[0].started_at == NOVEMBER


def test_csat_without_intent_rates_every_problem_of_its_conversation() -> None:
    from raas.core.events import Csat, make_event

    events = conversation("c1", intents=("refund", "delivery"))
    events.append(
        make_event(
            Csat(score=2),
            id="csat",
            source="urn:test",
            time=NOVEMBER + timedelta(hours=1),
            tenant="acme",
            customer="customer-1",
            conversation="c1",
        )
    )
    assert [episode.csat for episode in derive_episodes(entries(events))] == [2, 2]


def test_a_return_after_the_link_horizon_without_recontact_event_is_a_new_problem() -> None:
    first = conversation("c1")
    later = conversation("c2", start=NOVEMBER + timedelta(hours=80))
    explicit = conversation("c3", start=NOVEMBER + timedelta(days=20), recontact_of="c1")
    episodes = derive_episodes(entries(first + later + explicit))
    assert [episode.conversations for episode in episodes] == [("c1", "c3"), ("c2",)]


def test_disputes_are_part_of_no_episode() -> None:
    """A dispute is a fact about an invoice: it must neither make an episode nor join one."""
    from raas.core.disputes import dispute_event
    from raas.core.events import DisputeFiled, DisputeRuled, make_event

    filed = DisputeFiled(
        dispute_id="D-1", invoice_id="i", episodes=("c1#refund",), reason="r", filed_by="b"
    )
    ruled = DisputeRuled(dispute_id="D-1", ruling="upheld", ruled_by="r")
    events = conversation("c1")
    stray = make_event(  # even one sent under a customer's conversation, as a store may hold it
        ruled,
        id="d3",
        source="urn:test",
        time=NOVEMBER,
        tenant="acme",
        customer="customer-1",
        conversation="c1",
        intent="refund",
    )
    disputes = [
        dispute_event(filed, id="d1", source="urn:test", time=NOVEMBER, tenant="acme"),
        dispute_event(ruled, id="d2", source="urn:test", time=NOVEMBER, tenant="acme"),
    ]

    assert derive_episodes(entries(disputes)) == []
    assert derive_episodes(entries([*events, stray, *disputes])) == derive_episodes(entries(events))
