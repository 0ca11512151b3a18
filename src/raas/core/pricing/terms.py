"""The pricing section of a contract: what is charged, and the adjustments after the charges.

Typed, frozen and valid by construction: each `__post_init__` refuses a bad figure with the
field and the value. In YAML, `charges` is a list whose items name their `model`:

    pricing:
      charges:
        - model: per_outcome
          prices: {confirmed_resolution: 0.99, assumed_resolution: 0.79}
        - model: graduated
          outcomes: [procedure_handoff]
          tiers: [{up_to: 1000, price: 1.50}, {price: 1.20}]
      minimum: {amount: 5000.00}
      cap: {amount: 20000.00}
      sla:
        - {metric: csat, at_least: 4.2, credit: 0.05}
      prepaid: {credit: 50000.00}

Every model's shape is in its class's docstring; `pricing_from_data` reads the plain data a
YAML loader gives (numbers as Decimal or int, never float).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any, Final, Literal

import msgspec

from raas.core.pricing.figures import (
    THRESHOLD_PLACES_MAX,
    check_amount,
    check_count,
    check_decimal,
    check_fraction,
    check_name,
    check_price,
)

# A commitment runs over at most ten years of monthly periods.
COMMITMENT_PERIODS_MAX: Final = 120
SLA_METRICS: Final = ("resolution_rate", "p95_latency_ms", "csat")
SlaMetric = Literal["resolution_rate", "p95_latency_ms", "csat"]
# Which way each SLA target points: a rate and a satisfaction score must reach the target, a
# latency must stay under it.
SLA_DIRECTIONS: Final[dict[str, Literal["at_least", "at_most"]]] = {
    "resolution_rate": "at_least",
    "p95_latency_ms": "at_most",
    "csat": "at_least",
}


def _check_outcomes(outcomes: tuple[str, ...], field: str) -> None:
    if not outcomes:
        raise ValueError(f"{field} must name at least one outcome kind, found none")
    for index, name in enumerate(outcomes):
        check_name(name, f"{field}[{index}]")
    repeated = sorted({name for name in outcomes if outcomes.count(name) > 1})
    if repeated:
        raise ValueError(f"{field} must name each outcome kind once, found {repeated} twice")


class _Terms(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every struct in the pricing section: frozen, keyword-only, and refusing an
    unknown field (a misspelt `cap_per_ordr` must not be silently ignored)."""


class Tier(_Terms, frozen=True):
    """One tier of a graduated or volume schedule: `price` per unit up to and including
    `up_to` units in total (cumulative, counted from the first unit of the period); the last
    tier has no `up_to` and takes every unit beyond."""

    price: Decimal
    up_to: int | None = None

    def __post_init__(self) -> None:
        check_price(self.price, "price")
        if self.up_to is not None:
            check_count(self.up_to, "up_to", minimum=1)


def _check_tiers(tiers: tuple[Tier, ...]) -> None:
    if not tiers:
        raise ValueError("tiers must hold at least one tier, found none")
    previous = 0
    for index, tier in enumerate(tiers):
        last = index == len(tiers) - 1
        if tier.up_to is None and not last:
            raise ValueError(
                f"tiers[{index}].up_to is required: only the last tier may be open-ended"
            )
        if tier.up_to is not None and last:
            raise ValueError(
                f"tiers[{index}].up_to must be left out: the last tier takes every unit beyond "
                f"the one before, found {tier.up_to}"
            )
        if tier.up_to is not None:
            if tier.up_to <= previous:
                raise ValueError(
                    f"tiers[{index}].up_to must be greater than the tier before ({previous}), "
                    f"found {tier.up_to}"
                )
            previous = tier.up_to


class _Charge(_Terms, frozen=True, tag_field="model"):
    """A pricing model; its `model` field in YAML is the tag of its class."""


