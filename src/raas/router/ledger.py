"""Training examples from the ledger: which tier served each turn of each final episode, and
whether the contract judged the episode resolved by the AI.

For every episode whose outcome is final at `as_of` (by default the time of the buyer's last
event, so that windows still open at the end of the data are left out):
- each customer message answered by at least one model call is a turn, and a request as the
  router saw it then: the message's text, the episode's intent and channel, the turn's number
  and the failures earlier in the episode (answers escalated to another tier at once, and the
  customer saying the problem was not resolved);
- the turn gives one example per tier that served it, labelled resolved when the outcome is
  `ai_resolution`, except that a tier whose every call in the turn was followed at once by a
  call on another tier (an in-turn escalation: its answer was not used) is labelled not
  resolved;
- each example weighs 1/(the episode's turns), so that every episode counts once whatever its
  length;
- episodes without any model call (served by humans only) give no example.
Entries hold message text only as a salted commitment ("sha256:..."); the cleartext is read from
the ledger's disclosures (checked against the commitment) unless `reveal_text` is off. Where the
text was redacted, or is withheld so, the features are intent, channel, turn and failures alone,
and the report counts those turns.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import msgspec

from raas.core.commitments import DisclosureError
from raas.core.contract import Contract
from raas.core.episodes import Entry, derive_episodes
from raas.core.events import CustomerConfirmation, Event, Message, ModelCall
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
    turns: int = 0  # of the final episodes
    text_plain: int = 0  # turns whose text was read
    text_committed: int = 0  # turns with only a commitment: no text features
    text_absent: int = 0
    escalated_calls: int = 0
    examples_by_tier: dict[str, int] = msgspec.field(default_factory=dict)
    resolved_by_tier: dict[str, int] = msgspec.field(default_factory=dict)


class _Turn(msgspec.Struct):
    request: RouteRequest
    labels: dict[str, bool]  # tier -> its answer stood (not escalated at once)


class _Pending(msgspec.Struct):
    final_at: datetime
    resolved: bool
    turns: list[_Turn]


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

    `reveal_text` off trains on intent, channel, turn and failures only, never reading text.
    """
    tenant = contract.buyer
    window = contract.window
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
        for event, _ in decoded:
            moment = event.utc_time
            latest = moment if latest is None or moment > latest else latest
        for episode in derive_episodes(entries, link_horizon=window):
            report.episodes += 1
            outcome = judge_episode(contract, episode)
            pairs = sorted(
                (by_hash[leaf] for leaf in episode.event_hashes if leaf in by_hash),
                key=lambda pair: (pair[0].time, pair[0].source, pair[0].id),
            )
            context = RouteRequest(
                intent=episode.intent, channel=episode.channels[0] if episode.channels else None
            )
            turns = _turns(pairs, context, reveal_text, report)
            if not turns:
                report.without_model_call += 1
                continue
            resolved = outcome.kind == "ai_resolution"
            pending.append(_Pending(outcome.final_at, resolved, turns))

    cutoff = as_of if as_of is not None else latest
    report.as_of = cutoff
    examples: list[Example] = []
    for item in pending:
        if cutoff is None or item.final_at > cutoff:
            report.not_final += 1
            continue
        report.final += 1
        report.resolved += item.resolved
        weight = 1.0 / len(item.turns)
        for turn in item.turns:
            report.turns += 1
            state = text_state(turn.request.text)
            if state == "plain":
                report.text_plain += 1
            elif state == "committed":
                report.text_committed += 1
            else:
                report.text_absent += 1
            features = extract(turn.request, config)
            for tier, stood in turn.labels.items():
                label = item.resolved and stood
                examples.append(Example(features, tier, label, weight))
                report.examples_by_tier[tier] = report.examples_by_tier.get(tier, 0) + 1
                report.resolved_by_tier[tier] = report.resolved_by_tier.get(tier, 0) + label
    return examples, report


def _turns(
    pairs: list[tuple[Event, StoredEvent]],
    context: RouteRequest,
    reveal_text: bool,
    report: LedgerReport,
) -> list[_Turn]:
    """The episode's turns that a model answered, each as the router saw it."""
    turns: list[_Turn] = []
    failures = 0
    number = 0
    message: StoredEvent | None = None
    calls: list[str] = []  # tiers of the model calls answering the current message, in order
    escalated: list[bool] = []  # whether each was followed at once by another tier's call
    previous_was_call = False

    def close_turn() -> None:
        if message is None or not calls:
            return
        labels: dict[str, bool] = {}
        for tier, was_escalated in zip(calls, escalated, strict=True):
            labels[tier] = labels.get(tier, False) or not was_escalated
        request = msgspec.structs.replace(
            context,
            text=_text_of(message, reveal_text),
            turn=number,
            earlier_failures=failures_before_turn,
        )
        turns.append(_Turn(request, labels))

    failures_before_turn = 0
    for event, item in pairs:
        data = event.data
        if isinstance(data, Message) and data.role == "customer":
            close_turn()
            number += 1
            message, calls, escalated = item, [], []
            failures_before_turn = failures
            previous_was_call = False
        elif isinstance(data, ModelCall):
            if previous_was_call and calls and calls[-1] != data.tier:
                escalated[-1] = True
                failures += 1
                report.escalated_calls += 1
            if message is not None:
                calls.append(data.tier)
                escalated.append(False)
            previous_was_call = True
        else:
            if isinstance(data, CustomerConfirmation) and not data.resolved:
                failures += 1
            previous_was_call = False
    close_turn()
    return turns


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
