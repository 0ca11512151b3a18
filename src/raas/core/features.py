"""The features a contract's rules can name: one row of plain values per episode. Pure.

The same names and types are the columns of the episode table that the SQL engines settle
from, so a rule means the same thing on the reference judge, DuckDB and Spark. Timings are
durations in whole seconds measured from the AI's last answer in the episode's first
conversation (`resolution_at`), which is where every contract window opens.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final

from raas.core.episodes import Episode
from raas.core.expressions import Type

# "Never came back", as a duration: ten years, longer than any window a contract may state.
INACTIVITY_UNBOUNDED_SECONDS: Final = 10 * 366 * 24 * 3600

FEATURES: Final[Mapping[str, Type]] = {
    "intent": Type.STRING,
    "channel": Type.STRING,  # of the episode's first conversation
    "conversations": Type.INTEGER,
    "ai_answered": Type.BOOL,
    "handed_off": Type.BOOL,
    "handoff_delay": Type.DURATION,  # from the AI's last answer; null: no handoff or no answer
    "context_passed": Type.BOOL,  # null when not handed off
    "confirmed": Type.BOOL,  # the customer's last answer; null when none
    "confirmation_delay": Type.DURATION,
    "csat": Type.INTEGER,
    "recontact_delay": Type.DURATION,  # null when the customer did not come back
    "inactivity": Type.DURATION,  # AI's last answer -> customer's next message (see below)
    "time_to_resolution": Type.DURATION,
    "review_passed": Type.BOOL,  # null when not reviewed
    "model_calls": Type.INTEGER,
    "model_cost": Type.DECIMAL,
    "input_tokens": Type.INTEGER,
    "output_tokens": Type.INTEGER,
    "latency_ms_max": Type.INTEGER,
    "tiers": Type.STRING,  # the tiers that served it, sorted, comma-separated
    "holdout_group": Type.STRING,
    "started_at": Type.TIMESTAMP,
    "resolution_at": Type.TIMESTAMP,
    "handoff_at": Type.TIMESTAMP,  # the first time a human took over; null when none did
}


def episode_features(episode: Episode) -> dict[str, object]:
    """The episode as a row of `FEATURES` (None where a value is unknown)."""
    resolution_at = episode.resolution_at
    return {
        "intent": episode.intent,
        "channel": episode.channels[0] if episode.channels else None,
        "conversations": len(episode.conversations),
        "ai_answered": episode.ai_answered,
        "handed_off": episode.handed_off,
        "handoff_delay": _delay(resolution_at, episode.handoff_at),
        "context_passed": episode.context_passed,
        "confirmed": episode.confirmed,
        "confirmation_delay": _delay(resolution_at, episode.confirmed_at),
        "csat": episode.csat,
        "recontact_delay": _delay(resolution_at, episode.recontact_at),
        "inactivity": _inactivity(episode),
        "time_to_resolution": episode.time_to_resolution_seconds,
        "review_passed": episode.review_passed,
        "model_calls": episode.model_calls,
        "model_cost": episode.model_cost,
        "input_tokens": episode.input_tokens,
        "output_tokens": episode.output_tokens,
        "latency_ms_max": episode.latency_ms_max,
        "tiers": ",".join(episode.tiers),
        "holdout_group": episode.holdout_group,
        "started_at": episode.started_at,
        "resolution_at": resolution_at,
        "handoff_at": episode.handoff_at,
    }


def _inactivity(episode: Episode) -> int | None:
    """Seconds from the AI's last answer to the customer's next message about the problem.

    Outcomes are judged when their window closes, on what the ledger holds then: a customer
    who has not written again is inactive without end, written as INACTIVITY_UNBOUNDED.
    """
    if episode.resolution_at is None:
        return None
    if episode.customer_active_at is None:
        return INACTIVITY_UNBOUNDED_SECONDS
    return _delay(episode.resolution_at, episode.customer_active_at)


def _delay(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    # Floor to whole seconds so that "within 72h" is decided the same way in SQL and Python.
    return int((end - start).total_seconds() // 1)