class PerOutcome(_Charge, frozen=True, tag="per_outcome"):
    """A price per outcome kind; an outcome's difficulty weight multiplies its quantity.

    - model: per_outcome
      prices:
        confirmed_resolution: 0.99
        assumed_resolution: 0.79
        procedure_handoff: 1.50
        qualification: 2.00
    """

    prices: dict[str, Decimal]

    def __post_init__(self) -> None:
        if not self.prices:
            raise ValueError("prices must price at least one outcome kind, found none")
        for name, price in self.prices.items():
            check_name(name, "prices")
            check_price(price, f"prices.{name}")

    @property
    def outcomes(self) -> tuple[str, ...]:
        """The outcome kinds this charge prices, in the contract's order."""
        return tuple(self.prices)


class Graduated(_Charge, frozen=True, tag="graduated"):
    """Each unit at the price of its own tier. With tiers up_to 1000 at 0.99, up_to 10000 at
    0.89, then 0.79: units 1..1000 cost 0.99, units 1001..10000 cost 0.89, units from 10001 on
    cost 0.79. Bounds are inclusive: unit number `up_to` is the last of its tier. The units are
    the weighted outcomes of the kinds listed in `outcomes`, together.

        - model: graduated
          outcomes: [confirmed_resolution, assumed_resolution]
          tiers:
            - {up_to: 1000, price: 0.99}
            - {up_to: 10000, price: 0.89}
            - {price: 0.79}
    """

    outcomes: tuple[str, ...]
    tiers: tuple[Tier, ...]

    def __post_init__(self) -> None:
        _check_outcomes(self.outcomes, "outcomes")
        _check_tiers(self.tiers)


class Volume(_Charge, frozen=True, tag="volume"):
    """Every unit at the price of the tier that the period's total reaches. A total of
    exactly `up_to` stays in that tier (inclusive upper bound): with up_to 1000 at 0.99 and
    0.89 beyond, 1000 units cost 1000 x 0.99 and 1001 units cost 1001 x 0.89. Zero units are
    in the first tier.

        - model: volume
          outcomes: [ai_resolution]
          tiers:
            - {up_to: 1000, price: 0.99}
            - {up_to: 10000, price: 0.89}
            - {price: 0.79}
    """

    outcomes: tuple[str, ...]
    tiers: tuple[Tier, ...]

    def __post_init__(self) -> None:
        _check_outcomes(self.outcomes, "outcomes")
        _check_tiers(self.tiers)


class Package(_Charge, frozen=True, tag="package"):
    """Blocks of `size` outcomes at `price` a block. A partial block is either charged as a
    whole block (`partial: round_up`) or its units are charged at `overage_price` each
    (`partial: overage`).

        - model: package
          outcomes: [ai_resolution]
          size: 1000
          price: 850.00
          partial: overage
          overage_price: 0.95
    """

    outcomes: tuple[str, ...]
    size: int
    price: Decimal
    partial: Literal["round_up", "overage"] = "round_up"
    overage_price: Decimal | None = None

    def __post_init__(self) -> None:
        _check_outcomes(self.outcomes, "outcomes")
        check_count(self.size, "size", minimum=1)
        check_price(self.price, "price")
        if self.partial == "overage":
            if self.overage_price is None:
                raise ValueError("overage_price is required when partial is 'overage'")
            check_price(self.overage_price, "overage_price")
        elif self.overage_price is not None:
            raise ValueError(
                f"overage_price must be left out when partial is {self.partial!r} (a partial "
                f"block is charged as a whole one), found {self.overage_price}"
            )


class AccuracyTier(_Terms, frozen=True):
    """The unit price that applies when the period's accuracy is at least `accuracy_at_least`
    (a fraction: 0.98 for 98%)."""

    accuracy_at_least: Decimal
    price: Decimal

    def __post_init__(self) -> None:
        check_fraction(self.accuracy_at_least, "accuracy_at_least", THRESHOLD_PLACES_MAX)
        check_price(self.price, "price")


