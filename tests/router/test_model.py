"""The model file: a save/load round trip gives bit-identical probabilities, and a file that is
not a router model is refused with the reason. What would break: a gateway that routes
differently from what was evaluated, or that loads garbage silently."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from raas.router.features import FEATURE_VERSION, FeatureConfig, RouteRequest, extract
from raas.router.model import (
    Predictor,
    RouterError,
    TrainingInfo,
    load,
    model_bytes,
    parse_model,
    save,
)
from raas.router.train import Example, train

TEXTS = [
    ("what is my balance", True, True),
    ("check my balance please", True, True),
    ("transfer 500 dollars to my savings and cancel the old card", False, True),
    ("cancel my booking and refund the deposit", False, True),
    ("when do you open", True, True),
    ("dispute a charge from last month, the merchant refused a refund", False, False),
]


def tiny_model() -> tuple[Predictor, list[RouteRequest]]:
    config = FeatureConfig(hash_bits=12)
    requests = [RouteRequest(text=text) for text, _, _ in TEXTS]
    examples: list[Example] = []
    for request, (_, small, large) in zip(requests, TEXTS, strict=True):
        features = extract(request, config)
        examples.append(Example(features, "small", small))
        examples.append(Example(features, "large", large))
    info = TrainingInfo(source="test", inputs=[], rows=len(TEXTS), l2=1e-2)
    return Predictor(train(examples, config, info, l2=1e-2)), requests


def test_round_trip_gives_identical_probabilities(tmp_path: Path) -> None:
    predictor, requests = tiny_model()
    path = tmp_path / "router.json"
    save(predictor.model, path)
    loaded = Predictor(load(path))
    assert loaded.model == predictor.model
    for request in [*requests, RouteRequest(text="something never seen"), RouteRequest()]:
        assert loaded.predict(request) == predictor.predict(request)  # exactly, not approx


def test_training_is_deterministic() -> None:
    first, _ = tiny_model()
    second, _ = tiny_model()
    assert model_bytes(first.model) == model_bytes(second.model)


def test_model_learns_the_direction_of_the_data() -> None:
    predictor, _ = tiny_model()
    easy = predictor.predict(RouteRequest(text="check my balance"))
    hard = predictor.predict(RouteRequest(text="cancel and refund the transfer"))
    assert easy["small"] > hard["small"]
    assert hard["large"] > hard["small"]


def test_not_a_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text('{"hello": 1}')
    with pytest.raises(RouterError, match=r"model\.json: not a raas router model"):
        load(path)
    with pytest.raises(RouterError, match="cannot read"):
        load(tmp_path / "missing.json")


def test_model_of_another_feature_version_is_refused() -> None:
    predictor, _ = tiny_model()
    current = f'"version":{FEATURE_VERSION}'.encode()
    data = model_bytes(predictor.model).replace(current, b'"version":7')
    with pytest.raises(RouterError, match="version 7"):
        parse_model(data, "old.json")


def test_weight_outside_the_feature_space_is_refused() -> None:
    predictor, _ = tiny_model()
    tier = predictor.model.tiers["small"]
    data = model_bytes(predictor.model).replace(
        f'"indices":[{tier.indices[0]},'.encode(), b'"indices":[99999999,', 1
    )
    with pytest.raises(RouterError, match="outside"):
        parse_model(data, "bad.json")


def test_the_gateway_side_needs_no_numpy() -> None:
    # The gateway decides in-process; its import of the router must stay light.
    program = "import sys, raas.router; print('numpy' in sys.modules)"
    output = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "False"
