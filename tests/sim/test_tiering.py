"""The simulator with tiering: one tier serves every turn, or the router picks the tier per
problem by difficulty and moves a failed problem up; the tiers' rates decide the outcomes."""

from __future__ import annotations

from collections import Counter

import pytest

from raas.core.events import CustomerConfirmation, Event, Handoff, ModelCall
from raas.sim import ByDifficulty, SimConfig, Tiering, generate
from raas.sim.catalog import INTENT_TRAITS


def _month(tiering: Tiering) -> list[Event]:
    config = SimConfig(
        seed=3, conversations=400, duplicate_rate=0.0, late_rate=0.0, tiering=tiering
    )
    return [event for batch in generate(config) for event in batch]


@pytest.mark.parametrize("tier", ["small", "large"])
def test_one_tier_serves_every_model_call(tier: str) -> None:
    calls = [
        event.data for event in _month(Tiering(serve=tier)) if isinstance(event.data, ModelCall)
    ]
    assert calls and {call.tier for call in calls} == {tier}


def test_the_router_keeps_easy_problems_small_and_moves_failures_up() -> None:
    # Easy and medium problems reach the target on the small tier, hard ones only on the large.
    tiering = Tiering(
        small=ByDifficulty(easy=0.9, medium=0.9, hard=0.1),
        large=ByDifficulty(easy=0.95, medium=0.95, hard=0.9),
        target=0.8,
    )
    first_tier: dict[tuple[str, str | None], str] = {}
    tiers_by_episode: dict[tuple[str, str | None], list[str]] = {}
    for event in _month(tiering):
        if isinstance(event.data, ModelCall):
            key = (event.conversation, event.intent)
            first_tier.setdefault(key, event.data.tier)
            tiers_by_episode.setdefault(key, []).append(event.data.tier)
    by_difficulty: Counter[tuple[str, str]] = Counter(
        (INTENT_TRAITS[intent].difficulty, tier)
        for (_, intent), tier in first_tier.items()
        if intent
    )
    assert by_difficulty[("hard", "small")] == 0 and by_difficulty[("hard", "large")] > 0
    assert by_difficulty[("easy", "large")] == 0 and by_difficulty[("easy", "small")] > 0
    escalated = [tiers for tiers in tiers_by_episode.values() if tiers[0] != tiers[-1]]
    assert escalated and all(tiers[0] == "small" and tiers[-1] == "large" for tiers in escalated)
    # Once moved up, a problem stays on the large tier.
    assert all(tiers.index("large") > tiers.index("small") for tiers in escalated)
    assert all("small" not in tiers[tiers.index("large") :] for tiers in escalated)


def test_the_tier_rates_decide_the_outcomes() -> None:
    sure = ByDifficulty(easy=1.0, medium=1.0, hard=1.0)
    resolved_month = _month(Tiering(serve="large", large=sure))
    assert not any(isinstance(event.data, Handoff) for event in resolved_month)
    never = ByDifficulty(easy=0.0, medium=0.0, hard=0.0)
    failed_month = _month(Tiering(serve="small", small=never))
    confirmations = [
        event.data for event in failed_month if isinstance(event.data, CustomerConfirmation)
    ]
    assert confirmations and not any(confirmation.resolved for confirmation in confirmations)
    assert any(isinstance(event.data, Handoff) for event in failed_month)


def test_tiering_refuses_bad_values() -> None:
    with pytest.raises(ValueError, match="serve must be router, small or large"):
        Tiering(serve="medium")
    with pytest.raises(ValueError, match=r"tiering.small.hard"):
        Tiering(small=ByDifficulty(easy=0.5, medium=0.5, hard=1.5))
    with pytest.raises(ValueError, match="target"):
        Tiering(target=0.0)