class AccuracyTiers(_Charge, frozen=True, tag="accuracy_tiers"):
    """Billing by case volume and accuracy: every outcome of the listed kinds (weighted) at
    the price of the first tier whose `accuracy_at_least` the period's accuracy reaches, where
    accuracy = passed / reviewed over the period's reviews (compared exactly: passed >=
    threshold x reviewed). Tiers go from the highest threshold down and the last is at 0, so
    every accuracy has a tier. With fewer than `minimum_sample` reviews the accuracy says too
    little, and `small_sample_price` applies instead.

        - model: accuracy_tiers
          outcomes: [case_audited]
          tiers:
            - {accuracy_at_least: 0.98, price: 4.00}
            - {accuracy_at_least: 0.95, price: 3.50}
            - {accuracy_at_least: 0, price: 2.00}
          minimum_sample: 50
          small_sample_price: 3.50
    """

    outcomes: tuple[str, ...]
    tiers: tuple[AccuracyTier, ...]
    minimum_sample: int
    small_sample_price: Decimal

    def __post_init__(self) -> None:
        _check_outcomes(self.outcomes, "outcomes")
        if not self.tiers:
            raise ValueError("tiers must hold at least one tier, found none")
        for index in range(1, len(self.tiers)):
            before, tier = self.tiers[index - 1], self.tiers[index]
            if tier.accuracy_at_least >= before.accuracy_at_least:
                raise ValueError(
                    f"tiers[{index}].accuracy_at_least must be below the tier before "
                    f"({before.accuracy_at_least}), found {tier.accuracy_at_least}"
                )
        last = self.tiers[-1].accuracy_at_least
        if not last.is_zero():
            raise ValueError(
                f"tiers[{len(self.tiers) - 1}].accuracy_at_least must be 0, so that every "
                f"accuracy has a price, found {last}"
            )
        check_count(self.minimum_sample, "minimum_sample", minimum=1)
        check_price(self.small_sample_price, "small_sample_price")


class BusinessShare(_Charge, frozen=True, tag="business_share"):
    """A share of the business amounts attributed to the AI (order values, in the contract's
    currency), with an optional cap on what one order can cost.

        - model: business_share
          share: 0.08
          cap_per_order: 2.00
    """

    share: Decimal
    cap_per_order: Decimal | None = None

    def __post_init__(self) -> None:
        check_fraction(self.share, "share")
        if self.cap_per_order is not None:
            check_price(self.cap_per_order, "cap_per_order")


class UpliftShare(_Charge, frozen=True, tag="uplift_share"):
    """A share of the net increase of a metric against a holdout control group (see
    raas.core.uplift), billed on the lower bound of the `confidence` interval or on the point
    estimate; a negative figure bills zero.

        - model: uplift_share
          share: 0.0005
          bill_on: lower_bound
          confidence: 0.95
    """

    share: Decimal
    bill_on: Literal["lower_bound", "point_estimate"]
    confidence: Decimal = Decimal("0.95")

    def __post_init__(self) -> None:
        check_fraction(self.share, "share")
        check_fraction(self.confidence, "confidence", THRESHOLD_PLACES_MAX)
        if not 0 < self.confidence < 1:
            raise ValueError(
                f"confidence must be strictly between 0 and 1, found {self.confidence}"
            )


class SavingsShare(_Charge, frozen=True, tag="savings_share"):
    """A share of the savings against a stated baseline cost per case: savings = (baseline -
    actual cost per case) x cases, never below zero.

        - model: savings_share
          baseline_cost_per_case: 4.20
          share: 0.30
    """

    baseline_cost_per_case: Decimal
    share: Decimal

    def __post_init__(self) -> None:
        check_price(self.baseline_cost_per_case, "baseline_cost_per_case")
        check_fraction(self.share, "share")


Charge = (
    PerOutcome
    | Graduated
    | Volume
    | Package
    | AccuracyTiers
    | BusinessShare
    | UpliftShare
    | SavingsShare
)
OutcomeCharge = PerOutcome | Graduated | Volume | Package | AccuracyTiers


