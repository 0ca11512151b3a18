"""What the simulated agents talk about and run on: intents, utterances, models, prices, channels.

Intents and utterances come from the packaged SGD sample (`data/sgd_sample.json`, CC BY-SA 4.0);
difficulty, popularity, tools, order amounts, model prices and channel timings are raas's own
choices, kept here so the sample stays a verbatim copy.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from typing import Any, Final

from raas.core.events import Channel
from raas.sim.config import Difficulty

SAMPLE_FILE: Final = "sgd_sample.json"


@dataclass(frozen=True, slots=True)
class IntentTraits:
    difficulty: Difficulty
    weight: float  # relative popularity among first contacts
    order_cents: tuple[int, int] | None = None  # intents that sell something: order amount range


# Lookups are easy, searches medium, anything that moves money or books a slot hard or medium.
INTENT_TRAITS: Final[dict[str, IntentTraits]] = {
    "CheckBalance": IntentTraits("easy", 10),
    "TransferMoney": IntentTraits("hard", 6),
    "GetWeather": IntentTraits("easy", 2),
    "GetAlarms": IntentTraits("easy", 2),
    "AddAlarm": IntentTraits("easy", 2),
    "FindRestaurants": IntentTraits("easy", 4),
    "ReserveRestaurant": IntentTraits("medium", 5),
    "SearchHotel": IntentTraits("medium", 6),
    "ReserveHotel": IntentTraits("hard", 5, (9_000, 60_000)),
    "SearchOnewayFlight": IntentTraits("medium", 5),
    "SearchRoundtripFlights": IntentTraits("hard", 3),
    "GetCarsAvailable": IntentTraits("medium", 4),
    "ReserveCar": IntentTraits("hard", 4, (4_500, 40_000)),
    "FindEvents": IntentTraits("easy", 4),
    "BuyEventTickets": IntentTraits("medium", 5, (2_500, 30_000)),
    "FindBus": IntentTraits("easy", 3),
    "BuyBusTicket": IntentTraits("medium", 4, (1_500, 9_000)),
    "GetRide": IntentTraits("medium", 4, (800, 6_000)),
    "FindMovies": IntentTraits("easy", 3),
    "RentMovie": IntentTraits("easy", 3, (299, 599)),
    "FindProvider": IntentTraits("medium", 3),
    "BookAppointment": IntentTraits("hard", 3, (8_000, 20_000)),
    "FindApartment": IntentTraits("medium", 3),
    "ScheduleVisit": IntentTraits("medium", 2),
}


@dataclass(frozen=True, slots=True)
class Intent:
    name: str
    service: str
    difficulty: Difficulty
    weight: float
    tool: str
    openings: tuple[str, ...]
    follow_ups: tuple[str, ...]
    replies: tuple[str, ...]
    order_cents: tuple[int, int] | None


# Costs are counted in units of 10^-8 (of the price's currency) per token: exact for any price
# per million tokens with at most two decimals.
COST_UNIT_DECIMALS: Final = 8


@dataclass(frozen=True, slots=True)
class ModelTier:
    """A model the gateway can route to, with list prices per million tokens."""

    tier: str
    model: str
    input_price_per_million: Decimal
    output_price_per_million: Decimal
    first_token_ms: tuple[int, int]  # time to first token before prefill of the prompt
    prefill_tokens_per_second: int
    decode_tokens_per_second: tuple[int, int]

    # Derived from the prices once, for the hot path.
    input_units_per_token: int = field(init=False)
    output_units_per_token: int = field(init=False)

    def __post_init__(self) -> None:
        units = _units_per_token(self.input_price_per_million)
        object.__setattr__(self, "input_units_per_token", units)
        units = _units_per_token(self.output_price_per_million)
        object.__setattr__(self, "output_units_per_token", units)


def _units_per_token(price_per_million: Decimal) -> int:
    units = price_per_million.scaleb(COST_UNIT_DECIMALS - 6)
    if units != units.to_integral_value():
        raise ValueError(f"price {price_per_million} per million tokens has too many decimals")
    return int(units)


# OpenAI list prices (USD per million tokens) as published in 2024.
SMALL_MODEL: Final = ModelTier(
    tier="small",
    model="gpt-4o-mini-2024-07-18",
    input_price_per_million=Decimal("0.15"),
    output_price_per_million=Decimal("0.60"),
    first_token_ms=(60, 220),
    prefill_tokens_per_second=20_000,
    decode_tokens_per_second=(90, 160),
)
LARGE_MODEL: Final = ModelTier(
    tier="large",
    model="gpt-4o-2024-08-06",
    input_price_per_million=Decimal("2.50"),
    output_price_per_million=Decimal("10.00"),
    first_token_ms=(250, 900),
    prefill_tokens_per_second=8_000,
    decode_tokens_per_second=(35, 80),
)
# How often the router picks the large tier first, and how often a small answer is escalated.
LARGE_TIER_SHARE: Final[dict[Difficulty, float]] = {"easy": 0.08, "medium": 0.25, "hard": 0.5}
ESCALATION_SHARE: Final = 0.08
TOOL_CALL_SHARE: Final[dict[Difficulty, float]] = {"easy": 0.3, "medium": 0.5, "hard": 0.7}
TOOL_FAILURE_SHARE: Final = 0.03
TOOL_LATENCY_MS: Final = (40, 1_500)
SYSTEM_PROMPT_TOKENS: Final = (700, 1_400)
TOOL_RESULT_TOKENS: Final = (80, 450)


@dataclass(frozen=True, slots=True)
class ChannelProfile:
    """Timings (milliseconds, drawn log-uniformly) and sizes that set the channels apart."""

    name: Channel
    turns: dict[Difficulty, tuple[int, int]]
    first_message_ms: tuple[int, int]
    customer_gap_ms: tuple[int, int]
    ai_overhead_ms: tuple[int, int]
    output_tokens: tuple[int, int]
    human_wait_ms: tuple[int, int]
    human_reply_ms: tuple[int, int]
    close_after_ms: tuple[int, int]
    csat_after_ms: tuple[int, int]
    large_tier_factor: float  # voice needs low latency, so the router favours the small tier


SECOND: Final = 1_000
MINUTE: Final = 60 * SECOND
HOUR: Final = 60 * MINUTE

CHANNELS: Final[dict[str, ChannelProfile]] = {
    "chat": ChannelProfile(
        name="chat",
        turns={"easy": (1, 2), "medium": (2, 3), "hard": (2, 4)},
        first_message_ms=(3 * SECOND, 40 * SECOND),
        customer_gap_ms=(8 * SECOND, 2 * MINUTE),
        ai_overhead_ms=(150, 800),
        output_tokens=(40, 220),
        human_wait_ms=(30 * SECOND, 6 * MINUTE),
        human_reply_ms=(20 * SECOND, 2 * MINUTE),
        close_after_ms=(2 * MINUTE, 10 * MINUTE),
        csat_after_ms=(10 * SECOND, 30 * MINUTE),
        large_tier_factor=1.0,
    ),
    "email": ChannelProfile(
        name="email",
        turns={"easy": (1, 1), "medium": (1, 2), "hard": (1, 3)},
        first_message_ms=(1 * SECOND, 5 * SECOND),
        customer_gap_ms=(20 * MINUTE, 10 * HOUR),
        ai_overhead_ms=(1 * MINUTE, 15 * MINUTE),
        output_tokens=(150, 500),
        human_wait_ms=(30 * MINUTE, 8 * HOUR),
        human_reply_ms=(5 * MINUTE, 1 * HOUR),
        close_after_ms=(6 * HOUR, 24 * HOUR),
        csat_after_ms=(10 * MINUTE, 12 * HOUR),
        large_tier_factor=1.2,
    ),
    "voice": ChannelProfile(
        name="voice",
        turns={"easy": (2, 3), "medium": (2, 4), "hard": (3, 5)},
        first_message_ms=(1_500, 6 * SECOND),
        customer_gap_ms=(1_500, 8 * SECOND),
        ai_overhead_ms=(80, 300),
        output_tokens=(20, 90),
        human_wait_ms=(20 * SECOND, 4 * MINUTE),
        human_reply_ms=(3 * SECOND, 15 * SECOND),
        close_after_ms=(1 * SECOND, 5 * SECOND),
        csat_after_ms=(30 * SECOND, 10 * MINUTE),
        large_tier_factor=0.5,
    ),
}

# After the conversation: when reviewers give verdicts and when customers place orders.
REVIEW_AFTER_MS: Final = (2 * HOUR, 48 * HOUR)
ORDER_AFTER_MS: Final = (1 * MINUTE, 2 * HOUR)

# raas's own phrases for the moments the SGD sample has no utterance for.
HANDOFF_ANNOUNCEMENTS: Final = (
    "I'm passing you to a colleague from our support team who can take this further.",
    "Let me connect you with one of my human colleagues; they will be with you shortly.",
    "This needs a person to look at it. I'm transferring you to our support team now.",
)
HANDOFF_REASONS: Final = (
    "customer_asked_for_human",
    "low_confidence",
    "policy_requires_human",
    "negative_sentiment",
)
HUMAN_GREETINGS_WITH_CONTEXT: Final = (
    "Hi, this is Sam from the support team. I've read your conversation with our assistant "
    "and I'll take it from here.",
    "Hello, Maria here. I can see what you discussed so far, give me a moment to check.",
)
HUMAN_GREETINGS_WITHOUT_CONTEXT: Final = (
    "Hi, this is Alex from the support team. Could you tell me what the problem is?",
    "Hello, Jonas here. Sorry, I can't see the earlier messages. What can I do for you?",
)
HUMAN_ANSWERS: Final = (
    "That's done now; you will get a confirmation by email shortly.",
    "I've fixed that on our side. Is there anything else I can help with?",
    "All sorted. I've added a note to your account in case it happens again.",
)
NOT_RESOLVED_REPLIES: Final = (
    "That doesn't solve my problem.",
    "No, that's not what I asked for.",
    "This still isn't working.",
    "That didn't help, sorry.",
)
RECONTACT_OPENERS: Final = (
    "I contacted you about this before and it still isn't sorted.",
    "Following up on my earlier request, it didn't work out.",
    "Me again, about the same thing as last time.",
)
REVIEW_FAILURE_NOTES: Final = (
    "Claimed a resolution without checking the outcome with the customer.",
    "The answer did not match what the customer asked for.",
    "Should have handed off to a human earlier.",
)
REVIEWERS: Final = ("qa-reviewer-1", "qa-reviewer-2", "qa-reviewer-3", "qa-reviewer-4")
HOLDOUT_EXPERIMENT: Final = "ai-agent-holdout"
GENERIC_TOOLS: Final = ("crm.lookup_customer", "knowledge_base.search")


@dataclass(frozen=True, slots=True)
class Catalog:
    intents: tuple[Intent, ...]
    customer_closings: tuple[str, ...]
    ai_closings: tuple[str, ...]


@functools.cache
def load_catalog() -> Catalog:
    """The packaged SGD sample joined with raas's traits; read once per process."""
    raw = (resources.files("raas.sim") / "data" / SAMPLE_FILE).read_text(encoding="utf-8")
    sample: dict[str, Any] = json.loads(raw)
    intents = tuple(_intent(entry) for entry in sample["intents"])
    names = {intent.name for intent in intents}
    if names != set(INTENT_TRAITS):
        raise RuntimeError(
            f"{SAMPLE_FILE} and INTENT_TRAITS disagree: {sorted(names ^ set(INTENT_TRAITS))}"
        )
    return Catalog(
        intents=intents,
        customer_closings=tuple(sample["customer_closings"]),
        ai_closings=tuple(sample["ai_closings"]),
    )


def _intent(entry: dict[str, Any]) -> Intent:
    name: str = entry["name"]
    traits = INTENT_TRAITS[name]
    openings = tuple(entry["openings"])
    return Intent(
        name=name,
        service=entry["service"],
        difficulty=traits.difficulty,
        weight=traits.weight,
        tool=f"{entry['service'].split('_')[0].lower()}.{_snake_case(name)}",
        openings=openings,
        # Some intents have no follow-up in the sample; a customer restating works as well.
        follow_ups=tuple(entry["follow_ups"]) or openings,
        replies=tuple(entry["replies"]),
        order_cents=traits.order_cents,
    )


def _snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
