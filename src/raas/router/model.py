"""The router's model: per tier, a logistic regression giving P(resolved | features).

Inference is plain Python over arrays of doubles (no NumPy), so the gateway can load a model
without the training stack, and one decision costs an array look-up per feature. The file is JSON
written by msgspec: weights as parallel lists of bucket indices and floats (floats round-trip
exactly), plus what the model was trained on, so a reader can tell where its numbers came from.
"""

from __future__ import annotations

import math
import os
from array import array
from operator import mul
from pathlib import Path
from typing import Final

import msgspec

from raas.errors import RaasError
from raas.router.features import FeatureConfig, Features, RouteRequest, extract

MODEL_FORMAT: Final = "raas-router-model"
MODEL_FORMAT_VERSION: Final = 1


class RouterError(RaasError):
    """Router input is unusable: a model file, a data file, a column or a value, and why."""


class TierWeights(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One tier's logistic regression: `bias` plus `weights[i]` at `indices[i]`.

    `examples` and `resolved` count what it was trained on (weighted), for a reader and for
    telling a tier the model knows from one it has barely seen.
    """

    bias: float
    indices: list[int]
    weights: list[float]
    examples: float
    resolved: float


class TrainingInfo(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where a model came from: the kind of data, its sources, and the settings used."""

    source: str  # "ledger" or "routellm"
    inputs: list[str]
    rows: int
    l2: float
    notes: list[str] = msgspec.field(default_factory=list)


class RouterModel(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Features settings, one `TierWeights` per tier, and how it was trained. Load with `load`."""

    format: str = MODEL_FORMAT
    format_version: int = MODEL_FORMAT_VERSION
    features: FeatureConfig
    tiers: dict[str, TierWeights]
    training: TrainingInfo


class Predictor:
    """A loaded model ready for the hot path: weights as dicts, features config at hand."""

    __slots__ = ("_weights", "config", "model", "tiers")

    def __init__(self, model: RouterModel) -> None:
        self.model = model
        self.config = model.features
        self.tiers: tuple[str, ...] = tuple(model.tiers)
        # One dense array of doubles per tier (half a megabyte at 2**16 buckets): looking a
        # weight up in it touches far less memory than a dict of float objects, which is what
        # a decision's time is mostly spent on.
        self._weights: list[tuple[str, float, array[float]]] = []
        dimension = self.config.dimension
        for name, tier in model.tiers.items():
            weights = array("d", bytes(8 * dimension))
            for index, weight in zip(tier.indices, tier.weights, strict=True):
                weights[index] = weight
            self._weights.append((name, tier.bias, weights))

    def features(self, request: RouteRequest) -> Features:
        """The request's features under this model's settings."""
        return extract(request, self.config)

    def probabilities(self, features: Features) -> dict[str, float]:
        """P(resolved) for each tier the model knows, in the model's tier order."""
        indices, values = features.indices, features.values
        result: dict[str, float] = {}
        for name, bias, weights in self._weights:
            # A dot product over the sparse features, looped in C by map and sum; a bucket the
            # tier never saw in training weighs 0.
            score = bias + sum(map(mul, map(weights.__getitem__, indices), values))
            result[name] = _sigmoid(score)
        return result

    def predict(self, request: RouteRequest) -> dict[str, float]:
        """P(resolved) for each tier, straight from a request."""
        return self.probabilities(self.features(request))


def _sigmoid(score: float) -> float:
    # Split by sign so that exp never overflows for a very confident score.
    if score >= 0:
        return 1.0 / (1.0 + math.exp(-score))
    exponential = math.exp(score)
    return exponential / (1.0 + exponential)


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(RouterModel)


def model_bytes(model: RouterModel) -> bytes:
    """The model as JSON bytes (what `save` writes)."""
    return _encoder.encode(model)


def save(model: RouterModel, path: str | os.PathLike[str]) -> None:
    """Write the model to `path` as JSON, atomically (a crash leaves the old file or the new)."""
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(model_bytes(model))
    partial.replace(target)


def load(path: str | os.PathLike[str]) -> RouterModel:
    """Read a model written by `save`; a file that is not one raises RouterError saying why."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise RouterError(f"{path}: cannot read the router model: {error.strerror}") from error
    return parse_model(data, str(path))


def parse_model(data: bytes, name: str = "<bytes>") -> RouterModel:
    """A model from its JSON bytes; `name` is used in errors."""
    try:
        model = _decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        raise RouterError(f"{name}: not a raas router model: {error}") from error
    except ValueError as error:  # a FeatureConfig out of range or of another version
        raise RouterError(f"{name}: {error}") from error
    if model.format != MODEL_FORMAT or model.format_version != MODEL_FORMAT_VERSION:
        raise RouterError(
            f"{name}: expected format {MODEL_FORMAT!r} version {MODEL_FORMAT_VERSION}, "
            f"got {model.format!r} version {model.format_version}"
        )
    dimension = model.features.dimension
    for tier, weights in model.tiers.items():
        if len(weights.indices) != len(weights.weights):
            raise RouterError(
                f"{name}: tier {tier!r} has {len(weights.indices)} indices but "
                f"{len(weights.weights)} weights; expected as many of each"
            )
        if any(not 0 <= index < dimension for index in weights.indices):
            raise RouterError(
                f"{name}: tier {tier!r} has a weight index outside [0, {dimension}), "
                "the feature space its settings describe"
            )
    return model
