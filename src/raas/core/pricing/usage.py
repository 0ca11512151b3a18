"""What a billing period measured, as pricing reads it: outcomes with their weights, reviews,
attributed business amounts, the holdout, case costs, SLA measurements and balances.

The settlement fills this from the judge's outcomes and the ledger; pricing never looks further.
Every figure is checked on construction, with errors naming the field and the value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

import msgspec

from raas.core.pricing.figures import (
    WEIGHT_EXCLUSIVE_MAX,
    check_amount,
    check_count,
    check_decimal,
    check_fraction,
    check_identifier,
    check_name,
)
from raas.core.uplift import Holdout

__all__ = [
    "AttributedAmount",
    "CaseCosts",
    "Holdout",
    "Reviews",
    "SlaMeasurements",
    "Usage",
    "WeightedEpisode",
    "unit_weights",
]


class _Measured(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of the usage structs: frozen, keyword-only, refusing unknown fields."""


# A settlement of a million outcomes checks the same few weight objects over and over (the
# contract's weights); a Decimal is immutable, so one found valid stays valid. Remembered by
# identity, and kept alive here so that its id is never reused by another object.
_VALID_WEIGHTS: dict[int, Decimal] = {}
_VALID_WEIGHTS_MAX = 256


class WeightedEpisode(_Measured, frozen=True):
    """One final outcome: the episode behind it and its weight (the contract's difficulty
    weight for the episode, 1 when the contract has none). The weight multiplies the quantity
    the outcome adds to its charge."""

    episode: str
    weight: Decimal = Decimal(1)

    def __post_init__(self) -> None:
        check_identifier(self.episode, "episode")
        weight = self.weight
        if _VALID_WEIGHTS.get(id(weight)) is weight:
            return
        check_decimal(
            weight, f"weight of episode {self.episode!r}", maximum_exclusive=WEIGHT_EXCLUSIVE_MAX
        )
        if len(_VALID_WEIGHTS) < _VALID_WEIGHTS_MAX:
            _VALID_WEIGHTS[id(weight)] = weight


class Reviews(_Measured, frozen=True):
    """The period's reviewed sample: how many outcomes were reviewed and how many passed."""

    reviewed: int = 0
    passed: int = 0

    def __post_init__(self) -> None:
        check_count(self.reviewed, "reviews.reviewed")
        check_count(self.passed, "reviews.passed")
        if self.passed > self.reviewed:
            raise ValueError(
                f"reviews.passed must be at most reviews.reviewed ({self.reviewed}), "
                f"found {self.passed}"
            )


class AttributedAmount(_Measured, frozen=True):
    """A business amount attributed to the AI (one order's value, in the contract's
    currency) and the episodes that earned the attribution."""

    order: str
    amount: Decimal
    episodes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_identifier(self.order, "order")
        check_amount(self.amount, f"amount of order {self.order!r}")
        for index, episode in enumerate(self.episodes):
            check_identifier(episode, f"episodes[{index}] of order {self.order!r}")


class CaseCosts(_Measured, frozen=True):
    """The cases handled in the period and what one cost on average, against which a savings
    share compares the contract's baseline; `episodes` are the cases, when known."""

    cases: int
    actual_cost_per_case: Decimal
    episodes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_count(self.cases, "case_costs.cases")
        check_amount(self.actual_cost_per_case, "case_costs.actual_cost_per_case")
        for index, episode in enumerate(self.episodes):
            check_identifier(episode, f"case_costs.episodes[{index}]")


class SlaMeasurements(_Measured, frozen=True):
    """The period's service levels, as the contract's SLA targets name them; a target whose
    measurement is missing cannot be judged, and pricing refuses to guess."""

    resolution_rate: Decimal | None = None  # a fraction: 0.72 for 72%
    p95_latency_ms: Decimal | None = None
    csat: Decimal | None = None  # the average score, on the contract's scale

    def __post_init__(self) -> None:
        if self.resolution_rate is not None:
            check_fraction(self.resolution_rate, "sla.resolution_rate")
        if self.p95_latency_ms is not None:
            check_decimal(
                self.p95_latency_ms, "sla.p95_latency_ms", maximum_exclusive=Decimal(10) ** 12
            )
        if self.csat is not None:
            check_decimal(self.csat, "sla.csat", maximum_exclusive=Decimal(10) ** 6)


class Usage(_Measured, frozen=True):
    """Everything a period measured that a pricing model can bill on.

    `outcomes` maps an outcome kind (as the judge names it) to its final outcomes in the
    period; an episode appears at most once across all kinds. `prepaid_balance` is the
    buyer's prepaid credit left before this invoice (`raas.core.prepaid`).
    `commitment_prior_subtotals` holds the subtotals of the earlier periods in the current run
    of a multi-period minimum commitment, oldest first (empty for the first period of a run,
    and for a per-period minimum); only the run's last period needs them, and settlement gives
    them there alone (`raas.core.minimum_runs`)."""

    outcomes: dict[str, tuple[WeightedEpisode, ...]] = {}
    reviews: Reviews = Reviews()
    attributed: tuple[AttributedAmount, ...] = ()
    holdout: Holdout | None = None
    case_costs: CaseCosts | None = None
    sla: SlaMeasurements = SlaMeasurements()
    prepaid_balance: Decimal | None = None
    commitment_prior_subtotals: tuple[Decimal, ...] = ()

    def __post_init__(self) -> None:
        kind_of: dict[str, str] = {}
        for kind, items in self.outcomes.items():
            check_name(kind, "outcomes")
            for item in items:
                if item.episode in kind_of:
                    raise ValueError(
                        f"outcomes.{kind}: episode {item.episode!r} appears twice (first under "
                        f"{kind_of[item.episode]}); an episode is one outcome"
                    )
                kind_of[item.episode] = kind
        orders: set[str] = set()
        for attributed in self.attributed:
            if attributed.order in orders:
                raise ValueError(f"attributed: order {attributed.order!r} appears twice")
            orders.add(attributed.order)
        if self.prepaid_balance is not None:
            check_amount(self.prepaid_balance, "prepaid_balance")
        for index, subtotal in enumerate(self.commitment_prior_subtotals):
            check_amount(subtotal, f"commitment_prior_subtotals[{index}]")


def unit_weights(
    episodes_by_kind: Mapping[str, Iterable[str]],
) -> dict[str, tuple[WeightedEpisode, ...]]:
    """`Usage.outcomes` for a contract without difficulty weights: every outcome weighs 1."""
    return {
        kind: tuple(WeightedEpisode(episode=episode) for episode in episodes)
        for kind, episodes in episodes_by_kind.items()
    }
