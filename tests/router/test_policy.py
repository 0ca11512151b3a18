"""The policy: the cheapest tier that meets the target, the best tier within a budget,
guardrails that force a tier, and an episode that failed on a tier moving up for good. What
would break: paying for the large model when the small one would do, or a compliance question
answered by the wrong tier."""

from __future__ import annotations

import math

import msgspec
import pytest

from raas.router.features import FeatureConfig, RouteRequest
from raas.router.model import RouterError, RouterModel, TierWeights, TrainingInfo
from raas.router.policy import (
    EscalationMemory,
    Guardrail,
    Policy,
    Router,
    Tier,
    parse_policy,
)


def logit(probability: float) -> float:
    return math.log(probability / (1 - probability))


def model_with(estimates: dict[str, float]) -> RouterModel:
    """A model whose estimate for each tier is a constant (a bias and no weights)."""
    tiers = {
        name: TierWeights(bias=logit(p), indices=[], weights=[], examples=10, resolved=5)
        for name, p in estimates.items()
    }
    info = TrainingInfo(source="test", inputs=[], rows=0, l2=1.0)
    return RouterModel(features=FeatureConfig(hash_bits=8), tiers=tiers, training=info)


TIERS = (
    Tier(name="small", cost=1.0),
    Tier(name="large", cost=10.0),
    Tier(name="human", cost=300.0, kind="human", success=0.97),
)
REQUEST = RouteRequest(text="Where is my parcel?", intent="track_order", channel="chat")


def router(estimates: dict[str, float], **policy: object) -> Router:
    return Router(model_with(estimates), Policy(tiers=TIERS, **policy))  # type: ignore[arg-type]


def test_cheapest_tier_meeting_the_target() -> None:
    decision = router({"small": 0.9, "large": 0.95}, target=0.8).decide(REQUEST)
    assert decision.tier == "small"
    assert decision.rule == "target"
    assert decision.probabilities == pytest.approx({"small": 0.9, "large": 0.95, "human": 0.97})
    assert decision.confidence == pytest.approx(0.1)


def test_small_tier_short_of_target_goes_to_large() -> None:
    decision = router({"small": 0.6, "large": 0.9}, target=0.8).decide(REQUEST)
    assert decision.tier == "large"
    assert decision.confidence == pytest.approx(0.1)  # large is 0.1 above the target
    assert "cheaper tiers fall short" in decision.reason


def test_human_is_a_decision_too() -> None:
    decision = router({"small": 0.5, "large": 0.7}, target=0.9).decide(REQUEST)
    assert (decision.tier, decision.kind) == ("human", "human")


def test_no_tier_meets_the_target_takes_the_best() -> None:
    decision = router({"small": 0.5, "large": 0.7}, target=0.99).decide(REQUEST)
    assert decision.tier == "human"
    assert decision.rule == "target_unmet"


def test_budget_takes_the_best_tier_it_can_afford() -> None:
    decision = router({"small": 0.6, "large": 0.9}, budget=20).decide(REQUEST)
    assert decision.tier == "large"
    assert decision.rule == "budget"
    assert decision.confidence == pytest.approx(0.3)
    cheap = router({"small": 0.6, "large": 0.9}, budget=5).decide(REQUEST)
    assert cheap.tier == "small"
    broke = router({"small": 0.6, "large": 0.9}, budget=0.5).decide(REQUEST)
    assert (broke.tier, broke.rule) == ("small", "over_budget")


def test_equal_estimates_prefer_the_cheaper_tier() -> None:
    decision = router({"small": 0.8, "large": 0.8}, budget=100).decide(REQUEST)
    assert decision.tier == "small"


def test_guardrail_keyword_forces_its_tier() -> None:
    rule = Guardrail(name="finance compliance", tier="human", keywords=("insider trading", "KYC"))
    decide = router({"small": 0.99, "large": 0.99}, target=0.5, guardrails=(rule,)).decide
    decision = decide(RouteRequest(text="Is this insider Trading? asking for a friend"))
    assert (decision.tier, decision.rule, decision.confidence) == ("human", "guardrail", 1.0)
    assert "'insider Trading'" in decision.reason
    # whole words only: "kycx" is not "KYC"
    assert decide(RouteRequest(text="kycx")).tier == "small"


def test_guardrail_intent_forces_its_tier() -> None:
    rule = Guardrail(name="health", tier="large", intents=("medication_question",))
    decision = router({"small": 0.99}, target=0.5, guardrails=(rule,)).decide(
        RouteRequest(text="hello", intent="medication_question")
    )
    assert decision.tier == "large"
    assert "intent 'medication_question'" in decision.reason


def test_failure_on_small_moves_the_episode_up() -> None:
    decide = router({"small": 0.95, "large": 0.9}, target=0.8).decide
    assert decide(REQUEST).tier == "small"
    after = decide(REQUEST, failed_tiers={"small"})
    assert after.tier == "large"
    assert after.excluded == ("small",)
    assert "failed earlier" in after.reason
    # a failure on large rules out large and everything cheaper
    assert decide(REQUEST, failed_tiers={"large"}).tier == "human"


def test_escalation_memory_keeps_failures_for_the_episode() -> None:
    memory = EscalationMemory(capacity=2)
    decide = router({"small": 0.95, "large": 0.9}, target=0.8).decide
    memory.record_failure("conversation-1#billing", "small")
    assert decide(REQUEST, memory.failed("conversation-1#billing")).tier == "large"
    assert decide(REQUEST, memory.failed("conversation-2#billing")).tier == "small"
    memory.record_failure("b", "small")
    memory.record_failure("c", "small")  # capacity 2: the least recently touched goes
    assert memory.failed("conversation-1#billing") == frozenset()
    memory.close("c")
    assert memory.failed("c") == frozenset()


def test_tier_unknown_to_the_model_without_success_is_not_chosen() -> None:
    decision = Router(
        model_with({"small": 0.5}),
        Policy(tiers=(Tier(name="small", cost=1), Tier(name="large", cost=5)), target=0.9),
    ).decide(REQUEST)
    assert decision.tier == "small"
    assert "large" not in decision.probabilities


def test_decision_is_plain_data() -> None:
    decision = router({"small": 0.9, "large": 0.95}, target=0.8).decide(REQUEST)
    plain = msgspec.json.decode(msgspec.json.encode(decision))
    assert plain["tier"] == "small"
    assert plain["features"]["intent"] == "track_order"
    assert set(plain) >= {"tier", "probabilities", "features", "confidence", "reason"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"tiers": [], "target": 0.5}, "at least one tier"),
        ({"tiers": [{"name": "a", "cost": 1}]}, "exactly one of target and budget"),
        ({"tiers": [{"name": "a", "cost": 1}], "target": 1.5}, "target must be in"),
        ({"tiers": [{"name": "a", "cost": "cheap"}], "target": 0.5}, r"tiers\[0\].cost"),
        (
            {"tiers": [{"name": "h", "cost": 1, "kind": "human"}], "target": 0.5},
            "a human tier needs `success`",
        ),
        (
            {
                "tiers": [{"name": "a", "cost": 1}],
                "target": 0.5,
                "guardrails": [{"name": "g", "tier": "b", "keywords": ["x"]}],
            },
            "guardrail 'g': tier 'b' is not one of a",
        ),
    ],
)
def test_bad_policy_is_refused_naming_the_field(data: dict[str, object], message: str) -> None:
    with pytest.raises(RouterError, match=message):
        parse_policy(data, "tiers.yaml")