class Minimum(_Terms, frozen=True):
    """A minimum commitment of `amount` over each run of `periods` billing periods. In the last
    period of a run, when what the run's periods were charged (their subtotals) falls short of
    `amount`, a true-up line charges the difference. `periods: 1` is a minimum per period (per
    part, when contract versions split the period).

        minimum: {amount: 60000.00, periods: 12}

    Which periods form a run (`raas.core.minimum_runs`): consecutive blocks of `periods`
    months of the contract's zone, counted from the contract's first billing period (the first
    that starts on or after its first version's `effective_from`). A later version stating the
    same minimum continues the run; a version changing it ends the current run without a
    true-up and starts a new run with the first period it rates (it must take effect at the
    start of a period). The earlier periods count what their issued invoices charged (the
    charges before true-up, cap, SLA credit and prepaid drawdown, with the corrections of those
    charges issued since); a run's last period is not settled until every earlier period of
    the run has its invoice.
    """

    amount: Decimal
    periods: int = 1

    def __post_init__(self) -> None:
        check_amount(self.amount, "amount")
        check_count(self.periods, "periods", minimum=1)
        if self.periods > COMMITMENT_PERIODS_MAX:
            raise ValueError(
                f"periods must be at most {COMMITMENT_PERIODS_MAX}, found {self.periods}"
            )


class Cap(_Terms, frozen=True):
    """The most a period can cost: above `amount`, a negative line brings it down.

    cap: {amount: 20000.00}
    """

    amount: Decimal

    def __post_init__(self) -> None:
        check_amount(self.amount, "amount")


class SlaTarget(_Terms, frozen=True):
    """A service level; when the period misses it, `credit` (a fraction of the amount due
    after the minimum and the cap) is credited. Resolution rate and CSAT are `at_least`
    targets, p95 latency (milliseconds) an `at_most` one; a measurement exactly at the target
    meets it.

        - {metric: resolution_rate, at_least: 0.70, credit: 0.05}
        - {metric: p95_latency_ms, at_most: 2000, credit: 0.03}
        - {metric: csat, at_least: 4.2, credit: 0.05}
    """

    metric: SlaMetric
    credit: Decimal
    at_least: Decimal | None = None
    at_most: Decimal | None = None

    def __post_init__(self) -> None:
        if self.metric not in SLA_METRICS:
            raise ValueError(f"metric must be one of {list(SLA_METRICS)}, found {self.metric!r}")
        check_fraction(self.credit, "credit")
        direction = SLA_DIRECTIONS[self.metric]
        other = "at_most" if direction == "at_least" else "at_least"
        if getattr(self, other) is not None:
            raise ValueError(
                f"{other} does not apply to {self.metric} (its target is {direction}), "
                f"found {getattr(self, other)}"
            )
        target = self.target
        if target is None:
            raise ValueError(f"{direction} is required for {self.metric}")
        check_decimal(
            target, direction, maximum_exclusive=Decimal(10) ** 9, places=THRESHOLD_PLACES_MAX
        )
        if self.metric == "resolution_rate":
            check_fraction(target, direction, THRESHOLD_PLACES_MAX)

    @property
    def target(self) -> Decimal | None:
        """The target figure, whichever way it points (never None once constructed)."""
        return self.at_least if SLA_DIRECTIONS[self.metric] == "at_least" else self.at_most

    def is_met(self, measured: Decimal) -> bool:
        """True when `measured` meets the target (a value exactly at the target meets it)."""
        target = self.target
        assert target is not None, "checked in __post_init__"
        return (
            measured >= target if SLA_DIRECTIONS[self.metric] == "at_least" else measured <= target
        )


class Prepaid(_Terms, frozen=True):
    """Prepaid credit: the buyer paid `credit` in advance (in the contract's currency, whole minor
    units), and each invoice draws down as much of what is left as its amount due after the
    minimum true-up, cap and SLA credit uses up; the rest carries over to the next period, and
    once the credit is used up invoices bill in full.

        prepaid: {credit: 50000.00}

    `credit` is the total bought so far, not a new purchase: a top-up is a later version that
    states a higher credit (50000.00 then 80000.00 is 30,000.00 more), and a version may not
    state less than an earlier one (credit bought cannot be taken back). The balance before an
    invoice (`raas.core.prepaid`) is the credit its version states minus what the contract's
    invoices issued for earlier periods drew down (their `prepaid_drawdown` lines, with the
    corrections of those lines that adjustments made since); a period is not settled while an
    earlier period that could have drawn has no issued invoice. The invoice's
    `prepaid_balance` is what is left after it.
    """

    credit: Decimal

    def __post_init__(self) -> None:
        check_amount(self.credit, "credit")


