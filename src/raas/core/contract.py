"""Contracts: the versioned, effective-dated agreement between a vendor and a buyer.

A contract is a YAML file that a buyer's finance lead can read. This module holds its typed form
and its loader: YAML -> JSON Schema (`contract.schema.json`) -> `Contract`, refusing a bad file
with the file, the line and the field.

The format (see `examples/contracts/` and the schema's descriptions): the outcomes are an
ordered mapping of names to rules written in the rule language of `raas.core.expressions`
(`when:`); the first rule that matches an episode names its outcome. Around them: `window` (when
an outcome becomes final), `count` (per problem or per conversation), `exclude` (traffic that
is never judged), `gates` (conditions every billable outcome must meet), `weights` (difficulty
weights read from a text feature) and `pricing` (exactly what
`raas.core.pricing.pricing_from_data` reads; an outcome's `price` is sugar for a per_outcome
charge). Every rule is checked against the episode features when the contract loads, so a
misspelt feature is an error on the rule's line and column, never a surprise at settlement.

The first format of contracts (`outcomes.ai_resolution` with a price and a
`recontact_window_hours`, no rules) still loads: `format_one_rules` writes its fixed meaning as
rules, so that a format-1 file settles exactly as it always did.

How the loader reads a file, and why:

1. PyYAML composes the node tree (SafeLoader), which keeps the line of every key and value.
2. The tree becomes plain data by this module's own scalar constructors: a number is a `Decimal`
   built from its source text (never a float), a `2026-11-01` is a `date`, and a scalar whose
   YAML 1.1 reading would surprise a reader (octal `072`, `1_000`, `1:30`, `.nan`, a time of day)
   stays the text it was written as, so that the schema refuses it by name.
3. JSON Schema checks shape, types and ranges; then the checks a schema cannot express run
   (IANA time zone, ISO 4217 currency, dates in order, sign of a price).
4. Every failure found in steps 1 to 3 becomes a `ContractError`; the first in document order is
   raised. A missing field comes at the end of the mapping that should hold it.
5. The valid data becomes a `Contract`, whose own checks bind every rule against the features
   and check the pricing against the outcomes; what they refuse is reported on the line (and,
   for a rule, the column) it was written at.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from typing import Any, Final, Literal, NamedTuple
from zoneinfo import ZoneInfo

import jsonschema
import msgspec
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from raas.core.expressions import (
    FUNCTIONS,
    Call,
    Constant,
    Expression,
    ExpressionError,
    Type,
    bind,
)
from raas.core.expressions import (
    Node as RuleNode,
)
from raas.core.features import FEATURES
from raas.core.money import ROUNDING_MODES, Rounding, is_known_currency, to_minor_units
from raas.core.periods import is_known_time_zone, start_of_day
from raas.core.plan import EXCLUDED, NO_OUTCOME, Counting
from raas.core.pricing import (
    AccuracyTiers,
    BusinessShare,
    Graduated,
    Package,
    PerOutcome,
    Pricing,
    SavingsShare,
    UpliftShare,
    Volume,
    pricing_from_data,
)
from raas.core.pricing.figures import WEIGHT_EXCLUSIVE_MAX, check_decimal
from raas.errors import ContractError

__all__ = [
    "CONTRACT_BYTES_MAX",
    "DOCUMENT_FIELD",
    "NESTING_DEPTH_MAX",
    "PRICE_EXCLUSIVE_MAX",
    "PRICE_PLACES_MAX",
    "RECONTACT_WINDOW_HOURS_MAX",
    "WINDOW_MAX",
    "Contract",
    "ContractProblems",
    "DisputeTerms",
    "GateTerms",
    "OutcomeTerms",
    "Problem",
    "Rounding",
    "Weights",
    "contract_errors",
    "contract_problems",
    "contract_schema",
    "duration_text",
    "format_one_pricing",
    "format_one_rules",
    "load_contract",
    "parse_contract",
    "parse_duration",
]

# A contract is a page of text; anything much larger is a mistake or an attack on the parser.
CONTRACT_BYTES_MAX: Final = 1_048_576
RECONTACT_WINDOW_HOURS_MAX: Final = 8760  # one year
WINDOW_MAX: Final = timedelta(days=365)
WINDOW_DEFAULT: Final = timedelta(hours=72)
DISPUTE_DEADLINE_DEFAULT: Final = timedelta(days=30)
# Bounds on a unit price: far beyond any real one, and small enough that no amount computed
# from it needs an unbounded decimal context.
PRICE_EXCLUSIVE_MAX: Final = Decimal(10) ** 12
PRICE_PLACES_MAX: Final = 12
# A contract nests a few levels deep; a limit keeps PyYAML's recursive composer off the stack's
# end.
NESTING_DEPTH_MAX: Final = 32
# The `field` of an error that belongs to the file as a whole (YAML syntax, an empty file).
DOCUMENT_FIELD: Final = "(document)"
# Names the judge gives episodes that no rule names: an outcome or gate may not take them.
RESERVED_NAMES: Final = (EXCLUDED, NO_OUTCOME)

_CONTRACT_ID_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9-]*")
_NAME_PATTERN: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")
_DURATION_PATTERN: Final = re.compile(r"([1-9][0-9]{0,8})([smhd])")
_DURATION_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SHARE_CHARGES: Final = (BusinessShare, UpliftShare, SavingsShare)
_OUTCOME_CHARGES: Final = (PerOutcome, Graduated, Volume, Package, AccuracyTiers)


def _check_price(price: Decimal, field: str) -> None:
    if isinstance(price, float) or not isinstance(price, Decimal):
        raise TypeError(f"{field} must be a Decimal, found {type(price).__name__} {price!r}")
    if not price.is_finite() or price.is_signed():
        raise ValueError(f"{field} must be a finite, non-negative Decimal, found {price}")
    if price >= PRICE_EXCLUSIVE_MAX or _decimal_places(price) > PRICE_PLACES_MAX:
        raise ValueError(
            f"{field} must be below 10^12 with at most {PRICE_PLACES_MAX} decimal places, "
            f"found {price}"
        )


def _decimal_places(amount: Decimal) -> int:
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int), "only finite amounts have decimal places"
    return max(-exponent, 0)


def parse_duration(text: str) -> timedelta:
    """A duration as contracts write it: a whole number and one unit, `90s`, `15m`, `72h`,
    `7d`. Raises ValueError for anything else."""
    found = _DURATION_PATTERN.fullmatch(text)
    if found is None:
        raise ValueError(f"expected a duration such as 72h, found {text!r}")
    return timedelta(seconds=int(found.group(1)) * _DURATION_SECONDS[found.group(2)])


def duration_text(duration: timedelta) -> str:
    """A whole-second duration in the largest unit that writes it exactly: 259200 s -> 3d,
    90 min -> 90m."""
    seconds = int(duration.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds % _DURATION_SECONDS[unit] == 0:
            return f"{seconds // _DURATION_SECONDS[unit]}{unit}"
    return f"{seconds}s"


# ---------------------------------------------------------------------------------------------
# The typed contract


class OutcomeTerms(msgspec.Struct, frozen=True, kw_only=True):
    """One outcome as the contract states it.

    `when` is the rule that makes an episode this outcome (the first outcome in contract order
    whose rule matches wins). `billable: false` names an outcome without charging for it (a
    handoff that stays free, a reopened problem). `price` is sugar for a per_outcome charge
    at that unit price. `final_at` names a point-in-time feature at which the outcome becomes
    final (`handoff_at`), instead of when the window closes. `case_cost` is what an outcome of
    this kind still costs the buyer per case, for a savings share (a handoff still costs a
    human's time)."""

    when: str
    billable: bool = True
    description: str = ""
    price: Decimal | None = None
    final_at: str | None = None
    case_cost: Decimal | None = None

    def __post_init__(self) -> None:
        if self.price is not None:
            _check_price(self.price, "price")
        if self.case_cost is not None:
            _check_price(self.case_cost, "case_cost")


class GateTerms(msgspec.Struct, frozen=True, kw_only=True):
    """A quality gate: `require` must hold for a billable outcome to be billed (a CSAT floor,
    a reviewer's verdict); an outcome that fails it is counted under the gate's name."""

    name: str
    require: str
    description: str = ""


class Weights(msgspec.Struct, frozen=True, kw_only=True):
    """Difficulty weights: an outcome weighs `values[feature value]` (`default` when the value
    is missing or not listed); the weight multiplies the quantity the outcome adds."""

    feature: str
    values: dict[str, Decimal]
    default: Decimal = Decimal(1)

    def __post_init__(self) -> None:
        for key, value in [*self.values.items(), ("default", self.default)]:
            check_decimal(value, f"weights.{key}", maximum_exclusive=WEIGHT_EXCLUSIVE_MAX)


class DisputeTerms(msgspec.Struct, frozen=True, kw_only=True):
    """How the buyer may dispute an issued invoice (see `raas.core.disputes`): until `deadline`
    after the end of its period; when the episodes disputed on one invoice exceed `audit_rate`
    of those it bills, the next invoice names `audit_sample` of them for review."""

    deadline: timedelta = DISPUTE_DEADLINE_DEFAULT
    audit_rate: Decimal | None = None
    audit_sample: int = 0

    def __post_init__(self) -> None:
        if not timedelta(seconds=1) <= self.deadline <= WINDOW_MAX:
            raise ValueError(f"disputes.deadline must be from 1s to 365d, found {self.deadline}")
        if self.audit_rate is not None and not Decimal(0) <= self.audit_rate <= Decimal(1):
            raise ValueError(f"disputes.audit_rate must be from 0 to 1, found {self.audit_rate}")
        if (self.audit_rate is None) != (self.audit_sample == 0):
            raise ValueError("disputes.audit_rate and disputes.audit_sample go together")


class Contract(msgspec.Struct, frozen=True, kw_only=True):
    """One version of a contract, valid by construction: its rules bind against the episode
    features and its pricing prices exactly its billable outcomes (see `contract_problems`).

    Dates are days in `time_zone`. `effective_from` is the first day this version applies;
    `effective_until`, when given, is the first day it no longer applies (excluded), so that a
    version ending on D and the next one starting on D leave neither gap nor overlap.
    `pricing` is the pricing section as written; `effective_pricing()` adds the outcomes'
    prices to it.
    """

    contract: str
    version: int
    effective_from: date
    vendor: str
    buyer: str
    currency: str
    time_zone: str
    outcomes: dict[str, OutcomeTerms]
    effective_until: date | None = None
    period: Literal["month"] = "month"
    count: Counting = "per_problem"
    window: timedelta = WINDOW_DEFAULT
    reopen: timedelta | None = None
    disputes: DisputeTerms = DisputeTerms()
    exclude: str | None = None
    gates: tuple[GateTerms, ...] = ()
    weights: Weights | None = None
    pricing: Pricing | None = None
    rounding: Rounding = "half_even"

    def __post_init__(self) -> None:
        # The loader reports these with file and line; this second check guards contracts built
        # in code, so that no invalid Contract exists anywhere.
        if not _CONTRACT_ID_PATTERN.fullmatch(self.contract):
            raise ValueError(f"contract id {self.contract!r} must match ^[a-z0-9][a-z0-9-]*$")
        if isinstance(self.version, bool) or self.version < 1:
            raise ValueError(f"version must be an integer >= 1, found {self.version!r}")
        if not is_known_currency(self.currency):
            raise ValueError(f"currency {self.currency!r} is not a known ISO 4217 code")
        if not is_known_time_zone(self.time_zone):
            raise ValueError(f"time_zone {self.time_zone!r} is not an IANA time zone")
        if self.effective_until is not None and self.effective_until <= self.effective_from:
            raise ValueError(
                f"effective_until {self.effective_until} must be after "
                f"effective_from {self.effective_from}"
            )
        if self.rounding not in ROUNDING_MODES:
            raise ValueError(f"rounding {self.rounding!r} is not one of {list(ROUNDING_MODES)}")
        if self.count not in ("per_problem", "per_conversation"):
            raise ValueError(f"count must be per_problem or per_conversation, found {self.count!r}")
        problems = contract_problems(self)
        if problems:
            raise ContractProblems(problems)

    @property
    def zone(self) -> ZoneInfo:
        """The contract's time zone."""
        return ZoneInfo(self.time_zone)

    def effective_from_utc(self) -> datetime:
        """First instant of `effective_from` in the contract's zone, as an aware UTC datetime."""
        return start_of_day(self.effective_from, self.time_zone)

    def effective_until_utc(self) -> datetime | None:
        """First instant at which this version no longer applies (UTC), or None if open-ended."""
        if self.effective_until is None:
            return None
        return start_of_day(self.effective_until, self.time_zone)

    def is_effective_at(self, instant: datetime) -> bool:
        """True when this version applies at `instant` (an aware datetime)."""
        until = self.effective_until_utc()
        return self.effective_from_utc() <= instant and (until is None or instant < until)

    def effective_pricing(self) -> Pricing:
        """The pricing settlement applies: a per_outcome charge for the outcomes that state a
        `price` (in contract order) first, then the charges and adjustments of `pricing`."""
        return _effective_pricing(self.outcomes, self.pricing)


def _effective_pricing(outcomes: Mapping[str, OutcomeTerms], written: Pricing | None) -> Pricing:
    prices = {name: terms.price for name, terms in outcomes.items() if terms.price is not None}
    sugar = (PerOutcome(prices=prices),) if prices else ()
    if written is None:
        return Pricing(charges=sugar)
    return msgspec.structs.replace(written, charges=(*sugar, *written.charges))


# ---------------------------------------------------------------------------------------------
# What a contract must satisfy beyond its shape


class Problem(NamedTuple):
    """One thing wrong with a contract: the path of the field (`("outcomes", "resolved",
    "when")`), the reason (starting with "expected"), and for a rule, the 0-based offset in
    the rule's text where the problem starts."""

    path: tuple[str, ...]
    reason: str
    offset: int | None = None


class ContractProblems(ValueError):
    """A contract built in code (or read from a file) breaks `contract_problems`; `problems`
    holds every one, the message names the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = problems[0]
        super().__init__(f"{'.'.join(first.path)}: {first.reason}")


def contract_problems(contract: Contract) -> list[Problem]:
    """Everything wrong with a contract that its types do not already refuse: rules that do not
    bind against the features (or look past the window), names, the difficulty feature, and a
    pricing section that prices an outcome the contract does not bill, or leaves a billable
    one unpriced."""
    problems: list[Problem] = []
    window = contract.window
    if not timedelta(seconds=1) <= window <= WINDOW_MAX or window % timedelta(seconds=1):
        problems.append(
            Problem(("window",), f"expected whole seconds from 1s to 365d, found {window}")
        )
    reopen = contract.reopen
    if reopen is not None and (
        not timedelta(seconds=1) <= reopen <= WINDOW_MAX or reopen % timedelta(seconds=1)
    ):
        problems.append(
            Problem(("reopen",), f"expected whole seconds from 1s to 365d, found {reopen}")
        )
    if not contract.outcomes:
        problems.append(Problem(("outcomes",), "expected at least one outcome, found none"))
    for name in contract.outcomes:
        reason = _name_problem(name, "an outcome")
        if reason is not None:
            problems.append(Problem(("outcomes", name), reason))
    gate_names: set[str] = set()
    for index, gate in enumerate(contract.gates):
        reason = _name_problem(gate.name, "a gate")
        if reason is None and gate.name in contract.outcomes:
            reason = f"expected a gate name no outcome has, found {gate.name!r}, an outcome's"
        if reason is None and gate.name in gate_names:
            reason = f"expected each gate name once, found a second {gate.name!r}"
        if reason is not None:
            problems.append(Problem(("gates", str(index), "name"), reason))
        gate_names.add(gate.name)

    rules: list[tuple[tuple[str, ...], str]] = []
    if contract.exclude is not None:
        rules.append((("exclude",), contract.exclude))
    rules += [(("outcomes", name, "when"), terms.when) for name, terms in contract.outcomes.items()]
    rules += [
        (("gates", str(index), "require"), gate.require)
        for index, gate in enumerate(contract.gates)
    ]
    for path, text in rules:
        problems.extend(_rule_problems(path, text, window))

    for name, terms in contract.outcomes.items():
        feature = terms.final_at
        if feature is not None and FEATURES.get(feature) is not Type.TIMESTAMP:
            points = ", ".join(key for key, kind in FEATURES.items() if kind is Type.TIMESTAMP)
            problems.append(
                Problem(
                    ("outcomes", name, "final_at"),
                    f"expected a point-in-time feature ({points}), found {feature!r}",
                )
            )
    weights = contract.weights
    if weights is not None and FEATURES.get(weights.feature) is not Type.STRING:
        texts = ", ".join(key for key, kind in FEATURES.items() if kind is Type.STRING)
        problems.append(
            Problem(
                ("weights", "feature"),
                f"expected a text feature ({texts}), found {weights.feature!r}",
            )
        )
    problems.extend(_pricing_problems(contract))
    return problems


def _name_problem(name: str, what: str) -> str | None:
    if not _NAME_PATTERN.fullmatch(name):
        return (
            f"expected {what} name of lower-case letters, digits and underscores, starting with "
            f"a letter (at most 64), found {name!r}"
        )
    if name in RESERVED_NAMES:
        return f"expected {what} name other than {' and '.join(RESERVED_NAMES)}, found {name!r}"
    return None


def _rule_problems(path: tuple[str, ...], text: str, window: timedelta) -> list[Problem]:
    try:
        rule = bind(text, FEATURES, expected=Type.BOOL)
    except ExpressionError as error:
        return [Problem(path, _rule_reason(error), error.column - 1)]
    found = []
    # A rule that reads past the window could change an outcome after it was final (and billed).
    for node in _rule_nodes(rule):
        if not isinstance(node, Call) or FUNCTIONS[node.function].kind != "window":
            continue
        argument = node.arguments[0] if node.arguments else None
        if (
            isinstance(argument, Constant)
            and isinstance(argument.value, int)
            and argument.value > window.total_seconds()
        ):
            too_long = ExpressionError(
                text,
                argument.span.column,
                f"expected a duration no longer than the contract's window "
                f"({duration_text(window)}), found {text[argument.span.start : argument.span.end]}"
                ": the outcome is final when the window closes and must not change after",
                argument.span.end - argument.span.start,
            )
            found.append(Problem(path, _rule_reason(too_long), too_long.column - 1))
    return found


def _rule_nodes(rule: Expression) -> Iterator[RuleNode]:
    stack: list[RuleNode] = [rule.root]
    while stack:
        node = stack.pop()
        yield node
        for name in ("operand", "left", "right"):
            child = getattr(node, name, None)
            if child is not None:
                stack.append(child)
        stack.extend(getattr(node, "arguments", ()))


def _rule_reason(error: ExpressionError) -> str:
    """The rule's error as a contract reason: the reason, the column, then the rule's line with
    a caret under the column (the last two lines of the error's own rendering)."""
    shown = str(error).split("\n")[-2:]
    reason = error.reason
    if not reason.startswith("expected"):
        # A few refusals say what to write instead ("write and (not &&)").
        reason = f"expected a rule in the rule language, found what it does not read: {reason}"
    return f"{reason} (column {error.column} of the rule)\n" + "\n".join(shown)


def _pricing_problems(contract: Contract) -> list[Problem]:
    problems: list[Problem] = []
    outcomes = contract.outcomes
    written = contract.pricing
    names = ", ".join(outcomes)
    priced_at: dict[str, tuple[str, ...]] = {
        name: ("outcomes", name, "price")
        for name, terms in outcomes.items()
        if terms.price is not None
    }
    charges = written.charges if written is not None else ()
    for index, charge in enumerate(charges):
        where = ("pricing", "charges", str(index))
        kinds: list[tuple[str, tuple[str, ...]]]
        if isinstance(charge, PerOutcome):
            kinds = [(kind, (*where, "prices", kind)) for kind in charge.prices]
        elif isinstance(charge, _OUTCOME_CHARGES):
            kinds = [
                (kind, (*where, "outcomes", str(position)))
                for position, kind in enumerate(charge.outcomes)
            ]
        else:
            kinds = []
        path: tuple[str, ...]
        for kind, path in kinds:
            terms = outcomes.get(kind)
            if terms is None:
                problems.append(
                    Problem(
                        path, f"expected an outcome this contract names ({names}), found {kind!r}"
                    )
                )
            elif not terms.billable:
                problems.append(
                    Problem(
                        path,
                        f"expected a billable outcome, found {kind!r}, which is billable: false",
                    )
                )
            elif kind in priced_at:
                first = priced_at[kind]
                problems.append(
                    Problem(
                        path if first[0] == "pricing" else first,
                        f"expected one price for {kind!r}, found one in {'.'.join(first)} and one "
                        f"in {'.'.join(path)}",
                    )
                )
            else:
                priced_at[kind] = path
    shares = [charge for charge in charges if isinstance(charge, _SHARE_CHARGES)]
    billable = [name for name, terms in outcomes.items() if terms.billable]
    for name, terms in outcomes.items():
        if terms.price is not None and not terms.billable:
            problems.append(
                Problem(
                    ("outcomes", name, "price"),
                    "expected no price on an outcome that is billable: false, found one",
                )
            )
        elif terms.billable and name not in priced_at and not shares:
            problems.append(
                Problem(
                    ("outcomes", name),
                    f"expected a price for the billable outcome {name!r} (price: here, or a "
                    "charge in pricing), found none; write billable: false if it is free",
                )
            )
    if outcomes and not billable:
        problems.append(
            Problem(("outcomes",), "expected at least one billable outcome, found none")
        )
    savings = [index for index, charge in enumerate(charges) if isinstance(charge, SavingsShare)]
    costed = [name for name, terms in outcomes.items() if terms.case_cost is not None]
    if savings and not costed:
        problems.append(
            Problem(
                ("pricing", "charges", str(savings[0])),
                "expected the outcomes that count as cases to state their case_cost, found none",
            )
        )
    if costed and not savings:
        problems.append(
            Problem(
                ("outcomes", costed[0], "case_cost"),
                "expected case_cost only with a savings_share charge, found no such charge",
            )
        )
    if written is not None:
        fixed: list[tuple[tuple[str, ...], Decimal]] = []
        if written.minimum is not None:
            fixed.append((("pricing", "minimum", "amount"), written.minimum.amount))
        if written.cap is not None:
            fixed.append((("pricing", "cap", "amount"), written.cap.amount))
        for path, amount in fixed:
            try:
                to_minor_units(amount, contract.currency)
            except ValueError:
                problems.append(
                    Problem(
                        path,
                        f"expected whole minor units of {contract.currency}, found {amount}",
                    )
                )
    if not problems:
        try:
            _effective_pricing(outcomes, written)
        except ValueError as error:  # pragma: no cover - the checks above leave nothing to refuse
            problems.append(Problem(("pricing",), f"expected consistent pricing: {error}"))
    return problems


# ---------------------------------------------------------------------------------------------
# The first format, as rules


def format_one_rules(window: timedelta = WINDOW_DEFAULT) -> dict[str, OutcomeTerms]:
    """The meaning of a first-format contract, written as rules (prices aside).

    In that format an episode was, in this order: a handoff when a human took it over before the
    window closed (final at the handoff); unresolved when the AI never answered, or the customer
    said it was not resolved inside the window; an AI resolution when the customer confirmed it
    inside the window or did not come back inside it; otherwise reopened. The window opens at
    the AI's last answer and is half-open (a return at exactly 72h is outside a 72h window).
    """
    within = f"{int(window.total_seconds()) // 3600}h"
    return {
        "handoff": OutcomeTerms(
            when=f"handed_off and (handoff_delay is null or handoff_delay < {within})",
            description="Problems handed off to a human",
            final_at="handoff_at",
        ),
        "unresolved": OutcomeTerms(
            when=f"resolution_at is null or (confirmed == false and confirmation_delay < {within})",
            billable=False,
            description="Problems the AI did not resolve",
        ),
        "ai_resolution": OutcomeTerms(
            when=(
                f"(confirmed and confirmation_delay < {within}) or not recontact_within({within})"
            ),
            description="Problems resolved by the AI",
        ),
        "reopened": OutcomeTerms(
            when="true",
            billable=False,
            description="Problems the customer came back about inside the window",
        ),
    }


def format_one_pricing(ai_resolution: Decimal, handoff: Decimal = Decimal(0)) -> Pricing:
    """The first format's prices: one line for AI resolutions, then one for handoffs."""
    return Pricing(
        charges=(PerOutcome(prices={"ai_resolution": ai_resolution, "handoff": handoff}),)
    )


# ---------------------------------------------------------------------------------------------
# Reading YAML with positions


@dataclass(frozen=True)
class _Place:
    """Where one value sits in the file: the key that names it (absent for the document) and
    the value's own node."""

    key: ScalarNode | None
    value: Node


_Path = tuple[str, ...]


@dataclass(frozen=True, order=True)
class _Finding:
    """One error with the position that orders it among the others: 0-based line and column,
    then a rank. A mapping's missing fields are found where the mapping ends, which is where
    the next token starts: they rank first there, in the order the schema requires them."""

    order_line: int
    order_column: int
    order_rank: int
    field: str
    reason: str
    line: int | None = dataclass_field(default=None, compare=False)  # 1-based, as reported


class _TooDeep(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


class _ContractLoader(yaml.SafeLoader):
    """SafeLoader that remembers which key it is composing, to name the field of a YAML error,
    and that refuses nesting deeper than any contract needs (PyYAML composes recursively)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.key_path: list[str] = []
        self.depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self.depth += 1
        if self.depth > NESTING_DEPTH_MAX:
            event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in the stubs
            raise _TooDeep(event.start_mark.line + 1)
        # PyYAML passes the key node when composing a mapping's value, the position when
        # composing a list item, and None when composing a key.
        if isinstance(parent, MappingNode) and isinstance(index, ScalarNode):
            step: str | None = str(index.value)
        elif isinstance(parent, SequenceNode) and isinstance(index, int):
            step = str(index)
        else:
            step = None
        if step is not None:
            self.key_path.append(step)
        node: Node | None = super().compose_node(parent, index)
        # Popped only on success: after a syntax error the path names where it happened.
        if step is not None:
            self.key_path.pop()
        self.depth -= 1
        return node


_TAG = "tag:yaml.org,2002:"
_PLAIN_INTEGER: Final = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_PLAIN_DECIMAL: Final = re.compile(r"[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?")
_PLAIN_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _construct_integer(text: str) -> int | str:
    # YAML 1.1 reads 072 as octal 58 and 1:30 as 90; a contract says what it means or fails.
    return int(text) if _PLAIN_INTEGER.fullmatch(text) else text


def _construct_decimal(text: str) -> Decimal | str:
    # From the source text, so 0.99 is exactly Decimal("0.99"); .nan and .inf stay text.
    if not _PLAIN_DECIMAL.fullmatch(text):
        return text
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid literals
        return text


def _construct_date(text: str) -> date | str:
    # A time of day, or a date that does not exist (2026-02-30), stays text for the schema.
    if not _PLAIN_DATE.fullmatch(text):
        return text
    try:
        return date.fromisoformat(text)
    except ValueError:
        return text


def _construct_boolean(text: str) -> bool:
    return text.lower() in {"yes", "true", "on"}


_SCALAR_CONSTRUCTORS: Final[dict[str, Callable[[str], object]]] = {
    _TAG + "str": lambda text: text,
    _TAG + "int": _construct_integer,
    _TAG + "float": _construct_decimal,
    _TAG + "timestamp": _construct_date,
    _TAG + "bool": _construct_boolean,
    _TAG + "null": lambda text: None,
}


_RANK_AT_NODE: Final = 1 << 16  # after any missing field found at the same position


def _finding_at(node: Node, field: str, reason: str) -> _Finding:
    mark = node.start_mark
    return _Finding(mark.line, mark.column, _RANK_AT_NODE, field, reason, mark.line + 1)


class _Reader:
    """Turns a composed node tree into plain data, keeping the place of every value."""

    def __init__(self) -> None:
        self.places: dict[_Path, _Place] = {}
        self.findings: list[_Finding] = []
        self.refused: list[_Path] = []  # values left out of the data, each with its finding
        self._seen: set[int] = set()

    def read(self, node: Node, path: _Path, key: ScalarNode | None) -> Any:
        self.places[path] = _Place(key, node)
        field = _dotted(path)
        if id(node) in self._seen:
            # An alias: a value stated elsewhere. Refused so that every figure is read where it
            # stands, and so that an alias bomb or a recursive alias cannot blow up the reader.
            # The node is the anchored one, so the key is what points at the alias's line.
            reason = "expected a value written out, found an alias (*name)"
            self.findings.append(_finding_at(key or node, field, reason))
            self.refused.append(path)
            return None
        self._seen.add(id(node))
        if isinstance(node, MappingNode):
            return self._read_mapping(node, path)
        if isinstance(node, SequenceNode):
            if node.tag != _TAG + "seq":
                self.findings.append(_finding_at(node, field, _unsupported_tag(node)))
            return [
                self.read(item, (*path, str(index)), None) for index, item in enumerate(node.value)
            ]
        constructor = _SCALAR_CONSTRUCTORS.get(node.tag)
        if constructor is None:
            self.findings.append(_finding_at(node, field, _unsupported_tag(node)))
            return node.value
        return constructor(node.value)

    def _read_mapping(self, node: MappingNode, path: _Path) -> dict[str, Any]:
        if node.tag != _TAG + "map":
            self.findings.append(_finding_at(node, _dotted(path), _unsupported_tag(node)))
        data: dict[str, Any] = {}
        first_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag not in (
                _TAG + "str",
                _TAG + "merge",
            ):
                found = _describe(key_node)
                self.findings.append(
                    _finding_at(key_node, _dotted(path), f"expected a field name, found {found}")
                )
                continue
            name = key_node.value
            child_path = (*path, name)
            if key_node.tag == _TAG + "merge":
                self.findings.append(
                    _finding_at(
                        key_node,
                        _dotted(child_path),
                        "expected fields written out, found a merge key (<<)",
                    )
                )
                continue
            if name in data:
                self.findings.append(
                    _finding_at(
                        key_node,
                        _dotted(child_path),
                        f"expected each field once, found a second {name!r} "
                        f"(the first is on line {first_lines[name]})",
                    )
                )
                continue
            first_lines[name] = key_node.start_mark.line + 1
            data[name] = self.read(value_node, child_path, key_node)
        return data


def _unsupported_tag(node: Node) -> str:
    return f"expected a plain value, found the YAML tag {node.tag}"


def _dotted(path: _Path) -> str:
    return ".".join(path) if path else DOCUMENT_FIELD


def _describe(node: Node) -> str:
    """What a node holds, in words, quoting its source text: "number -0.5", "text 'abc'"."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    assert isinstance(node, ScalarNode)
    text = node.value
    if node.tag == _TAG + "null":
        return "nothing (null)" if text in ("", "~") else f"null {text!r}"
    kind = {
        _TAG + "int": "number",
        _TAG + "float": "number",
        _TAG + "bool": "boolean",
        # 2026-02-30 looks like a date to YAML, but it is none.
        _TAG + "timestamp": "date" if isinstance(_construct_date(text), date) else "text",
    }.get(node.tag, "text")
    if kind != "text" and node.style is None:
        return f"{kind} {text}"
    return f"text {text!r}"


# ---------------------------------------------------------------------------------------------
# Schema


@cache
def _schema() -> dict[str, Any]:
    text = resources.files("raas.core").joinpath("contract.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def contract_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of contract files, as shipped in the package (a copy:
    changing it changes nothing the loader does)."""
    return copy.deepcopy(_schema())


@cache
def _validator() -> Any:
    schema = _schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def _schema_view(value: Any) -> Any:
    # JSON has no dates: the schema sees them as the ISO text and checks them with format "date".
    if isinstance(value, dict):
        return {key: _schema_view(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_schema_view(item) for item in value]
    if isinstance(value, date):
        return value.isoformat()
    return value


_TYPE_WORDS: Final = {
    "object": "a mapping",
    "array": "a list",
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "nothing",
}


def _resolve(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    # Only local references into $defs are used in the contract schema.
    reference = schema.get("$ref")
    if isinstance(reference, str) and reference.startswith("#/$defs/"):
        resolved: Mapping[str, Any] = _schema()["$defs"][reference.removeprefix("#/$defs/")]
        return resolved
    return schema


def _expected(schema: Mapping[str, Any]) -> str:
    schema = _resolve(schema)
    description = schema.get("description")
    if isinstance(description, str):
        return description
    if "enum" in schema:
        return "one of " + ", ".join(repr(item) for item in schema["enum"])
    kinds = schema.get("type", [])
    kinds = [kinds] if isinstance(kinds, str) else kinds
    return " or ".join(_TYPE_WORDS.get(kind, kind) for kind in kinds) or "a valid value"


def _schema_findings(
    error: jsonschema.ValidationError, places: Mapping[_Path, _Place]
) -> Iterator[_Finding]:
    path: _Path = tuple(str(part) for part in error.absolute_path)
    place = places.get(path)
    if place is None:  # pragma: no cover - every instance path was read from the tree
        yield _Finding(0, 0, _RANK_AT_NODE, _dotted(path), error.message)
        return
    keyword = error.validator
    if keyword == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        for name in error.instance:
            if name in allowed:
                continue
            child = places[(*path, name)]
            assert child.key is not None
            hint = difflib.get_close_matches(name, allowed, n=1, cutoff=0.8)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            reason = (
                f"expected one of the fields {', '.join(allowed)}, "
                f"found the unknown field {name!r}{suggestion}"
            )
            yield _finding_at(child.key, _dotted((*path, name)), reason)
        return
    if keyword == "required":
        end = place.value.end_mark
        # Reported on the key that opens the mapping; a top-level field has no such line.
        line = place.key.start_mark.line + 1 if place.key is not None else None
        for rank, name in enumerate(error.validator_value):
            if name in error.instance:
                continue
            expected = _expected(error.schema.get("properties", {}).get(name, {}))
            reason = f"required field is missing; expected {expected}"
            yield _Finding(end.line, end.column, rank, _dotted((*path, name)), reason, line)
        return
    reason = f"expected {_expected(error.schema)}, found {_describe(place.value)}"
    yield _finding_at(place.value, _dotted(path), reason)


def _is_format_one(data: Mapping[str, Any]) -> bool:
    """A first-format contract: `outcomes.ai_resolution` states no rule (`when`)."""
    outcomes = data.get("outcomes")
    if not isinstance(outcomes, dict):
        return False
    first = outcomes.get("ai_resolution")
    return isinstance(first, dict) and "when" not in first


_FORMAT_TWO_ONLY: Final = ("exclude", "gates", "weights", "pricing")


def _semantic_findings(
    data: Mapping[str, Any], places: Mapping[_Path, _Place]
) -> Iterator[_Finding]:
    """The checks JSON Schema cannot express; each runs only on a value of the right type, so it
    never repeats a type error that the schema already reported."""

    def at(path: _Path, reason: str) -> _Finding:
        return _finding_at(places[path].value, _dotted(path), reason)

    def key_at(path: _Path, reason: str) -> _Finding:
        key = places[path].key
        return _finding_at(key if key is not None else places[path].value, _dotted(path), reason)

    time_zone = data.get("time_zone")
    if isinstance(time_zone, str) and time_zone and not is_known_time_zone(time_zone):
        yield at(
            ("time_zone",),
            f"expected an IANA time zone such as Europe/Berlin or America/New_York, "
            f"found {time_zone!r}",
        )
    currency = data.get("currency")
    well_formed = isinstance(currency, str) and re.fullmatch("[A-Z]{3}", currency) is not None
    if well_formed and not is_known_currency(str(currency)):
        yield at(
            ("currency",),
            f"expected an ISO 4217 currency code such as USD, EUR or JPY, found {currency!r}",
        )
    start, until = data.get("effective_from"), data.get("effective_until")
    if isinstance(start, date) and isinstance(until, date) and until <= start:
        yield at(
            ("effective_until",),
            f"expected a date after effective_from ({start.isoformat()}), "
            f"found {until.isoformat()}",
        )
    window = data.get("window")
    if (
        isinstance(window, str)
        and _DURATION_PATTERN.fullmatch(window)
        and parse_duration(window) > WINDOW_MAX
    ):
        yield at(("window",), f"expected a duration of at most 365d, found {window!r}")
    outcomes = data.get("outcomes")
    if isinstance(outcomes, dict):
        for name, rule in outcomes.items():
            if not isinstance(rule, dict):
                continue
            for figure in ("price", "case_cost"):
                yield from _figure_findings(rule.get(figure), ("outcomes", name, figure), places)
    weights = data.get("weights")
    if isinstance(weights, dict):
        values = weights.get("values")
        for key, value in values.items() if isinstance(values, dict) else ():
            yield from _figure_findings(value, ("weights", "values", key), places, "weight")
        yield from _figure_findings(
            weights.get("default"), ("weights", "default"), places, "weight"
        )
    if _is_format_one(data):
        if "window" in data and "recontact_window_hours" in data["outcomes"]["ai_resolution"]:
            yield key_at(
                ("window",),
                "expected the window once, found window and "
                "outcomes.ai_resolution.recontact_window_hours",
            )
        for name in _FORMAT_TWO_ONLY:
            if name in data:
                yield key_at(
                    (name,),
                    f"expected no {name} beside first-format outcomes (ai_resolution without a "
                    f"`when` rule), found one: write each outcome as a rule to use {name}",
                )


def _figure_findings(
    value: object, path: _Path, places: Mapping[_Path, _Place], what: str = "price"
) -> Iterator[_Finding]:
    if not isinstance(value, Decimal) or not value.is_finite():
        return
    found = _describe(places[path].value)
    # -0 passes "minimum: 0" but would print as -0.00 on an invoice.
    if value.is_signed():
        yield _finding_at(
            places[path].value, _dotted(path), f"expected a non-negative {what}, found {found}"
        )
    elif _decimal_places(value) > PRICE_PLACES_MAX:
        yield _finding_at(
            places[path].value,
            _dotted(path),
            f"expected at most {PRICE_PLACES_MAX} decimal places, found "
            f"{_decimal_places(value)} in {found}",
        )


def _decimal(value: Any) -> Decimal:
    # The schema admits a figure as a number (int or Decimal) or as decimal text.
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _rule_text(value: Any) -> str:
    # YAML reads a bare `true` as a boolean; as a rule it means the same text.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_PRICING_PATH: Final = re.compile(r" - at `\$((?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\]|\[\.\.\.\])*)`$")
_LEADING_FIELD: Final = re.compile(r"^((?:[a-z_]+(?:\[\d+\])?)(?:\.[a-z_]+(?:\[\d+\])?)*) ")


def _steps(text: str) -> list[str]:
    return [step for step in re.split(r"[.\[\]]+", text) if step and step != "..."]


def _pricing_problem(error: ValueError) -> Problem:
    """A refusal by `pricing_from_data`, placed on the field it names: msgspec's path (`- at
    $.charges[0]`) and, when the message starts with a field below it (`tiers[1].up_to must
    ...`), that field too."""
    message = str(error)
    path = ["pricing"]
    found = _PRICING_PATH.search(message)
    if found is not None:
        path += _steps(found.group(1))
        message = message[: found.start()]
    leading = _LEADING_FIELD.match(message)
    if leading is not None:
        path += _steps(leading.group(1))
    return Problem(tuple(path), f"expected pricing terms that hold together, found: {message}")


def _typed(data: dict[str, Any]) -> Contract:
    """The `Contract` of data that passed the schema and the semantic checks; raises
    `ContractProblems` for what the contract's own checks refuse."""
    fields = {
        name: value
        for name, value in data.items()
        if name
        not in (
            "outcomes",
            "window",
            "gates",
            "weights",
            "pricing",
            "exclude",
            "reopen",
            "disputes",
        )
    }
    if "reopen" in data:
        fields["reopen"] = parse_duration(data["reopen"])
    if "disputes" in data:
        terms = data["disputes"]
        fields["disputes"] = DisputeTerms(
            deadline=parse_duration(terms["deadline"]),
            audit_rate=_decimal(terms["audit_rate"]) if "audit_rate" in terms else None,
            audit_sample=terms.get("audit_sample", 0),
        )
    for name in ("effective_from", "effective_until"):
        # A date may be written as quoted text; the schema checked that it is one.
        if isinstance(fields.get(name), str):
            fields[name] = date.fromisoformat(fields[name])
    outcomes = data["outcomes"]
    if _is_format_one(data):
        first = outcomes["ai_resolution"]
        hours = first.get("recontact_window_hours")
        window = parse_duration(data["window"]) if "window" in data else WINDOW_DEFAULT
        if hours is not None:
            window = timedelta(hours=hours)
        handoff = outcomes.get("handoff", {}).get("price", 0)
        fields["outcomes"] = format_one_rules(window)
        fields["pricing"] = format_one_pricing(_decimal(first["price"]), _decimal(handoff))
        fields["window"] = window
        return Contract(**fields)
    fields["outcomes"] = {
        name: OutcomeTerms(
            when=_rule_text(terms["when"]),
            billable=terms.get("billable", True),
            description=terms.get("description", ""),
            price=_decimal(terms["price"]) if "price" in terms else None,
            final_at=terms.get("final_at"),
            case_cost=_decimal(terms["case_cost"]) if "case_cost" in terms else None,
        )
        for name, terms in outcomes.items()
    }
    if "window" in data:
        fields["window"] = parse_duration(data["window"])
    if "exclude" in data:
        fields["exclude"] = _rule_text(data["exclude"])
    fields["gates"] = tuple(
        GateTerms(
            name=gate["name"],
            require=_rule_text(gate["require"]),
            description=gate.get("description", ""),
        )
        for gate in data.get("gates", ())
    )
    if "weights" in data:
        weights = data["weights"]
        fields["weights"] = Weights(
            feature=weights["feature"],
            values={key: _decimal(value) for key, value in weights["values"].items()},
            default=_decimal(weights.get("default", 1)),
        )
    if "pricing" in data:
        try:
            fields["pricing"] = pricing_from_data(data["pricing"])
        except ValueError as error:
            raise ContractProblems([_pricing_problem(error)]) from None
    return Contract(**fields)


def _scalar_line(node: ScalarNode, source: str, offset: int) -> int:
    """The 1-based file line of the character at `offset` in a scalar's value.

    Folding only changes whitespace (a plain or `>` scalar over several lines joins them with
    spaces), so the n-th non-blank character of the value is the n-th non-blank character of the
    scalar's source, after a block scalar's header or a quoted scalar's opening quote. An escape
    in a double-quoted scalar breaks the count: its first line is given then."""
    start, end = node.start_mark.index, node.end_mark.index
    line = node.start_mark.line
    if node.style == '"' and "\\" in source[start:end]:
        return line + 1
    target = sum(1 for character in node.value[:offset] if not character.isspace())
    position = start
    if node.style in ("|", ">"):
        header_end = source.find("\n", start)
        if header_end == -1:
            return line + 1
        position, line = header_end + 1, line + 1
    elif node.style in ("'", '"'):
        position += 1
    seen = 0
    for index in range(position, end):
        character = source[index]
        if character == "\n":
            line += 1
        elif not character.isspace():
            if seen == target:
                return line + 1
            seen += 1
    return node.start_mark.line + 1


def _problem_finding(problem: Problem, places: Mapping[_Path, _Place], source: str) -> _Finding:
    path = problem.path
    while path not in places:  # a field the file does not spell out: the nearest one it does
        path = path[:-1]
    place = places[path]
    field = _dotted(problem.path)
    node = place.value
    if problem.offset is not None and isinstance(node, ScalarNode) and path == problem.path:
        line = _scalar_line(node, source, problem.offset)
        mark = node.start_mark
        return _Finding(line - 1, mark.column, _RANK_AT_NODE, field, problem.reason, line)
    if isinstance(node, MappingNode | SequenceNode) and place.key is not None:
        return _finding_at(place.key, field, problem.reason)
    return _finding_at(node, field, problem.reason)


def _syntax_finding(error: yaml.MarkedYAMLError, field: str, text_length: int) -> _Finding:
    problem = ", ".join(part for part in (error.context, error.problem) if part)
    reason = f"expected valid YAML, found a syntax error: {problem}"
    mark, context = error.problem_mark, error.context_mark
    if mark is not None and context is not None and mark.index >= text_length:
        # The scanner ran off the end of the file (an unclosed quote or bracket): the line
        # where the unfinished construct began is the one to fix.
        mark = context
        reason += " (still open at the end of the file)"
    elif mark is not None and context is not None and context.line != mark.line:
        reason += f" (while reading from line {context.line + 1})"
    mark = mark or context
    if mark is None:
        return _Finding(0, 0, 0, field, reason)
    return _Finding(0, 0, 0, field, reason, mark.line + 1)


def _findings(text: str) -> tuple[list[_Finding], Contract | None]:
    loader: _ContractLoader | None = None
    try:
        # The reader checks the whole text for control characters as the loader is built.
        loader = _ContractLoader(text)
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as error:
        field = _dotted(tuple(loader.key_path) if loader is not None else ())
        return [_syntax_finding(error, field, len(text))], None
    except _TooDeep as error:
        # The full path would be dozens of steps long; the top-level field says where to look.
        field = _dotted(tuple(loader.key_path[:1]) if loader is not None else ())
        reason = f"expected at most {NESTING_DEPTH_MAX} levels of nesting, found more"
        return [_Finding(0, 0, 0, field, reason, error.line)], None
    except yaml.reader.ReaderError as error:  # a control character, which YAML forbids
        line = text.count("\n", 0, error.position) + 1
        character = error.character if isinstance(error.character, int) else ord(error.character)
        reason = f"expected printable text, found the control character {character:#06x}"
        return [_Finding(0, 0, 0, DOCUMENT_FIELD, reason, line)], None
    finally:
        if loader is not None:
            loader.dispose()
    if root is None:
        reason = (
            "expected a contract (a mapping of fields such as contract, version, ...), "
            "found an empty document"
        )
        return [_Finding(0, 0, 0, DOCUMENT_FIELD, reason)], None
    reader = _Reader()
    data = reader.read(root, (), None)
    checked: list[_Finding] = []
    for schema_error in _validator().iter_errors(_schema_view(data)):
        checked.extend(_schema_findings(schema_error, reader.places))
    if isinstance(data, dict):
        checked.extend(_semantic_findings(data, reader.places))
    # A refused alias already has its error; what the schema says of its stand-in is noise.
    refused = [_dotted(path) for path in reader.refused]

    def under_refused(finding: _Finding) -> bool:
        field = finding.field
        return any(field == path or field.startswith(path + ".") for path in refused)

    kept = [finding for finding in checked if not under_refused(finding)]
    findings = sorted(set(reader.findings + kept))
    if findings:
        return findings, None
    # The shape is right: what is left is what the contract's own checks say of its rules and
    # its pricing, placed where each was written.
    try:
        return [], _typed(data)
    except ContractProblems as refused_contract:
        problems = refused_contract.problems
    return sorted({_problem_finding(problem, reader.places, text) for problem in problems}), None


# ---------------------------------------------------------------------------------------------
# Public entry points


def _check(text: str, file: str) -> tuple[list[ContractError], Contract | None]:
    if len(text.encode("utf-8", "surrogatepass")) > CONTRACT_BYTES_MAX:
        reason = f"expected at most {CONTRACT_BYTES_MAX} bytes, found {len(text)} characters"
        return [ContractError(file, None, DOCUMENT_FIELD, reason)], None
    findings, contract = _findings(text)
    return [ContractError(file, item.line, item.field, item.reason) for item in findings], contract


def contract_errors(text: str, file: str = "<string>") -> list[ContractError]:
    """Every error in a contract's text, in document order; empty when it is valid. Errors in
    rules and pricing are found once the file's shape is right."""
    errors, _ = _check(text, file)
    return errors


def parse_contract(text: str, file: str = "<string>") -> Contract:
    """The `Contract` written in `text`; raises `ContractError` for the first error in document
    order. `file` names the source in errors."""
    errors, contract = _check(text, file)
    if errors:
        raise errors[0]
    assert contract is not None
    return contract


def load_contract(path: str | os.PathLike[str]) -> Contract:
    """The `Contract` in the YAML file at `path` (UTF-8); raises `ContractError` for the first
    error, including a file that cannot be read."""
    file = os.fspath(path)
    try:
        with open(file, "rb") as handle:
            raw = handle.read(CONTRACT_BYTES_MAX + 1)
    except OSError as error:
        reason = f"expected a readable file, found: {error.strerror or error}"
        raise ContractError(file, None, DOCUMENT_FIELD, reason) from error
    if len(raw) > CONTRACT_BYTES_MAX:
        reason = f"expected at most {CONTRACT_BYTES_MAX} bytes, found a larger file"
        raise ContractError(file, None, DOCUMENT_FIELD, reason)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        reason = f"expected UTF-8 text, found byte {raw[error.start]:#04x}"
        raise ContractError(file, line, DOCUMENT_FIELD, reason) from error
    return parse_contract(text, file)
