"""The tier file: each tier's upstream, model, prices and timeout, and the router's policy.

Loaded once at gateway start and validated whole; every error names the field and the reason.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import yaml

from raas.errors import RaasError
from raas.router import Guardrail, Policy, RouterError, parse_policy


class TierFileError(RaasError):
    """A tier file that cannot be read or does not validate; the message names the field."""


Seconds = Annotated[float, msgspec.Meta(gt=0, le=3600)]
Probability = Annotated[float, msgspec.Meta(ge=0, le=1)]


class TierConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One tier: where to send its requests, which model to ask for, and what a call costs.

    A model tier needs `upstream` and `model`; a human tier needs neither (the gateway answers
    with a transfer). Prices are per token (input and output) and/or per GPU-second of latency.
    `success` is the P(resolved) the router assumes when its model has no estimate of the tier.
    """

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    kind: Literal["model", "human"] = "model"
    upstream: str | None = None
    model: str | None = None
    api_key_environment: str | None = None  # the environment variable holding the bearer token
    input_token_price: Decimal = Decimal(0)
    output_token_price: Decimal = Decimal(0)
    gpu_second_price: Decimal = Decimal(0)
    timeout: Seconds = 30.0
    latency_target_ms: Annotated[int, msgspec.Meta(gt=0)] | None = None
    success: Probability | None = None
    # The cost of one typical interaction, for the router's comparison of tiers; default: the
    # token prices at the file's typical token counts, plus the GPU-second price at the timeout's
    # latency target (or one second).
    interaction_cost: Decimal | None = None
    handoff_message: str = (
        "I am transferring you to a human colleague who can help with this. "
        "They will see our conversation so far."
    )

    def __post_init__(self) -> None:
        for field in ("input_token_price", "output_token_price", "gpu_second_price"):
            value: Decimal = getattr(self, field)
            if not value.is_finite() or value < 0:
                raise ValueError(f"tier {self.name!r}: `{field}` must be >= 0, got {value}")
        if self.interaction_cost is not None and not (
            self.interaction_cost.is_finite() and self.interaction_cost >= 0
        ):
            raise ValueError(f"tier {self.name!r}: `interaction_cost` must be >= 0")
        if self.kind == "model":
            if not self.upstream:
                raise ValueError(f"tier {self.name!r}: `upstream` is required for a model tier")
            if not self.upstream.startswith(("http://", "https://")):
                raise ValueError(
                    f"tier {self.name!r}: `upstream` must be an http(s) URL, got {self.upstream!r}"
                )
            if not self.model:
                raise ValueError(f"tier {self.name!r}: `model` is required for a model tier")

    def call_cost(self, input_tokens: int, output_tokens: int, latency_seconds: float) -> Decimal:
        """The cost of one call from this tier's prices (exact: Decimal throughout)."""
        seconds = Decimal(str(round(latency_seconds, 6)))
        return (
            self.input_token_price * input_tokens
            + self.output_token_price * output_tokens
            + self.gpu_second_price * seconds
        )


class TypicalInteraction(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The size of a typical interaction, which turns token prices into a cost per interaction."""

    input_tokens: Annotated[int, msgspec.Meta(ge=0)] = 1000
    output_tokens: Annotated[int, msgspec.Meta(ge=0)] = 200


class RouterSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The router's objective (exactly one of `target` and `budget`) and its guardrails."""

    target: float | None = None
    budget: float | None = None
    guardrails: tuple[Guardrail, ...] = ()
    typical: TypicalInteraction = TypicalInteraction()


class TierFileData(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    currency: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")] = "USD"
    tiers: tuple[TierConfig, ...]
    router: RouterSection = RouterSection(target=0.8)


class TierFile(msgspec.Struct, frozen=True, kw_only=True):
    """A validated tier file: the tiers by name, in file order, and the router's policy."""

    currency: str
    tiers: tuple[TierConfig, ...]
    policy: Policy
    source: str

    def tier(self, name: str) -> TierConfig:
        for tier in self.tiers:
            if tier.name == name:
                return tier
        raise KeyError(name)


def interaction_cost(tier: TierConfig, typical: TypicalInteraction) -> Decimal:
    """The cost the router compares tiers by: one typical interaction at this tier's prices."""
    if tier.interaction_cost is not None:
        return tier.interaction_cost
    seconds = (tier.latency_target_ms or 1000) / 1000
    return tier.call_cost(typical.input_tokens, typical.output_tokens, seconds)


def parse_tier_file(data: Any, source: str = "tier file") -> TierFile:
    """A tier file from plain data (parsed YAML); errors name the file and the field."""
    if not isinstance(data, dict):
        raise TierFileError(f"{source}: expected a mapping with `tiers`, got {type(data).__name__}")
    try:
        parsed = msgspec.convert(data, TierFileData)
    except (msgspec.ValidationError, ValueError) as error:
        raise TierFileError(f"{source}: {error}") from error
    typical = parsed.router.typical
    policy_data: dict[str, Any] = {
        "tiers": [
            {
                "name": tier.name,
                "cost": float(interaction_cost(tier, typical)),
                "kind": tier.kind,
                **({"success": tier.success} if tier.success is not None else {}),
            }
            for tier in parsed.tiers
        ],
        "guardrails": [msgspec.to_builtins(guardrail) for guardrail in parsed.router.guardrails],
    }
    if parsed.router.target is not None:
        policy_data["target"] = parsed.router.target
    if parsed.router.budget is not None:
        policy_data["budget"] = parsed.router.budget
    try:
        policy = parse_policy(policy_data, f"{source}: router")
    except RouterError as error:
        raise TierFileError(str(error)) from error
    return TierFile(currency=parsed.currency, tiers=parsed.tiers, policy=policy, source=source)


def load_tier_file(path: str | Path) -> TierFile:
    """Read and validate a tier file (YAML)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise TierFileError(f"{path}: cannot read the tier file: {error.strerror}") from error
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise TierFileError(f"{path}: not valid YAML: {error}") from error
    return parse_tier_file(data, str(path))