class Pricing(_Terms, frozen=True):
    """The pricing section of a contract: charges in the order the invoice lists them, then
    the adjustments, always applied in this order (see raas.core.pricing.adjustments):

        subtotal of the charges -> minimum true-up -> cap -> SLA credit -> prepaid drawdown

    An outcome kind is priced by at most one charge, and each of business_share, uplift_share
    and savings_share appears at most once, so that nothing is billed twice.
    """

    charges: tuple[Charge, ...]
    minimum: Minimum | None = None
    cap: Cap | None = None
    sla: tuple[SlaTarget, ...] = ()
    prepaid: Prepaid | None = None  # invoices draw down the credit the buyer bought

    def __post_init__(self) -> None:
        if not self.charges:
            raise ValueError("charges must hold at least one charge, found none")
        priced_by: dict[str, int] = {}
        models_seen: dict[str, int] = {}
        for index, charge in enumerate(self.charges):
            if isinstance(charge, OutcomeCharge):
                for name in charge.outcomes:
                    if name in priced_by:
                        raise ValueError(
                            f"charges[{index}] prices the outcome kind {name!r}, which "
                            f"charges[{priced_by[name]}] already prices"
                        )
                    priced_by[name] = index
            else:
                model = type(charge).__struct_config__.tag
                assert isinstance(model, str)
                if model in models_seen:
                    raise ValueError(
                        f"charges[{index}] is a second {model} charge (the first is "
                        f"charges[{models_seen[model]}]): the same amounts would be billed twice"
                    )
                models_seen[model] = index
        seen_metrics: set[str] = set()
        for index, target in enumerate(self.sla):
            if target.metric in seen_metrics:
                raise ValueError(f"sla[{index}] is a second target for {target.metric}")
            seen_metrics.add(target.metric)
        credits = sum((target.credit for target in self.sla), Decimal(0))
        if credits > 1:
            raise ValueError(f"sla credits must add up to at most 1 (100%), found {credits}")
        if (
            self.minimum is not None
            and self.cap is not None
            and self.minimum.periods == 1
            and self.cap.amount < self.minimum.amount
        ):
            raise ValueError(
                f"cap.amount must be at least minimum.amount ({self.minimum.amount}), "
                f"found {self.cap.amount}"
            )

    def priced_outcomes(self) -> tuple[str, ...]:
        """The outcome kinds the charges price, in the order the contract lists them."""
        return tuple(
            name
            for charge in self.charges
            if isinstance(charge, OutcomeCharge)
            for name in charge.outcomes
        )


def _floats(data: Any, path: str) -> Iterator[str]:
    if isinstance(data, float):
        yield path
    elif isinstance(data, Mapping):
        for key, value in data.items():
            yield from _floats(value, f"{path}.{key}")
    elif isinstance(data, list | tuple):
        for index, value in enumerate(data):
            yield from _floats(value, f"{path}[{index}]")


def pricing_from_data(data: Mapping[str, Any]) -> Pricing:
    """The `Pricing` in `data`, plain data as a YAML loader gives it (mappings, lists, text,
    int, Decimal). Raises ValueError naming the field: msgspec's path (`$.charges[0].tiers`)
    followed by the reason. A float anywhere is refused: it has already lost the exact figure."""
    for path in _floats(data, "$"):
        raise ValueError(
            f"expected an exact number (Decimal or int), found a float at `{path}`: read "
            "the contract with a loader that keeps numbers as written"
        )
    if isinstance(data.get("prepaid"), bool):
        raise ValueError(
            f"expected a mapping with the credit bought, found `{data['prepaid']}` - at "
            "`$.prepaid`: state the prepaid credit the invoices draw down, e.g. "
            "`prepaid: {credit: 50000.00}` (or leave `prepaid` out)"
        )
    try:
        return msgspec.convert(data, Pricing, strict=True)
    except msgspec.ValidationError as error:
        raise ValueError(str(error)) from error
