"""What a simulated month looks like: `SimConfig` holds every knob of the workload simulator.

Probabilities are floats (they steer a random generator, they are never billed); amounts of
money the simulator writes are Decimal and live with the catalog's prices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Final, Literal, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Difficulty = Literal["easy", "medium", "hard"]


class ByDifficulty(NamedTuple):
    """One rate per intent difficulty."""

    easy: float
    medium: float
    hard: float

    def of(self, difficulty: Difficulty) -> float:
        value: float = getattr(self, difficulty)
        return value


class ChannelShares(NamedTuple):
    """How first contacts split over channels; the shares are weights, they need not sum to 1."""

    chat: float
    email: float
    voice: float


DIFFICULTIES: Final[tuple[Difficulty, ...]] = ("easy", "medium", "hard")
DEFAULT_CHANNEL_SHARES: Final = ChannelShares(chat=0.55, email=0.25, voice=0.20)
# Harder problems are handed to a human, or left unresolved, more often.
DEFAULT_HANDOFF_RATES: Final = ByDifficulty(easy=0.05, medium=0.14, hard=0.32)
DEFAULT_UNRESOLVED_RATES: Final = ByDifficulty(easy=0.05, medium=0.10, hard=0.16)
DEFAULT_TIME_ZONE: Final = "Europe/Berlin"
DEFAULT_START: Final = datetime(2026, 11, 1, tzinfo=ZoneInfo(DEFAULT_TIME_ZONE)).astimezone(UTC)
# A customer base of this many customers per first-contact conversation: most write once a month.
CUSTOMERS_PER_CONVERSATION: Final = 0.6


TIER_NAMES: Final = ("small", "large")
# Assumed P(the AI resolves the problem) per tier: a small model close to the large one on
# lookups, far behind on problems that move money or book something.
DEFAULT_SMALL_RESOLVES: Final = ByDifficulty(easy=0.86, medium=0.62, hard=0.30)
DEFAULT_LARGE_RESOLVES: Final = ByDifficulty(easy=0.90, medium=0.78, hard=0.55)


@dataclass(frozen=True, kw_only=True, slots=True)
class Tiering:
    """Which model tier serves the AI's turns, and how likely each tier is to resolve a problem.

    `serve` is "router": the gateway's router picks, per problem, the cheapest tier whose
    P(resolved) for the problem's difficulty reaches `target`, and a problem that fails on the
    small tier moves to the large one for the rest of its episode; or the name of one tier that
    serves every turn, with no escalation. Capabilities nest: what the small tier resolves the
    large one would too, so a problem the small tier failed is resolved by the large one with
    P = (large - small) / (1 - small), and escalation reaches at most the large tier's rate.
    A problem the AI does not resolve is handed off or left unresolved in the ratio of the
    config's `handoff_rates` to its `unresolved_rates`. Without a `Tiering` the simulator draws
    tiers and outcomes independently, as it always did.
    """

    serve: str = "router"
    small: ByDifficulty = DEFAULT_SMALL_RESOLVES
    large: ByDifficulty = DEFAULT_LARGE_RESOLVES
    target: float = 0.6

    def __post_init__(self) -> None:
        if self.serve not in ("router", *TIER_NAMES):
            raise ValueError(f"tiering.serve must be router, small or large, got {self.serve!r}")
        for name in TIER_NAMES:
            for difficulty, rate in getattr(self, name)._asdict().items():
                _require_probability(f"tiering.{name}.{difficulty}", rate)
        if not 0 < self.target <= 1:
            raise ValueError(f"tiering.target must be in (0, 1], got {self.target}")

    def resolves(self, tier: str, difficulty: Difficulty) -> float:
        """P(the AI resolves a problem of this difficulty) on this tier."""
        rates: ByDifficulty = getattr(self, tier)
        return rates.of(difficulty)


@dataclass(frozen=True, kw_only=True, slots=True)
class SimConfig:
    """A seeded month of customer-service traffic; the same config always gives the same bytes.

    `conversations` counts first contacts; recontacts come on top of them (see `SimSummary`).
    First contacts start inside [start, start + span); recontacts, late answers and reviews may
    fall after the span, as they do in a real month. A recontact starts between 15 minutes and
    three windows after the AI's last answer, never within an hour of the window's edge, so that
    "inside" and "outside" the window are never a matter of milliseconds.
    """

    seed: int = 0
    conversations: int = 1_000
    tenant: str = "acme"
    source: str = "urn:raas:helpdesk-ai:agents"
    time_zone: str = DEFAULT_TIME_ZONE
    start: datetime = DEFAULT_START
    span: timedelta | None = None  # None: to the end of the calendar month of `start`
    customers: int | None = None  # None: derived from `conversations`
    batch_events: int = 5_000

    channel_shares: ChannelShares = DEFAULT_CHANNEL_SHARES
    multi_problem_rate: float = 0.15
    handoff_rates: ByDifficulty = DEFAULT_HANDOFF_RATES
    unresolved_rates: ByDifficulty = DEFAULT_UNRESOLVED_RATES
    context_passed_rate: float = 0.75
    confirm_rate: float = 0.35
    csat_answer_rate: float = 0.25
    recontact_rate: float = 0.08  # of AI resolutions the customer did not confirm
    unresolved_recontact_rate: float = 0.45  # of episodes the customer said were not resolved
    recontact_inside_window_share: float = 0.6
    recontact_window_hours: int = 72
    review_rate: float = 0.05
    order_rate: float = 0.30  # of resolved episodes about an intent that sells something
    order_currency: str = "USD"
    holdout_rate: float = 0.05  # customers in the control group, served by humans only
    duplicate_rate: float = 0.01
    late_rate: float = 0.005
    late_batches_min: int = 2
    late_batches_max: int = 4
    tiering: Tiering | None = None  # None: tiers and outcomes drawn independently

    def __post_init__(self) -> None:
        if self.conversations < 0:
            raise ValueError(f"conversations must be >= 0, got {self.conversations}")
        if self.batch_events < 1:
            raise ValueError(f"batch_events must be >= 1, got {self.batch_events}")
        if self.start.tzinfo is None:
            raise ValueError("start must be a timezone-aware datetime")
        if self.span is not None and self.span <= timedelta(0):
            raise ValueError(f"span must be positive, got {self.span}")
        if self.customers is not None and self.customers < 1:
            raise ValueError(f"customers must be >= 1, got {self.customers}")
        if self.recontact_window_hours < 2:
            raise ValueError(
                f"recontact_window_hours must be >= 2, got {self.recontact_window_hours}"
            )
        if not 1 <= self.late_batches_min <= self.late_batches_max:
            raise ValueError(
                "late_batches_min and late_batches_max must satisfy 1 <= min <= max, got "
                f"{self.late_batches_min} and {self.late_batches_max}"
            )
        if not self.tenant or not self.source:
            raise ValueError("tenant and source must not be empty")
        if not (len(self.order_currency) == 3 and self.order_currency.isupper()):
            raise ValueError(
                f"order_currency must be an ISO 4217 code, got {self.order_currency!r}"
            )
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"time_zone {self.time_zone!r} is not a known time zone") from error
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name.endswith(("_rate", "_share")):
                _require_probability(field.name, value)
            elif isinstance(value, ByDifficulty):
                for difficulty, rate in value._asdict().items():
                    _require_probability(f"{field.name}.{difficulty}", rate)
        for difficulty in DIFFICULTIES:
            if self.handoff_rates.of(difficulty) + self.unresolved_rates.of(difficulty) > 1:
                raise ValueError(
                    f"handoff_rates.{difficulty} + unresolved_rates.{difficulty} must be <= 1"
                )
        shares = self.channel_shares
        if min(shares) < 0 or sum(shares) <= 0:
            raise ValueError(f"channel_shares must be >= 0 with a positive sum, got {shares}")

    @property
    def start_utc(self) -> datetime:
        return self.start.astimezone(UTC)

    @property
    def end_utc(self) -> datetime:
        """The end of the span: by default the first instant of the next month, local time."""
        if self.span is not None:
            return self.start_utc + self.span
        zone = ZoneInfo(self.time_zone)
        local = self.start.astimezone(zone)
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        return datetime(year, month, 1, tzinfo=zone).astimezone(UTC)

    @property
    def customer_pool(self) -> int:
        if self.customers is not None:
            return self.customers
        return max(1, round(self.conversations * CUSTOMERS_PER_CONVERSATION))


def _require_probability(name: str, value: object) -> None:
    if not isinstance(value, float | int) or not (0.0 <= value <= 1.0) or math.isnan(value):
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
