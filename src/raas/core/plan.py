"""A contract's outcome rules, compiled once into a plan every engine executes the same way.

The plan is plain data: which episodes are excluded, the outcome rules in order (the first that
matches names the episode's outcome), the quality gates a billable outcome must pass, the window
after which an outcome is final, the difficulty weights, and whether outcomes are counted per
problem or per conversation. `CompiledPlan.classify` is the reference meaning of a plan on one
episode's features, `CompiledPlan.final_at` says when that verdict can no longer change, and
`CompiledPlan.conversation_verdict` folds a conversation's verdicts into one when the contract
counts per conversation. The SQL engines compile the same plan and must agree with these row
for row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Final, Literal

import msgspec

from raas.core.expressions import Constant, Expression, Type, bind, compile_matcher
from raas.core.features import FEATURES

if TYPE_CHECKING:
    from raas.core.contract import Contract

__all__ = [
    "EXCLUDED",
    "NO_OUTCOME",
    "CompiledPlan",
    "Counting",
    "Gate",
    "OutcomeRule",
    "Plan",
    "Verdict",
    "bind_rule",
    "plan_of",
]

# The outcome of an episode that no rule matched, and of one the exclusion rule stopped.
NO_OUTCOME: Final = "unmatched"
EXCLUDED: Final = "excluded"

Counting = Literal["per_problem", "per_conversation"]


class OutcomeRule(msgspec.Struct, frozen=True, kw_only=True):
    """One outcome: its name, the rule that makes an episode one (text, bound against FEATURES
    when the plan is compiled), whether it is billed, and when it becomes final: when the
    contract's window closes (`final_at` None), or at the point in time a timestamp feature
    names (`handoff_at`: a handoff is final when it happens), falling back to the window
    when that feature is unknown."""

    name: str
    when: str
    billable: bool = True
    description: str = ""
    final_at: str | None = None


class Gate(msgspec.Struct, frozen=True, kw_only=True):
    """A condition every billable outcome must meet; failing it un-bills the episode."""

    name: str
    require: str
    description: str = ""


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """What settlement executes: the rules in contract order, the window, the counting unit,
    the exclusion rule, the gates and the difficulty weights."""

    rules: tuple[OutcomeRule, ...]
    window_seconds: int
    count: Counting = "per_problem"
    exclude: str | None = None
    gates: tuple[Gate, ...] = ()
    weight_feature: str | None = None
    weights: Mapping[str, Decimal] = msgspec.field(default_factory=dict)
    default_weight: Decimal = Decimal(1)

    def final_at(self, resolution_at: datetime | None, last_activity_at: datetime) -> datetime:
        """When the window closes: `window_seconds` after the AI's last answer (or after the
        last activity, when the AI never answered). An outcome whose rule states no `final_at`
        is final then."""
        start = resolution_at if resolution_at is not None else last_activity_at
        return start + timedelta(seconds=self.window_seconds)

    def not_billed_kinds(self) -> tuple[str, ...]:
        """The keys of an invoice's `not_billed`, fixed by the plan whatever the data: the
        unbilled outcomes in contract order, then each gate (outcomes it un-billed), then
        `excluded` when the plan excludes traffic, then `unmatched` unless a rule matches
        every episode (its text is `true`)."""
        kinds = [rule.name for rule in self.rules if not rule.billable]
        if any(rule.billable for rule in self.rules):
            kinds += [gate.name for gate in self.gates]
        if self.exclude is not None:
            kinds.append(EXCLUDED)
        if not any(_is_always_true(rule.when) for rule in self.rules):
            kinds.append(NO_OUTCOME)
        return tuple(kinds)


class Verdict(msgspec.Struct, frozen=True):
    """One episode's (or conversation's) classification: the outcome's name (a rule's name,
    NO_OUTCOME or EXCLUDED), whether it is billed, why, its difficulty weight, and the gate
    that un-billed it, if one did."""

    outcome: str
    billable: bool
    reason: str
    weight: Decimal
    gate: str | None = None


class CompiledPlan:
    """A plan with its rules bound and compiled to Python matchers (built once, used per row)."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.exclude = _matcher(plan.exclude) if plan.exclude else None
        self.rules = [(rule, _matcher(rule.when)) for rule in plan.rules]
        self.gates = [(gate, _matcher(gate.require)) for gate in plan.gates]
        self._rank = {rule.name: index for index, rule in enumerate(plan.rules)}
        self._rank[EXCLUDED] = -1
        self._rank[NO_OUTCOME] = len(plan.rules)
        self._final_at = {rule.name: rule.final_at for rule in plan.rules}

    def classify(self, row: Mapping[str, object]) -> Verdict:
        """The reference meaning of the plan on one episode's features."""
        plan = self.plan
        weight = plan.default_weight
        if plan.weight_feature is not None:
            key = row.get(plan.weight_feature)
            if isinstance(key, str) and key in plan.weights:
                weight = plan.weights[key]
        if self.exclude is not None and self.exclude(row):
            return Verdict(EXCLUDED, False, f"excluded traffic: {plan.exclude}", weight)
        for rule, matcher in self.rules:
            if not matcher(row):
                continue
            if rule.billable:
                for gate, require in self.gates:
                    if not require(row):
                        return Verdict(
                            rule.name,
                            False,
                            f"matched {rule.name} ({rule.when}) but failed the "
                            f"{gate.name} gate ({gate.require})",
                            weight,
                            gate.name,
                        )
            return Verdict(rule.name, rule.billable, f"matched {rule.name}: {rule.when}", weight)
        return Verdict(NO_OUTCOME, False, "no outcome rule matched", weight)

    def final_at(
        self, outcome: str, row: Mapping[str, object], last_activity_at: datetime
    ) -> datetime:
        """When the verdict `outcome` on this row can no longer change: at the timestamp its
        rule's `final_at` names when that is known, otherwise when the window closes."""
        feature = self._final_at.get(outcome)
        if feature is not None:
            instant = row.get(feature)
            if isinstance(instant, datetime):
                return instant
        resolution_at = row.get("resolution_at")
        assert resolution_at is None or isinstance(resolution_at, datetime)
        return self.plan.final_at(resolution_at, last_activity_at)

    def rank(self, outcome: str) -> int:
        """Where an outcome stands in contract order: EXCLUDED first, NO_OUTCOME last."""
        return self._rank[outcome]

    def conversation_verdict(self, verdicts: Sequence[tuple[str, Verdict]]) -> tuple[str, Verdict]:
        """One conversation's outcome when the contract counts per conversation, from its
        episodes' (id, verdict) pairs: the outcome that comes first in contract order among
        them (an exclusion before every rule, no match after), billable only when every
        episode with that outcome is (one failed gate un-bills the conversation), weighing
        the most any of them weighs. Returns the id the conversation is counted under (the
        smallest among those episodes; the first that failed a gate, when one did) and the
        verdict."""
        if not verdicts:
            raise ValueError("a conversation has at least one episode, found none")
        best = min(self.rank(verdict.outcome) for _, verdict in verdicts)
        chosen = sorted(
            (pair for pair in verdicts if self.rank(pair[1].outcome) == best),
            key=lambda pair: pair[0],
        )
        weight = max(verdict.weight for _, verdict in chosen)
        failed = [pair for pair in chosen if pair[1].gate is not None]
        episode, verdict = failed[0] if failed else chosen[0]
        return episode, msgspec.structs.replace(verdict, weight=weight)


def bind_rule(text: str, *, expected: Type = Type.BOOL) -> Expression:
    """A rule's text checked against the episode features."""
    return bind(text, FEATURES, expected=expected)


def _matcher(text: str) -> Callable[[Mapping[str, object]], bool]:
    return compile_matcher(bind_rule(text))


def _is_always_true(text: str) -> bool:
    root = bind_rule(text).root
    return isinstance(root, Constant) and root.value is True


def plan_of(contract: Contract) -> Plan:
    """The settlement plan of a contract: its rules as written, in contract order."""
    weights = contract.weights
    return Plan(
        rules=tuple(
            OutcomeRule(
                name=name,
                when=terms.when,
                billable=terms.billable,
                description=terms.description,
                final_at=terms.final_at,
            )
            for name, terms in contract.outcomes.items()
        ),
        window_seconds=int(contract.window.total_seconds()),
        count=contract.count,
        exclude=contract.exclude,
        gates=tuple(
            Gate(name=gate.name, require=gate.require, description=gate.description)
            for gate in contract.gates
        ),
        weight_feature=weights.feature if weights is not None else None,
        weights=dict(weights.values) if weights is not None else {},
        default_weight=weights.default if weights is not None else Decimal(1),
    )
