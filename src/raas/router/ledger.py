"""Training examples from the ledger: which tier served each final episode, and whether the
contract judged it resolved by the AI.

For every episode whose outcome is final at `as_of` (by default the time of the buyer's last
event, so that windows still open at the end of the data are left out):
- the request is the episode's first customer message, with the episode's intent and channel,
  at turn 1 with no earlier failure (what the router sees when it first decides). Entries hold
  message text only as a salted commitment ("sha256:..."); its cleartext is read from the
  ledger's disclosures (checked against the commitment) unless `reveal_text` is off. Where the
  text was redacted, or is withheld so, the features are intent, channel and turn alone, and
  the report says how many were so;
- each tier that served a model call in the episode gives one example, labelled resolved when
  the outcome is `ai_resolution`, except that a tier whose every call was followed at once by
  a call on another tier (an in-turn escalation: its answer was not used) is labelled not
  resolved;
- episodes without any model call (served by humans only) give no example.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import msgspec

from raas.core.commitments import DisclosureError
from raas.core.contract import Contract
from raas.core.episodes import Entry, derive_episodes
from raas.core.events import Event, Message, ModelCall
from raas.core.judge import judge_episode
from raas.ledger.store import LedgerStore, StoredEvent
from raas.router.features import FeatureConfig, RouteRequest, extract, text_state
from raas.router.train import Example


class LedgerReport(msgspec.Struct, kw_only=True):
    """What reading the ledger found, for the person training the router."""

    tenant: str
    as_of: datetime | None = None
    events: int = 0
    episodes: int = 0
    final: int = 0  # with a model call and final at as_of: the episodes learned from
    not_final: int = 0  # with a model call, window still open at as_of
    without_model_call: int = 0
    resolved: int = 0
    text_plain: int = 0
    text_committed: int = 0  # only a commitment in the ledger: intent/channel/turn features
    text_absent: int = 0
    escalated_calls: int = 0
    examples_by_tier: dict[str, int] = msgspec.field(default_factory=dict)
    resolved_by_tier: dict[str, int] = msgspec.field(default_factory=dict)


class _Pending(msgspec.Struct):
    final_at: datetime
    request: RouteRequest
    labels: dict[str, bool]
    resolved: bool


def examples_from_ledger(
    ledger: LedgerStore,
    contract: Contract,
    config: FeatureConfig,
    *,
    as_of: datetime | None = None,
    reveal_text: bool = True,
    on_customer: Callable[[int], None] | None = None,
) -> tuple[list[Example], LedgerReport]:
    """Examples for every final episode of the contract's buyer, and a report of what was read.

    `reveal_text` off trains on intent, channel and turn only, never reading a message's text.
    """
    tenant = contract.buyer
    window = timedelta(hours=contract.outcomes.ai_resolution.recontact_window_hours)
    report = LedgerReport(tenant=tenant)
    pending: list[_Pending] = []
    latest: datetime | None = None
    for _customer, stored in ledger.iter_customers(tenant):
        if on_customer is not None:
            on_customer(len(stored))
        decoded = [(item.event, item) for item in stored]  # decode each entry once
        entries = [Entry(event, item.leaf_hash) for event, item in decoded]
        report.events += len(entries)
        by_hash = {item.leaf_hash.hex(): (event, item) for event, item in decoded}
        for entry in entries:
            moment = entry.event.utc_time
            latest = moment if latest is None or moment > latest else latest
        for episode in derive_episodes(entries, link_horizon=window):
            report.episodes += 1
            outcome = judge_episode(contract, episode)
            pairs = sorted(
                (by_hash[leaf] for leaf in episode.event_hashes if leaf in by_hash),
                key=lambda pair: (pair[0].time, pair[0].source, pair[0].id),
            )
            events = [event for event, _ in pairs]
            labels = _tier_labels(events, outcome.kind == "ai_resolution", report)
            if not labels:
                report.without_model_call += 1
                continue
            first = _first_customer_message(pairs)
            text = "" if first is None else _text_of(first, reveal_text)
            request = RouteRequest(
                text=text,
                intent=episode.intent,
                channel=episode.channels[0] if episode.channels else None,
            )
            pending.append(
                _Pending(outcome.final_at, request, labels, outcome.kind == "ai_resolution")
            )

    cutoff = as_of if as_of is not None else latest
    report.as_of = cutoff
    examples: list[Example] = []
    for item in pending:
        if cutoff is None or item.final_at > cutoff:
            report.not_final += 1
            continue
        report.final += 1
        report.resolved += item.resolved
        state = text_state(item.request.text)
        if state == "plain":
            report.text_plain += 1
        elif state == "committed":
            report.text_committed += 1
        else:
            report.text_absent += 1
        features = extract(item.request, config)
        for tier, resolved in item.labels.items():
            examples.append(Example(features, tier, resolved))
            report.examples_by_tier[tier] = report.examples_by_tier.get(tier, 0) + 1
            report.resolved_by_tier[tier] = report.resolved_by_tier.get(tier, 0) + resolved
    return examples, report


def _first_customer_message(pairs: list[tuple[Event, StoredEvent]]) -> StoredEvent | None:
    for event, item in pairs:
        data = event.data
        if isinstance(data, Message) and data.role == "customer":
            return item
    return None


def _text_of(stored: StoredEvent, reveal_text: bool) -> str:
    """The message's cleartext if the ledger discloses it (and we may read it), else what the
    entry holds: its commitment."""
    committed = stored.event.data
    assert isinstance(committed, Message)
    if not reveal_text:
        return committed.text
    try:
        revealed = stored.reveal().data
    except DisclosureError:
        return committed.text  # disclosures that do not match the entry are not to be trusted
    return revealed.text if isinstance(revealed, Message) else committed.text


def _tier_labels(events: list[Event], resolved: bool, report: LedgerReport) -> dict[str, bool]:
    """Per tier that served the episode: resolved, unless every call of it was escalated."""
    calls: dict[str, int] = {}
    escalated: dict[str, int] = {}
    previous: ModelCall | None = None
    for event in events:
        data = event.data
        if isinstance(data, ModelCall):
            calls[data.tier] = calls.get(data.tier, 0) + 1
            if previous is not None and previous.tier != data.tier:
                escalated[previous.tier] = escalated.get(previous.tier, 0) + 1
                report.escalated_calls += 1
            previous = data
        else:
            previous = None
    return {tier: resolved and escalated.get(tier, 0) < count for tier, count in calls.items()}
