"""The tiered gateway: an OpenAI-compatible proxy serving model calls from the cheapest tier
likely to succeed, with fallback up the tiers and every call accounted in the ledger."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

from raas.gateway.accounting import EventSink, Identity, LedgerWriter, count_tokens
from raas.gateway.app import Gateway
from raas.gateway.tiers import (
    TierConfig,
    TierFile,
    TierFileError,
    load_tier_file,
    parse_tier_file,
)
from raas.router import Router, load


def build_gateway(tier_file: TierFile, sink: EventSink, model_path: Path | None = None) -> Gateway:
    """A gateway over these tiers; without a router model each tier's `success` decides, and
    with none of those the cheapest tier serves."""
    model = load(model_path) if model_path is not None else None
    return Gateway(tier_file, Router(model, tier_file.policy), sink)


def serve(app: Any, host: str, port: int) -> None:
    """Run an ASGI app (the gateway) under uvicorn as `raas gateway` does, until SIGINT or
    SIGTERM; the ledger writer is flushed on the way out. uvloop and httptools are used when
    installed (they are dependencies on Linux and macOS): the pure-Python HTTP parser cost
    several times the CPU per request. No access log or proxy headers: the ledger records calls.

    What is alive now (modules, the router model, the tiers) is moved out of the garbage
    collector's reach: every accounted call's event lives until the ledger writer takes it, so
    enough of them reach the oldest generation to start full collections, and each one walked
    every object of the process with the event loop stopped (10 ms or more on this machine)."""
    import uvicorn

    gc.freeze()
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        access_log=False,
        proxy_headers=False,
    )


__all__ = [
    "EventSink",
    "Gateway",
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
