"""The judge: contract + episode -> outcome, with the reason that led to it. Pure.

An episode's features (`raas.core.features`) go through the contract's plan (`raas.core.plan`):
the exclusion rule, then the outcome rules in contract order (the first that matches names the
outcome), then the gates a billable outcome must pass. The outcome is provisional until it is
final (when the contract's window closes, or at the point in time its rule names, such as the
handoff) and final after; invoices bill final outcomes only, in the period in which they became
final. Counting per conversation folds the verdicts of a conversation's episodes into one, in
`raas.core.settle`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from decimal import Decimal

import msgspec

from raas.core.contract import Contract, format_one_rules
from raas.core.episodes import Episode
from raas.core.features import episode_features
from raas.core.plan import CompiledPlan, Plan, Verdict, plan_of

__all__ = ["Judge", "Outcome", "judge", "judge_episode"]


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """The verdict on one episode under one contract version, with the reason for it.

    `kind` is the outcome's name in the contract (or `excluded`, `unmatched`); `billable` is
    false for an outcome the contract does not charge, and for one a gate stopped (`gate`
    names it); `weight` is the episode's difficulty weight."""

    episode_id: str
    kind: str
    billable: bool
    final_at: datetime  # when the verdict can no longer change
    reason: str  # why, in words a buyer can check against the transcript
    weight: Decimal = Decimal(1)
    gate: str | None = None


class Judge:
    """A contract's plan, compiled once, applied to episode after episode."""

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        self.plan: Plan = plan_of(contract)
        self.compiled = CompiledPlan(self.plan)
        # A first-format contract keeps the wording its reasons always had.
        self._format_one = dict(contract.outcomes) == format_one_rules(contract.window)

    def classify(self, episode: Episode) -> tuple[dict[str, object], Verdict, datetime]:
        """The episode's feature row, its verdict and when the verdict is final."""
        row = episode_features(episode)
        verdict = self.compiled.classify(row)
        final_at = self.compiled.final_at(verdict.outcome, row, episode.last_activity_at)
        return row, verdict, final_at

    def judge(self, episode: Episode) -> Outcome:
        """The outcome of one episode."""
        row, verdict, final_at = self.classify(episode)
        reason = verdict.reason
        if self._format_one:
            reason = _format_one_reason(verdict.outcome, row, self.contract.window)
        return Outcome(
            episode_id=episode.id,
            kind=verdict.outcome,
            billable=verdict.billable,
            final_at=final_at,
            reason=reason,
            weight=verdict.weight,
            gate=verdict.gate,
        )


_last: tuple[Contract, Judge] | None = None


def judge_episode(contract: Contract, episode: Episode) -> Outcome:
    """The outcome of one episode under `contract` (the compiled plan is kept for the next call
    with the same contract object)."""
    global _last
    if _last is None or _last[0] is not contract:
        _last = (contract, Judge(contract))
    return _last[1].judge(episode)


def judge(contract: Contract, episodes: Iterable[Episode]) -> Iterator[Outcome]:
    """The outcome of each episode, in the order given."""
    compiled = Judge(contract)
    for episode in episodes:
        yield compiled.judge(episode)


def _format_one_reason(kind: str, row: Mapping[str, object], window: timedelta) -> str:
    """The reasons of the first format's four outcomes, in its words, from the features."""
    hours = int(window.total_seconds()) // 3600
    seconds = int(window.total_seconds())
    intent = row["intent"]
    recontact = row["recontact_delay"]
    if kind == "handoff":
        context = "with" if row["context_passed"] else "without"
        return f"handed off to a human {context} context"
    if kind == "unresolved":
        if row["resolution_at"] is None:
            return "the AI never answered and no human took over"
        return "the customer said the problem was not resolved"
    if kind == "reopened":
        assert isinstance(recontact, int)
        return (
            f"the customer came back about {intent!r} after {_duration(recontact)}, "
            f"inside the {hours}h window"
        )
    delay = row["confirmation_delay"]
    if row["confirmed"] is True and isinstance(delay, int) and delay < seconds:
        return "the customer confirmed the problem resolved"
    if isinstance(recontact, int):
        return f"the customer came back after {_duration(recontact)}, outside the {hours}h window"
    return f"the customer did not come back about {intent!r} within {hours}h"


def _duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s"
