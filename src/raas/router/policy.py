"""The routing policy: per-tier success estimates -> the tier to use, with the reason why.

Rules, in the order they apply:
1. Guardrails: the first rule whose keywords appear in the text (whole words or phrases, any
   case) or whose intents name the request's intent forces its tier, whatever the estimates.
2. Escalation: a tier that failed earlier in the episode, and every tier as cheap or cheaper,
   is out for the rest of the episode (`EscalationMemory` remembers failures per episode).
3. The objective, among the tiers left:
   - target: the cheapest tier whose estimated P(resolved) reaches the target; if none does,
     the tier with the highest estimate (the cheaper one on a tie);
   - budget: the tier with the highest estimate among those whose cost fits the budget (the
     cheaper one on a tie); if none fits, the cheapest tier.
A tier's estimate is the model's when the model knows the tier, else the tier's configured
`success` (a human tier always has one); a tier with neither is never chosen by the objective.

A `Decision` is plain data, ready to be written into the model-call event.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal

import msgspec

from raas.router.features import FeatureSummary, RouteRequest
from raas.router.model import Predictor, RouterError, RouterModel

ESCALATION_MEMORY_DEFAULT: Final = 100_000

Rule = Literal["guardrail", "target", "target_unmet", "budget", "over_budget", "only_tier"]


class Tier(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A way to serve a request: its name, its cost per interaction (any unit, the same for all
    tiers), whether a model or a human serves it, and an assumed P(resolved) for when the model
    has no estimate of its own."""

    name: str
    cost: float
    kind: Literal["model", "human"] = "model"
    success: float | None = None


