"""Pricing: a period's outcomes and measurements + the contract's pricing terms -> invoice
lines, each rounded once and carrying the figures it was computed from. Pure, no I/O.

    terms.py        the pricing section of a contract (what the YAML says), one class per model
    usage.py        what the period measured
    models.py       one function per pricing model: terms + usage -> lines
    adjustments.py  minimum true-up -> cap -> SLA credit -> prepaid drawdown, in that order
    period.py       price() and price_period(): charges, subtotal, adjustments, total
    lines.py        PricedLine and PricedPeriod
    figures.py      checks and exact arithmetic shared by the above
"""

from raas.core.pricing.lines import (
    ADJUSTMENT_KINDS,
    CHARGE_KINDS,
    LineKind,
    PricedLine,
    PricedPeriod,
)
from raas.core.pricing.period import price, price_period
from raas.core.pricing.terms import (
    AccuracyTier,
    AccuracyTiers,
    BusinessShare,
    Cap,
    Charge,
    Graduated,
    Minimum,
    Package,
    PerOutcome,
    Prepaid,
    Pricing,
    SavingsShare,
    SlaTarget,
    Tier,
    UpliftShare,
    Volume,
    pricing_from_data,
)
from raas.core.pricing.usage import (
    AttributedAmount,
    CaseCosts,
    Holdout,
    Reviews,
    SlaMeasurements,
    Usage,
    WeightedEpisode,
    unit_weights,
)
from raas.core.uplift import GroupMeasurement

__all__ = [
    "ADJUSTMENT_KINDS",
    "CHARGE_KINDS",
    "AccuracyTier",
    "AccuracyTiers",
    "AttributedAmount",
    "BusinessShare",
    "Cap",
    "CaseCosts",
    "Charge",
    "Graduated",
    "GroupMeasurement",
    "Holdout",
    "LineKind",
    "Minimum",
    "Package",
    "PerOutcome",
    "Prepaid",
    "PricedLine",
    "PricedPeriod",
    "Pricing",
    "Reviews",
    "SavingsShare",
    "SlaMeasurements",
    "SlaTarget",
    "Tier",
    "UpliftShare",
    "Usage",
    "Volume",
    "WeightedEpisode",
    "price",
    "price_period",
    "pricing_from_data",
    "unit_weights",
]
