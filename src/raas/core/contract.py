"""Contracts: the versioned, effective-dated agreement between a vendor and a buyer.

A contract is a YAML file that a buyer's finance lead can read. This module holds its typed form
and its loader: YAML -> JSON Schema (`contract.schema.json`) -> `Contract`, refusing a bad file
with the file, the line and the field.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

import msgspec

Rounding = Literal["half_even", "half_up", "down"]


class AiResolutionRule(msgspec.Struct, frozen=True, kw_only=True):
    """Billable when no human took the episode over and the customer confirmed, or did not
    come back about the same intent within `recontact_window_hours` of the AI's last answer."""

    price: Decimal
    recontact_window_hours: int = 72


class HandoffRule(msgspec.Struct, frozen=True, kw_only=True):
    """An episode a human took over; free unless the contract prices it."""

    price: Decimal = Decimal(0)


class Outcomes(msgspec.Struct, frozen=True, kw_only=True):
    ai_resolution: AiResolutionRule
    handoff: HandoffRule = HandoffRule()


class Contract(msgspec.Struct, frozen=True, kw_only=True):
    contract: str
    version: int
    effective_from: date
    vendor: str
    buyer: str
    currency: str
    time_zone: str
    outcomes: Outcomes
    effective_until: date | None = None
    period: Literal["month"] = "month"
    count: Literal["per_problem"] = "per_problem"
    rounding: Rounding = "half_even"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def effective_from_utc(self) -> datetime:
        """Start of `effective_from` in the contract's zone, as an aware datetime."""
        return datetime.combine(self.effective_from, datetime.min.time(), tzinfo=self.zone)
