"""The router: features, models, training and evaluation for choosing a tier per interaction.

What the gateway needs in-process is re-exported here and imports no NumPy: build a `Router`
from a loaded model (`load`) and a `Policy`, then call `decide` per request. Training
(`raas.router.train`, `raas.router.ledger`, `raas.router.routellm`) and evaluation
(`raas.router.evaluate`) need NumPy.
"""

from raas.router.features import FeatureConfig, Features, RouteRequest, extract
from raas.router.model import Predictor, RouterError, RouterModel, load, save
from raas.router.policy import (
    Decision,
    EscalationMemory,
    Guardrail,
    Policy,
    Router,
    Tier,
    parse_policy,
)

__all__ = [
    "Decision",
    "EscalationMemory",
    "FeatureConfig",
    "Features",
    "Guardrail",
    "Policy",
    "Predictor",
    "RouteRequest",
    "Router",
    "RouterError",
    "RouterModel",
    "Tier",
    "extract",
    "load",
    "parse_policy",
    "save",
]
