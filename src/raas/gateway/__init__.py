"""The tiered gateway: an OpenAI-compatible proxy serving model calls from the cheapest tier
likely to succeed, with fallback up the tiers and every call accounted in the ledger."""

from __future__ import annotations

import gc
import logging
from pathlib import Path

from raas.gateway.accounting import EventSink, Identity, LedgerWriter, count_tokens
from raas.gateway.app import Gateway
from raas.gateway.server import GatewayServer, run
from raas.gateway.tiers import (
    TierConfig,
    TierFile,
    TierFileError,
    load_tier_file,
    parse_tier_file,
)
from raas.router import Router, load

logger = logging.getLogger(__name__)


def build_gateway(tier_file: TierFile, sink: EventSink, model_path: Path | None = None) -> Gateway:
    """A gateway over these tiers; without a router model each tier's `success` decides, and
    with none of those the cheapest tier serves."""
    model = load(model_path) if model_path is not None else None
    return Gateway(tier_file, Router(model, tier_file.policy), sink)


def serve(gateway: Gateway, host: str, port: int) -> None:
    """Serve the gateway over HTTP as `raas gateway` does, until SIGINT or SIGTERM; requests in
    flight finish and the ledger writer is flushed on the way out. uvloop is used where it is
    installed (a dependency on Linux and macOS). No access log: the ledger records calls.

    What is alive now (modules, the router model, the tiers) is moved out of the garbage
    collector's reach: every accounted call's event lives until the ledger writer takes it, so
    enough of them reach the oldest generation to start full collections, and each one walked
    every object of the process with the event loop stopped (10 ms or more on this machine).
    Young collections wait for 50,000 new objects instead of 700: a streamed request's objects
    live as long as its answer (120 ms and more), so at 700 each was walked in collections of
    the young generations it outlived, 2.6% of the event loop's time at 200 streams, none at
    50,000 (py-spy); memory grows only by cyclic garbage waiting longer, and the process makes
    little of it."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    run(gateway, host, port, _log_failure)


def _log_failure(error: BaseException) -> None:
    logger.error("a gateway request failed", exc_info=error)


__all__ = [
    "EventSink",
    "Gateway",
    "GatewayServer",
    "Identity",
    "LedgerWriter",
    "TierConfig",
    "TierFile",
    "TierFileError",
    "build_gateway",
    "count_tokens",
    "load_tier_file",
    "parse_tier_file",
    "serve",
]
