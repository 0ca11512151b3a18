"""A contract's outcome rules, compiled once into a plan every engine executes the same way.

The plan is plain data: which episodes are excluded, the outcome rules in order (the first that
matches names the episode's outcome), the quality gates a billable outcome must pass, the window
after which an outcome is final, and the difficulty weights. `classify` is the reference meaning
of a plan on one episode's features; the SQL engines compile the same plan to one CASE
expression and must agree with it row for row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final, Literal

import msgspec

from raas.core.expressions import Expression, Type, bind, compile_matcher
from raas.core.features import FEATURES

# The outcome of an episode that no rule matched, and of one a gate or an exclusion stopped.
NO_OUTCOME: Final = "unmatched"
EXCLUDED: Final = "excluded"

Counting = Literal["per_problem", "per_conversation"]


class OutcomeRule(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    when: str  # the rule's text, bound against FEATURES when the plan is compiled
    billable: bool = True
    description: str = ""


class Gate(msgspec.Struct, frozen=True, kw_only=True):
    """A condition every billable outcome must meet; failing it un-bills the episode."""

    name: str
    require: str


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    rules: tuple[OutcomeRule, ...]
    window_seconds: int
    count: Counting = "per_problem"
    exclude: str | None = None
    gates: tuple[Gate, ...] = ()
    weight_feature: str | None = None
    weights: Mapping[str, Decimal] = msgspec.field(default_factory=dict)
    default_weight: Decimal = Decimal(1)

    def final_at(self, resolution_at: datetime | None, last_activity_at: datetime) -> datetime:
        """When an outcome can no longer change: the window closes after the AI's last answer
        (or after the last activity, when the AI never answered)."""
        start = resolution_at if resolution_at is not None else last_activity_at
        return start + timedelta(seconds=self.window_seconds)


class Verdict(msgspec.Struct, frozen=True):
    outcome: str  # a rule's name, NO_OUTCOME or EXCLUDED
    billable: bool
    reason: str
    weight: Decimal


class CompiledPlan:
    """A plan with its rules bound and compiled to Python matchers (built once, used per row)."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.exclude = _matcher(plan.exclude) if plan.exclude else None
        self.rules = [(rule, _matcher(rule.when)) for rule in plan.rules]
        self.gates = [(gate, _matcher(gate.require)) for gate in plan.gates]

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
                        )
            return Verdict(rule.name, rule.billable, f"matched {rule.name}: {rule.when}", weight)
        return Verdict(NO_OUTCOME, False, "no outcome rule matched", weight)


def bind_rule(text: str, *, expected: Type = Type.BOOL) -> Expression:
    return bind(text, FEATURES, expected=expected)


def _matcher(text: str) -> Callable[[Mapping[str, object]], bool]:
    return compile_matcher(bind_rule(text))