class Guardrail(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A topic rule: requests that mention any of `keywords` or carry one of `intents` go to
    `tier`, whatever the model says (compliance questions to a human, for example)."""

    name: str
    tier: str
    keywords: tuple[str, ...] = ()
    intents: tuple[str, ...] = ()


class Policy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The tiers, the objective (exactly one of `target` and `budget`) and the guardrails."""

    tiers: tuple[Tier, ...]
    target: float | None = None  # the success rate a tier must reach, in (0, 1]
    budget: float | None = None  # the most one interaction may cost, in the tiers' unit
    guardrails: tuple[Guardrail, ...] = ()

    def __post_init__(self) -> None:
        if not self.tiers:
            raise ValueError("tiers: expected at least one tier")
        names = [tier.name for tier in self.tiers]
        for tier in self.tiers:
            if names.count(tier.name) > 1:
                raise ValueError(f"tiers: the name {tier.name!r} appears more than once")
            if not tier.cost >= 0:
                raise ValueError(f"tier {tier.name!r}: cost must be >= 0, got {tier.cost}")
            if tier.success is not None and not 0 <= tier.success <= 1:
                raise ValueError(
                    f"tier {tier.name!r}: success must be in [0, 1], got {tier.success}"
                )
            if tier.kind == "human" and tier.success is None:
                raise ValueError(
                    f"tier {tier.name!r}: a human tier needs `success` (its assumed P(resolved))"
                )
        if (self.target is None) == (self.budget is None):
            raise ValueError("expected exactly one of target and budget")
        if self.target is not None and not 0 < self.target <= 1:
            raise ValueError(f"target must be in (0, 1], got {self.target}")
        if self.budget is not None and not self.budget >= 0:
            raise ValueError(f"budget must be >= 0, got {self.budget}")
        for guardrail in self.guardrails:
            if guardrail.tier not in names:
                raise ValueError(
                    f"guardrail {guardrail.name!r}: tier {guardrail.tier!r} is not one of "
                    f"{', '.join(names)}"
                )
            if not guardrail.keywords and not guardrail.intents:
                raise ValueError(
                    f"guardrail {guardrail.name!r}: expected keywords or intents to match"
                )


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """What the router decided and why: plain data for the model-call event.

    `confidence` is how far the decision was from flipping: the smallest distance, in
    probability, between an estimate that decided it and the threshold (target, or the runner-up
    in budget mode) it was compared with; 1.0 for a guardrail, 0.0 on the boundary.
    """

    tier: str
    kind: Literal["model", "human"]
    probabilities: dict[str, float]
    features: FeatureSummary
    confidence: float
    rule: Rule
    reason: str
    excluded: tuple[str, ...] = ()  # tiers ruled out by earlier failures in the episode
    guardrail: str | None = None  # the guardrail that forced the tier, if one did


def parse_policy(data: Mapping[str, Any], source: str = "policy") -> Policy:
    """A policy from plain data (a tier file's router section); errors name the field."""
    try:
        return msgspec.convert(dict(data), Policy)
    except msgspec.ValidationError as error:
        raise RouterError(f"{source}: {error}") from error
    except ValueError as error:  # from Policy.__post_init__
        raise RouterError(f"{source}: {error}") from error


class Router:
    """A model and a policy, ready to decide. Build once; `decide` is safe to call concurrently
    (it keeps no state of its own)."""

    __slots__ = ("_guardrails", "_order", "policy", "predictor")

    def __init__(self, model: RouterModel | Predictor | None, policy: Policy) -> None:
        self.predictor = (
            model if isinstance(model, Predictor) or model is None else Predictor(model)
        )
        self.policy = policy
        # Cheapest first; a tie keeps the order of the policy file.
        self._order: tuple[Tier, ...] = tuple(
            tier
            for _, _, tier in sorted(
                (tier.cost, position, tier) for position, tier in enumerate(policy.tiers)
            )
        )
        self._guardrails = [
            (guardrail, _keyword_pattern(guardrail.keywords), frozenset(guardrail.intents))
            for guardrail in policy.guardrails
        ]

    def decide(self, request: RouteRequest, failed_tiers: Iterable[str] = ()) -> Decision:
        """The tier for this request, given the tiers that already failed in its episode."""
        predictor = self.predictor
        if predictor is not None:
            features = predictor.features(request)
            estimates = predictor.probabilities(features)
            summary = features.summary
        else:
            estimates, summary = {}, {}
        probabilities: dict[str, float] = {}
        for tier in self._order:
            estimate = estimates.get(tier.name, tier.success)
            if estimate is not None:
                probabilities[tier.name] = estimate

        excluded = self._excluded(failed_tiers)
        for guardrail, pattern, intents in self._guardrails:
            matched = _guardrail_match(request, pattern, intents)
            if matched is not None:
                tier = self._tier(guardrail.tier)
                note = " (it failed earlier in this episode)" if tier.name in excluded else ""
                return Decision(
                    tier=tier.name,
                    kind=tier.kind,
                    probabilities=probabilities,
                    features=summary,
                    confidence=1.0,
                    rule="guardrail",
                    reason=f"guardrail {guardrail.name!r} matched {matched}: "
                    f"forced to tier {tier.name!r}{note}",
                    excluded=tuple(sorted(excluded)),
                    guardrail=guardrail.name,
                )

        allowed = [tier for tier in self._order if tier.name not in excluded]
        if not allowed:
            # Everything failed already: the most capable (dearest) tier is the last resort.
            allowed = [self._order[-1]]
        candidates = [tier for tier in allowed if tier.name in probabilities]
        escalated = f"; tiers {', '.join(sorted(excluded))} failed earlier" if excluded else ""
        if not candidates:
            tier = allowed[0]
            return self._decision(
                tier,
                probabilities,
                summary,
                0.0,
                "only_tier",
                f"no tier has an estimate: the cheapest allowed tier{escalated}",
                excluded,
            )
        if self.policy.target is not None:
            return self._by_target(candidates, probabilities, summary, excluded, escalated)
        return self._by_budget(candidates, probabilities, summary, excluded, escalated)

    def _by_target(
        self,
        candidates: list[Tier],
        probabilities: dict[str, float],
        summary: FeatureSummary,
        excluded: set[str],
        escalated: str,
    ) -> Decision:
        target = self.policy.target
        assert target is not None
        for position, tier in enumerate(candidates):
            estimate = probabilities[tier.name]
            if estimate >= target:
                margins = [estimate - target] + [
                    target - probabilities[cheaper.name] for cheaper in candidates[:position]
                ]
                cheaper = "; cheaper tiers fall short" if position else ""
                return self._decision(
                    tier, probabilities, summary, min(margins), "target",
                    f"cheapest tier with P(resolved) {estimate:.3f} >= target {target:.3f}"
                    f"{cheaper}{escalated}", excluded,
                )  # fmt: skip
        best = max(candidates, key=lambda tier: probabilities[tier.name])  # first max: cheaper
        estimate = probabilities[best.name]
        return self._decision(
            best, probabilities, summary, target - estimate, "target_unmet",
            f"no tier reaches target {target:.3f}: highest P(resolved) {estimate:.3f}{escalated}",
            excluded,
        )  # fmt: skip

    def _by_budget(
        self,
        candidates: list[Tier],
        probabilities: dict[str, float],
        summary: FeatureSummary,
        excluded: set[str],
        escalated: str,
    ) -> Decision:
        budget = self.policy.budget
        assert budget is not None
        affordable = [tier for tier in candidates if tier.cost <= budget]
        if not affordable:
            tier = candidates[0]
            return self._decision(
                tier, probabilities, summary, 0.0, "over_budget",
                f"no tier costs <= budget {budget:g}: the cheapest ({tier.cost:g}){escalated}",
                excluded,
            )  # fmt: skip
        ranked = sorted(affordable, key=lambda tier: -probabilities[tier.name])  # stable
        best = ranked[0]
        estimate = probabilities[best.name]
        runner_up = probabilities[ranked[1].name] if len(ranked) > 1 else 0.0
        return self._decision(
            best, probabilities, summary, estimate - runner_up, "budget",
            f"highest P(resolved) {estimate:.3f} among tiers costing <= {budget:g}{escalated}",
            excluded,
        )  # fmt: skip

    def _decision(
        self,
        tier: Tier,
        probabilities: dict[str, float],
        summary: FeatureSummary,
        confidence: float,
        rule: Rule,
        reason: str,
        excluded: set[str],
    ) -> Decision:
        return Decision(
            tier=tier.name,
            kind=tier.kind,
            probabilities=probabilities,
            features=summary,
            confidence=min(max(confidence, 0.0), 1.0),
            rule=rule,
            reason=reason,
            excluded=tuple(sorted(excluded)),
        )

    def _excluded(self, failed_tiers: Iterable[str]) -> set[str]:
        failed = set(failed_tiers)
        if not failed:
            return set()
        names = [tier.name for tier in self._order]
        positions = [names.index(name) for name in failed if name in names]
        if not positions:
            return set()
        return set(names[: max(positions) + 1])

    def _tier(self, name: str) -> Tier:
        for tier in self._order:
            if tier.name == name:
                return tier
        raise RouterError(f"no tier named {name!r}")  # unreachable: Policy checks guardrails


def _keyword_pattern(keywords: tuple[str, ...]) -> re.Pattern[str] | None:
    if not keywords:
        return None
    # Longest first, so that "credit card" wins over "credit" in the reason.
    alternatives = "|".join(re.escape(keyword) for keyword in sorted(keywords, key=len)[::-1])
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def _guardrail_match(
    request: RouteRequest, pattern: re.Pattern[str] | None, intents: frozenset[str]
) -> str | None:
    if request.intent is not None and request.intent in intents:
        return f"intent {request.intent!r}"
    if pattern is not None and request.text:
        found = pattern.search(request.text)
        if found is not None:
            return f"keyword {found.group(0)!r}"
    return None


class EscalationMemory:
    """Which tiers failed in which episode, for the rest of the episode; bounded (least recently
    touched episodes are forgotten first), so a long-running gateway does not grow without end."""

    __slots__ = ("_failed", "capacity")

    def __init__(self, capacity: int = ESCALATION_MEMORY_DEFAULT) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._failed: OrderedDict[str, frozenset[str]] = OrderedDict()

    def record_failure(self, episode: str, tier: str) -> None:
        """Remember that `tier` failed in `episode`."""
        failed = self._failed.pop(episode, frozenset())
        self._failed[episode] = failed | {tier}
        while len(self._failed) > self.capacity:
            self._failed.popitem(last=False)

    def failed(self, episode: str) -> frozenset[str]:
        """The tiers that failed so far in `episode` (empty if none or forgotten)."""
        failed = self._failed.get(episode)
        if failed is None:
            return frozenset()
        self._failed.move_to_end(episode)
        return failed

    def close(self, episode: str) -> None:
        """Forget an episode that ended (resolved, handed off, window closed)."""
        self._failed.pop(episode, None)
