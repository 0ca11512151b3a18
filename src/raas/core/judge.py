"""The judge: contract + episode -> outcome, with the reason that led to it. Pure.

Contract v1's rule ("AI resolution"): an episode is billable when no human took it over and the
customer confirmed, or did not come back about the same intent within the window. The window
opens at the AI's last answer in the episode's first conversation and is half-open: a recontact
at exactly `window` hours is outside it. An outcome is provisional until its window closes and
final after; invoices bill final outcomes only, in the period in which they became final.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Literal

import msgspec

from raas.core.contract import Contract
from raas.core.episodes import Episode

OutcomeKind = Literal["ai_resolution", "handoff", "reopened", "unresolved"]
OUTCOME_KINDS: tuple[OutcomeKind, ...] = ("ai_resolution", "handoff", "reopened", "unresolved")


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """The verdict on one episode under one contract version, with the reason for it."""

    episode_id: str
    kind: OutcomeKind
    final_at: datetime  # when the verdict can no longer change
    reason: str  # why, in words a buyer can check against the transcript
    basis: Literal["confirmed", "assumed"] | None = None  # for AI resolutions only


def judge_episode(contract: Contract, episode: Episode) -> Outcome:
    """The outcome of one episode under `contract`; the rules are in this module's docstring."""
    window = timedelta(hours=contract.outcomes.ai_resolution.recontact_window_hours)
    hours = contract.outcomes.ai_resolution.recontact_window_hours
    resolution_at = episode.resolution_at

    def outcome(
        kind: OutcomeKind,
        final_at: datetime,
        reason: str,
        basis: Literal["confirmed", "assumed"] | None = None,
    ) -> Outcome:
        return Outcome(
            episode_id=episode.id, kind=kind, final_at=final_at, reason=reason, basis=basis
        )

    handoff_at = episode.handoff_at
    if handoff_at is not None and (resolution_at is None or handoff_at < resolution_at + window):
        context = "with" if episode.context_passed else "without"
        return outcome("handoff", handoff_at, f"handed off to a human {context} context")
    if resolution_at is None:
        return outcome(
            "unresolved",
            episode.last_activity_at + window,
            "the AI never answered and no human took over",
        )
    window_closes_at = resolution_at + window
    confirmed_in_window = (
        episode.confirmed_at is not None and episode.confirmed_at < window_closes_at
    )
    if confirmed_in_window and episode.confirmed is True:
        return outcome(
            "ai_resolution",
            window_closes_at,
            "the customer confirmed the problem resolved",
            "confirmed",
        )
    if confirmed_in_window and episode.confirmed is False:
        return outcome(
            "unresolved", window_closes_at, "the customer said the problem was not resolved"
        )
    recontact_at = episode.recontact_at
    if recontact_at is not None and recontact_at < window_closes_at:
        return outcome(
            "reopened",
            window_closes_at,
            f"the customer came back about {episode.intent!r} after "
            f"{_duration(recontact_at - resolution_at)}, inside the {hours}h window",
        )
    if recontact_at is not None:
        reason = (
            f"the customer came back after {_duration(recontact_at - resolution_at)}, "
            f"outside the {hours}h window"
        )
    else:
        reason = f"the customer did not come back about {episode.intent!r} within {hours}h"
    return outcome("ai_resolution", window_closes_at, reason, "assumed")


def judge(contract: Contract, episodes: Iterable[Episode]) -> Iterator[Outcome]:
    """The outcome of each episode, in the order given."""
    for episode in episodes:
        yield judge_episode(contract, episode)


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s"
