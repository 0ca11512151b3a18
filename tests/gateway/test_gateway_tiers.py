"""The tier file: the example loads, and bad files fail with the field named."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from raas.gateway.tiers import TierFileError, load_tier_file, parse_tier_file

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tiers.yaml"


def test_example_tier_file_loads_with_exact_prices_and_policy() -> None:
    tiers = load_tier_file(EXAMPLE)
    assert [tier.name for tier in tiers.tiers] == ["small", "large", "human"]
    small = tiers.tier("small")
    assert small.input_token_price == Decimal("0.00000002")
    assert small.call_cost(1000, 200, 0.5) == Decimal("0.000036")
    assert tiers.policy.target == 0.85
    assert [tier.kind for tier in tiers.policy.tiers] == ["model", "model", "human"]
    assert tiers.policy.guardrails[0].tier == "human"


def _tier(**fields: Any) -> dict[str, Any]:
    return {"name": "small", "upstream": "http://127.0.0.1:1/v1", "model": "m", **fields}


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"tiers": [_tier(timeout="soon")]}, "$.tiers[0].timeout"),
        ({"tiers": [_tier(upstream="ftp://x")]}, "`upstream` must be an http(s) URL"),
        ({"tiers": [_tier(output_token_price="-1")]}, "`output_token_price` must be >= 0"),
        ({"tiers": [_tier(model=None)]}, "`model` is required"),
        ({"tiers": [_tier(colour="red")]}, "colour"),
        ({"tiers": [_tier()], "router": {"target": 2}}, "target must be in (0, 1]"),
        (
            {
                "tiers": [_tier()],
                "router": {"target": 0.8, "guardrails": [{"name": "g", "tier": "nobody"}]},
            },
            "nobody",
        ),
        ({"tiers": []}, "expected at least one tier"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_bad_tier_files_name_the_field(data: Any, named: str) -> None:
    with pytest.raises(TierFileError, match=None) as raised:
        parse_tier_file(data, "tiers.yaml")
    assert named in str(raised.value)
    assert str(raised.value).startswith("tiers.yaml")


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(TierFileError, match="cannot read"):
        load_tier_file(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("tiers: [\n", encoding="utf-8")
    with pytest.raises(TierFileError, match="not valid YAML"):
        load_tier_file(broken)
