"""Settlement runs for tests: a POST queues one (202) and `ended_run` reads it back at its Location
until it has succeeded or failed; `queued_run` is one as the store keeps it."""

from __future__ import annotations

import time
from typing import Any, Final

import httpx

from raas.service.store import SettlementRun, utc_now

RUN_WAIT_SECONDS_MAX: Final = 300.0
POLL_SECONDS: Final = 0.02


def ended_run(
    client: httpx.Client, queued: httpx.Response, headers: dict[str, str]
) -> dict[str, Any]:
    """The run `queued` (a POST /v1/settlements answer), once it has ended."""
    assert queued.status_code == 202, queued.text
    assert queued.json()["status"] == "queued"
    location = queued.headers["location"]
    assert location == f"/v1/settlements/{queued.json()['id']}"
    return run_at(client, location, headers)


def run_at(client: httpx.Client, location: str, headers: dict[str, str]) -> dict[str, Any]:
    """The run at `location`, read until it has succeeded or failed."""
    deadline = time.monotonic() + RUN_WAIT_SECONDS_MAX
    while True:
        response = client.get(location, headers=headers)
        assert response.status_code == 200, response.text
        run: dict[str, Any] = response.json()
        if run["status"] in ("succeeded", "failed"):
            return run
        assert time.monotonic() < deadline, f"run still {run['status']}: {run}"
        time.sleep(POLL_SECONDS)


def queued_run(
    tenant: str, run_id: str, *, contract: str = "support", version: int = 1
) -> SettlementRun:
    """A run as POST /v1/settlements queues it (of November 2026, at a log of 10 entries)."""
    return SettlementRun(
        id=run_id,
        tenant=tenant,
        contract=contract,
        version=version,
        period="2026-11",
        checkpoint_size=10,
        status="queued",
        started_at=utc_now(),
        created_by="key:a",
    )
