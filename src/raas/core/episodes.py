"""Episodes: the unit that is judged, one customer problem (intent) followed across conversations.

`derive_episodes` is pure: it takes one customer's ledger entries and returns that customer's
episodes with the features contracts judge on. Entries are sorted first, so the order in which
events arrived never changes the result.

How events become episodes:
- an event belongs to the intent it names; an event without an intent (a model call, a CSAT
  answer, a handoff) belongs to the intent most recently named before it in its conversation,
  or to the conversation's first intent if none was named yet;
- conversation-level facts (started, closed, a CSAT answer that names no intent) belong to every
  episode of their conversation; a holdout assignment belongs to every episode of its customer;
- one (conversation, intent) is a segment; segments of the same customer and intent join one
  episode when the later one names the earlier conversation in a `recontact` event, or starts
  within `link_horizon` of the episode's last activity (settlement passes the contract's window:
  a return after it is a new problem unless the agent said it was a recontact). Otherwise the
  later one opens a new episode.
- disputes (facts about an issued invoice) belong to no episode;
- the window for judging opens at the AI's last answer (message or resolution claim) in the
  episode's first conversation; a recontact is the start of the episode's second segment.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final, NamedTuple

import msgspec

from raas.core.events import (
    ConversationClosed,
    ConversationStarted,
    Csat,
    CustomerConfirmation,
    DisputeFiled,
    DisputeRuled,
    Event,
    Handoff,
    HoldoutAssignment,
    Message,
    ModelCall,
    Recontact,
    ResolutionClaimed,
    ReviewVerdict,
)

# Without a `recontact` event, a return later than this after the episode's last activity is a
# new problem about the same intent, not the old one coming back.
LINK_HORIZON_DEFAULT: Final = timedelta(hours=72)
UNSPECIFIED_INTENT: Final = "unspecified"

_CONVERSATION_LEVEL = (ConversationStarted, ConversationClosed)
# Facts about invoices, in the ledger beside the customers' events but part of no episode.
_NOT_ABOUT_EPISODES = (DisputeFiled, DisputeRuled)


class Entry(NamedTuple):
    """An event as the ledger stored it: the event and the leaf hash that commits to it."""

    event: Event
    leaf_hash: bytes


class Episode(msgspec.Struct, frozen=True, kw_only=True):
    """One customer problem followed to its end, with the features contracts judge on."""

    id: str  # "<first conversation>#<intent>", stable across runs
    tenant: str
    customer: str
    intent: str
    conversations: tuple[str, ...]  # in order of their first event
    channels: tuple[str, ...]
    started_at: datetime
    last_activity_at: datetime
    ai_answered: bool  # the AI answered at least once
    resolution_at: datetime | None  # the AI's last answer in the first conversation
    handed_off: bool
    handoff_at: datetime | None  # the first time a human took over
    context_passed: bool | None  # None when not handed off
    confirmed: bool | None  # the customer's last answer; None when none
    confirmed_at: datetime | None
    csat: int | None  # the last CSAT answer
    recontact_at: datetime | None  # the start of the episode's second conversation
    customer_active_at: datetime | None  # the customer's first message after resolution_at
    recontact_delay_seconds: int | None  # recontact_at - resolution_at
    time_to_resolution_seconds: int | None  # resolution_at - started_at
    tiers: tuple[str, ...]
    models: tuple[str, ...]
    model_calls: int
    model_cost: Decimal
    input_tokens: int
    output_tokens: int
    latency_ms_total: int
    latency_ms_max: int
    review_passed: bool | None  # the last review verdict, if reviewed
    holdout_group: str | None
    event_hashes: tuple[str, ...]  # hex leaf hashes of the entries behind it, sorted


class _Segment:
    """One (conversation, intent) while episodes are being put together."""

    __slots__ = ("conversation", "entries", "intent", "previous_conversation", "started_at")

    def __init__(self, conversation: str, intent: str, started_at: datetime):
        self.conversation = conversation
        self.intent = intent
        self.started_at = started_at
        self.entries: list[Entry] = []
        self.previous_conversation: str | None = None


def _sort_key(entry: Entry) -> tuple[datetime, str, str]:
    event = entry.event
    return (event.time, event.source, event.id)


def derive_episodes(
    entries: Iterable[Entry], *, link_horizon: timedelta = LINK_HORIZON_DEFAULT
) -> list[Episode]:
    """One customer's entries -> that customer's episodes, in order of their start."""
    return derive_episodes_and_segments(entries, link_horizon=link_horizon)[0]


class SegmentSummary(NamedTuple):
    """What linking reads of one segment (a conversation's part about one intent): enough to
    link segments again when others join, without the entries behind it."""

    conversation: str
    intent: str
    started_at: datetime
    last_at: datetime  # its last entry's time (its start when it has none)
    previous_conversation: str | None  # named by its first `recontact` event


SegmentKey = tuple[str, str]  # (conversation, intent)


def derive_episodes_and_segments(
    entries: Iterable[Entry], *, link_horizon: timedelta = LINK_HORIZON_DEFAULT
) -> tuple[list[Episode], list[SegmentSummary]]:
    """`derive_episodes`, with the summaries of the customer's segments (in link order), which
    `relink` takes to derive again only what later entries change."""
    ordered, customer_facts = _ordered(entries)
    if not ordered and not customer_facts:
        return [], []
    segments, conversation_facts, channels = _segments(ordered)
    summaries = [_summary(segment) for segment in segments]
    groups = [[segments[at] for at in group] for group in _link(summaries, link_horizon)]
    episodes = [_episode(group, conversation_facts, customer_facts, channels) for group in groups]
    return episodes, summaries


class _Parts(NamedTuple):
    """What `_segments` makes of some conversations' entries; apart for each conversation."""

    segments: list[_Segment]
    conversation_facts: dict[str, list[Entry]]
    channels: dict[str, str]


class Relinked(NamedTuple):
    """What `relink` found: the customer's segments now, the ids of its earlier episodes that no
    longer stand as they were, and the groups of segments whose episodes must be derived
    (`derive_groups`, or `derive_relinked`) from the entries of `conversations`."""

    segments: list[SegmentSummary]
    stale: list[str]
    groups: list[tuple[SegmentKey, ...]]
    conversations: set[str]
    # The touched conversations put together (`derive_relinked` starts from them).
    touched: _Parts | None = None


def relink(
    before: Sequence[SegmentSummary],
    touched: Collection[str],
    touched_entries: Iterable[Entry],
    *,
    link_horizon: timedelta = LINK_HORIZON_DEFAULT,
) -> Relinked:
    """A customer's episodes after entries of the conversations `touched` arrived, as a change
    to those derived before (pure).

    `before` are the segments the customer's earlier episodes were derived from
    (`derive_episodes_and_segments`, or an earlier `relink`); `touched_entries` every entry of
    the touched conversations, earlier and new, but the holdout assignments: they belong to
    every episode of the customer and change only its holdout group (`customer_holdout_group`)
    and `event_hashes` (the caller sets those on the episodes that stand).

    Why this is exact: a segment depends on its own conversation's entries alone, and an
    episode on its group's segments, their conversations' facts and channels, and the
    customer's holdout assignments. A group made of the same segments as before, none of a
    touched conversation, gives the same episode; every other group is derived again.
    """
    ordered, customer_facts = _ordered(touched_entries)
    if customer_facts:
        raise ValueError(
            "a holdout assignment belongs to no segment: expected touched_entries without "
            f"them, found {customer_facts[0].event.id!r}"
        )
    parts = _Parts(*_segments(ordered))
    fresh = parts.segments
    kept = [summary for summary in before if summary.conversation not in touched]
    after = sorted(
        [*kept, *(_summary(segment) for segment in fresh)],
        key=lambda s: (s.started_at, s.conversation, s.intent),
    )
    old_groups = {_keys(before, group) for group in _link(before, link_horizon)}
    standing: set[tuple[SegmentKey, ...]] = set()
    groups: list[tuple[SegmentKey, ...]] = []
    for group in _link(after, link_horizon):
        keys = _keys(after, group)
        if keys in old_groups and not any(conversation in touched for conversation, _ in keys):
            standing.add(keys)
        else:
            groups.append(keys)
    stale = [_episode_id(keys) for keys in old_groups - standing]
    conversations = {conversation for keys in groups for conversation, _ in keys}
    return Relinked(after, sorted(stale), groups, conversations, parts)


def derive_groups(
    entries: Iterable[Entry], groups: Sequence[tuple[SegmentKey, ...]]
) -> list[Episode]:
    """The episodes of these groups of segments (from `relink`), given every entry of their
    conversations and the customer's holdout assignments (pure)."""
    ordered, customer_facts = _ordered(entries)
    segments, conversation_facts, channels = _segments(ordered)
    by_key = {(segment.conversation, segment.intent): segment for segment in segments}
    return [
        _episode([by_key[key] for key in keys], conversation_facts, customer_facts, channels)
        for keys in groups
    ]


def derive_relinked(found: Relinked, other_entries: Iterable[Entry]) -> list[Episode]:
    """`derive_groups` of `found.groups`, given the entries of their conversations that
    `relink` was not given (of `found.conversations` but the touched ones) and the customer's
    holdout assignments: the touched conversations are not put together again (pure). A
    conversation's segments, facts and channel come from its own entries alone, so those of
    the two sets of conversations are joined as they are."""
    if found.touched is None:
        raise ValueError("expected what relink found, with the touched conversations")
    touched = found.touched
    ordered, customer_facts = _ordered(other_entries)
    names = {segment.conversation for segment in touched.segments}
    if any(entry.event.conversation in names for entry in ordered):
        raise ValueError("expected entries of other conversations than the touched ones")
    segments, conversation_facts, channels = _segments(ordered)
    by_key = {
        (segment.conversation, segment.intent): segment
        for segment in (*touched.segments, *segments)
    }
    facts = {**touched.conversation_facts, **conversation_facts}
    all_channels = {**touched.channels, **channels}
    return [
        _episode([by_key[key] for key in keys], facts, customer_facts, all_channels)
        for keys in found.groups
    ]


def _ordered(entries: Iterable[Entry]) -> tuple[list[Entry], list[Entry]]:
    """The entries about episodes, once each and sorted, apart from the holdout assignments."""
    unique: dict[tuple[str, str], Entry] = {}
    for entry in entries:
        if isinstance(entry.event.data, _NOT_ABOUT_EPISODES):
            continue
        unique.setdefault((entry.event.source, entry.event.id), entry)
    ordered = sorted(unique.values(), key=_sort_key)
    customer_facts = [entry for entry in ordered if isinstance(entry.event.data, HoldoutAssignment)]
    if customer_facts:
        ordered = [
            entry for entry in ordered if not isinstance(entry.event.data, HoldoutAssignment)
        ]
    return ordered, customer_facts


def customer_holdout_group(entries: Iterable[Entry]) -> str | None:
    """The holdout group of every episode of the customer whose entries these are (its last
    assignment's; None when it has none): the one thing about an episode that a holdout
    assignment changes besides its `event_hashes`, which the episode table does not hold."""
    return _holdout_group(_ordered(entries)[1])


def _holdout_group(customer_facts: Sequence[Entry]) -> str | None:
    group: str | None = None
    for entry in customer_facts:
        assert isinstance(entry.event.data, HoldoutAssignment)
        group = entry.event.data.group
    return group


def _summary(segment: _Segment) -> SegmentSummary:
    return SegmentSummary(
        segment.conversation,
        segment.intent,
        segment.started_at,
        segment.entries[-1].event.time if segment.entries else segment.started_at,
        segment.previous_conversation,
    )


def _keys(summaries: Sequence[SegmentSummary], group: list[int]) -> tuple[SegmentKey, ...]:
    return tuple((summaries[at].conversation, summaries[at].intent) for at in group)


def _episode_id(keys: tuple[SegmentKey, ...]) -> str:
    return f"{keys[0][0]}#{keys[0][1]}"


def _segments(
    ordered: list[Entry],
) -> tuple[list[_Segment], dict[str, list[Entry]], dict[str, str]]:
    segments: dict[tuple[str, str], _Segment] = {}
    conversation_facts: dict[str, list[Entry]] = {}
    channels: dict[str, str] = {}
    current_intent: dict[str, str] = {}
    unplaced: dict[str, list[Entry]] = {}  # before the conversation named any intent

    for entry in ordered:
        event = entry.event
        conversation = event.conversation
        data = event.data
        if isinstance(data, _CONVERSATION_LEVEL) or (
            isinstance(data, Csat) and event.intent is None
        ):
            conversation_facts.setdefault(conversation, []).append(entry)
            if isinstance(data, ConversationStarted):
                channels.setdefault(conversation, data.channel)
            continue
        intent = event.intent or current_intent.get(conversation)
        if intent is None:
            unplaced.setdefault(conversation, []).append(entry)
            continue
        key = (conversation, intent)
        segment = segments.get(key)
        if segment is None:
            started_at = event.time
            if conversation not in current_intent:
                # The conversation's first problem starts when the conversation does, and takes
                # the facts seen before any intent was named.
                earlier = unplaced.get(conversation, []) + conversation_facts.get(conversation, [])
                started_at = min([started_at, *(fact.event.time for fact in earlier)])
            segment = _Segment(conversation, intent, started_at)
            segments[key] = segment
            segment.entries.extend(unplaced.pop(conversation, ()))
        current_intent[conversation] = intent
        if isinstance(data, Recontact) and segment.previous_conversation is None:
            segment.previous_conversation = data.previous_conversation
        segment.entries.append(entry)

    for conversation, pending in unplaced.items():
        segment = _Segment(conversation, UNSPECIFIED_INTENT, pending[0].event.time)
        segment.entries.extend(pending)
        segments[(conversation, UNSPECIFIED_INTENT)] = segment
    for conversation, facts in conversation_facts.items():
        if not any(key[0] == conversation for key in segments):
            segment = _Segment(conversation, UNSPECIFIED_INTENT, facts[0].event.time)
            segments[(conversation, UNSPECIFIED_INTENT)] = segment

    ordered_segments = sorted(
        segments.values(), key=lambda s: (s.started_at, s.conversation, s.intent)
    )
    return ordered_segments, conversation_facts, channels


def _link(segments: Sequence[SegmentSummary], link_horizon: timedelta) -> list[list[int]]:
    """The segments (in link order) grouped into episodes, as positions in `segments`."""
    groups: list[list[int]] = []
    last_at: list[datetime] = []  # per group, the latest activity of its segments
    group_of: dict[tuple[str, str], int] = {}
    latest_for_intent: dict[str, int] = {}
    for at, segment in enumerate(segments):
        group: int | None = None
        if segment.previous_conversation is not None:
            group = group_of.get((segment.previous_conversation, segment.intent))
        if group is None:
            candidate = latest_for_intent.get(segment.intent)
            if candidate is not None and segment.started_at - last_at[candidate] <= link_horizon:
                group = candidate
        if group is None:
            group = len(groups)
            groups.append([])
            last_at.append(segment.last_at)
        groups[group].append(at)
        last_at[group] = max(last_at[group], segment.last_at)
        group_of[(segment.conversation, segment.intent)] = group
        latest_for_intent[segment.intent] = group
    return groups


def _episode(
    group: list[_Segment],
    conversation_facts: dict[str, list[Entry]],
    customer_facts: list[Entry],
    channels: dict[str, str],
) -> Episode:
    first = group[0]
    conversations = tuple(dict.fromkeys(segment.conversation for segment in group))
    entries: list[Entry] = [entry for segment in group for entry in segment.entries]
    for conversation in conversations:
        entries.extend(conversation_facts.get(conversation, ()))
    entries.sort(key=_sort_key)
    first_conversation_answers = [
        entry.event.time for entry in first.entries if _is_ai_answer(entry.event)
    ]
    resolution_at = max(first_conversation_answers) if first_conversation_answers else None
    recontact_at = group[1].started_at if len(group) > 1 else None
    customer_active_at = (
        None
        if resolution_at is None
        else next(
            (
                entry.event.time
                for entry in entries
                if entry.event.time > resolution_at
                and isinstance(entry.event.data, Message)
                and entry.event.data.role == "customer"
            ),
            None,
        )
    )

    ai_answered = False
    handoff_at: datetime | None = None
    context_passed: bool | None = None
    confirmed: bool | None = None
    confirmed_at: datetime | None = None
    csat: int | None = None
    review_passed: bool | None = None
    tiers: set[str] = set()
    models: set[str] = set()
    model_calls = input_tokens = output_tokens = latency_total = latency_max = 0
    model_cost = Decimal(0)

    for entry in entries:
        event = entry.event
        data = event.data
        if isinstance(data, Message):
            if data.role == "ai":
                ai_answered = True
            elif data.role == "human_agent" and handoff_at is None:
                # A human answering is a takeover even if no handoff event was sent.
                handoff_at, context_passed = event.time, False
        elif isinstance(data, ModelCall):
            model_calls += 1
            tiers.add(data.tier)
            models.add(data.model)
            model_cost += data.cost
            input_tokens += data.input_tokens
            output_tokens += data.output_tokens
            latency_total += data.latency_ms
            latency_max = max(latency_max, data.latency_ms)
        elif isinstance(data, Handoff):
            if handoff_at is None:
                handoff_at, context_passed = event.time, data.context_passed
        elif isinstance(data, ResolutionClaimed):
            if data.by == "human_agent" and handoff_at is None:
                handoff_at, context_passed = event.time, False
        elif isinstance(data, CustomerConfirmation):
            confirmed, confirmed_at = data.resolved, event.time
        elif isinstance(data, Csat):
            csat = data.score
        elif isinstance(data, ReviewVerdict):
            review_passed = data.passed

    holdout_group = _holdout_group(customer_facts)
    started_at = entries[0].event.time
    return Episode(
        id=f"{first.conversation}#{first.intent}",
        tenant=entries[0].event.tenant,
        customer=entries[0].event.customer,
        intent=first.intent,
        conversations=conversations,
        channels=tuple(dict.fromkeys(channels[c] for c in conversations if c in channels)),
        started_at=started_at,
        last_activity_at=entries[-1].event.time,
        ai_answered=ai_answered,
        resolution_at=resolution_at,
        handed_off=handoff_at is not None,
        handoff_at=handoff_at,
        context_passed=context_passed,
        confirmed=confirmed,
        confirmed_at=confirmed_at,
        csat=csat,
        recontact_at=recontact_at,
        customer_active_at=customer_active_at,
        recontact_delay_seconds=(
            _seconds(recontact_at - resolution_at)
            if recontact_at is not None and resolution_at is not None
            else None
        ),
        time_to_resolution_seconds=(
            _seconds(resolution_at - started_at) if resolution_at is not None else None
        ),
        tiers=tuple(sorted(tiers)),
        models=tuple(sorted(models)),
        model_calls=model_calls,
        model_cost=model_cost,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        latency_ms_total=latency_total,
        latency_ms_max=latency_max,
        review_passed=review_passed,
        holdout_group=holdout_group,
        event_hashes=tuple(sorted(entry.leaf_hash.hex() for entry in [*entries, *customer_facts])),
    )


def _is_ai_answer(event: Event) -> bool:
    data = event.data
    if isinstance(data, Message):
        return data.role == "ai"
    return isinstance(data, ResolutionClaimed) and data.by == "ai"


def _seconds(delta: timedelta) -> int:
    # Whole seconds, truncated toward zero; windows are stated in hours, so this never decides.
    return int(delta.total_seconds())
