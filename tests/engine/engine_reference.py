"""The reference meaning of a period's classification, folded in plain Python over episodes:
what the SQL engines must give. Each episode is classified by `CompiledPlan.classify` on its
`episode_features` and is final at `CompiledPlan.final_at`; the unit counted is the episode or,
per conversation, the episodes that started in one conversation, folded by
`CompiledPlan.conversation_verdict` and final when the last of them is (as `raas.core.settle`
counts); units are placed against as_of and the period."""

from __future__ import annotations

import decimal
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

import msgspec

from raas.core.episodes import Episode
from raas.core.features import episode_features
from raas.core.periods import Period
from raas.core.plan import CompiledPlan, Plan, Verdict
from raas.engine.duckdb_engine import ClassifiedOutcome


class ReferencePeriod(msgspec.Struct, frozen=True, kw_only=True):
    """The classification part of a `ClassifiedPeriod`."""

    outcomes: tuple[ClassifiedOutcome, ...]
    provisional: int
    earlier_periods: int
    later_periods: int


def reference_period(
    plan: Plan, episodes: Iterable[Episode], *, period: Period, as_of: datetime
) -> ReferencePeriod:
    compiled = CompiledPlan(plan)
    judged: list[tuple[Episode, Verdict, datetime]] = []
    for episode in episodes:
        row = episode_features(episode)
        verdict = compiled.classify(row)
        judged.append(
            (episode, verdict, compiled.final_at(verdict.outcome, row, episode.last_activity_at))
        )

    units: list[tuple[str, Verdict, datetime]]
    if plan.count == "per_problem":
        units = [(episode.id, verdict, final_at) for episode, verdict, final_at in judged]
    else:
        by_conversation: dict[tuple[str, str], list[tuple[Episode, Verdict, datetime]]] = {}
        for item in judged:
            key = (item[0].customer, item[0].conversations[0])
            by_conversation.setdefault(key, []).append(item)
        units = []
        for members in by_conversation.values():
            counted, verdict = compiled.conversation_verdict(
                [(episode.id, verdict) for episode, verdict, _ in members]
            )
            units.append((counted, verdict, max(final_at for _, _, final_at in members)))

    provisional = earlier = later = 0
    groups: dict[tuple[str, bool, str], list[tuple[str, Decimal]]] = {}
    for unit, verdict, final_at in units:
        if final_at > as_of:
            provisional += 1
        elif final_at < period.start:
            earlier += 1
        elif final_at >= period.end:
            later += 1
        else:
            key = (verdict.outcome, verdict.billable, verdict.gate or "")
            groups.setdefault(key, []).append((unit, verdict.weight))

    outcomes = []
    for (name, billable, gate), items in sorted(groups.items()):
        items.sort()
        quantity = Decimal(0)
        with decimal.localcontext(decimal.Context(prec=100)):
            for _, weight in items:
                quantity += weight
        outcomes.append(
            ClassifiedOutcome(
                name=name,
                billable=billable,
                gate=gate or None,
                count=len(items),
                quantity=quantity,
                units=tuple(unit for unit, _ in items),
                weights=tuple(weight for _, weight in items),
            )
        )
    return ReferencePeriod(
        outcomes=tuple(outcomes),
        provisional=provisional,
        earlier_periods=earlier,
        later_periods=later,
    )
