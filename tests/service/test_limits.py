"""The limits every request is held to, through the HTTP app: body size (413), body arrival time
(408), handling time (503) and each key's token bucket (429); each answer names the limit and
what broke it, and a refused request stores nothing.

The bucket's clock is the test's, so no test waits for tokens; the timeouts are tiny instead.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import msgspec
from fastapi import FastAPI
from fastapi.testclient import TestClient
from google.rpc.status_pb2 import Status

from conftest import ACME_CONTRACT, make_keys, signer_key
from factories import conversation
from raas.ledger.sqlite import SqliteLedger
from raas.service.app import create_app
from raas.service.settings import ServiceSettings

PROBLEM = "application/problem+json"


class Clock:
    """Monotonic seconds that move only when the test says."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def served(tmp_path: Path, clock: Clock | None = None, **limits: Any) -> tuple[FastAPI, dict]:
    database = tmp_path / "raas.db"
    keys = make_keys(database)
    settings = ServiceSettings(
        database=f"sqlite:///{database}", signer_key_paths=(signer_key(tmp_path),), **limits
    )
    app = create_app(settings, clock=clock or Clock())
    headers = {
        (tenant, scope): {"Authorization": f"Bearer {token}"}
        for (tenant, scope), token in keys.items()
    }
    return app, headers


def retry_problem(response: Any, status: int, retry_after: str, kind: str) -> dict[str, Any]:
    """The problem body of a response that says when to retry."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["retry-after"] == retry_after
    problem: dict[str, Any] = response.json()
    assert problem["type"] == f"urn:raas:problem:{kind}"
    return problem


def events_body(count: int) -> bytes:
    events = [event for i in range(count) for event in conversation(f"c{i}", tenant="acme")]
    return msgspec.json.encode(events)


def test_a_body_past_the_routes_limit_is_refused_with_413_naming_the_limit(
    tmp_path: Path,
) -> None:
    body = events_body(3)
    app, headers = served(tmp_path, ingest_body_bytes_max=len(body) - 1, body_bytes_max=300)
    ingest = {**headers[("acme", "ingest")], "content-type": "application/json"}
    with TestClient(app) as client:
        declared = client.post("/v1/events", content=body, headers=ingest)
        assert declared.status_code == 413
        assert declared.headers["content-type"] == PROBLEM
        problem = declared.json()
        assert problem["type"] == "urn:raas:problem:body-too-large"
        assert f"{len(body):,} bytes are declared (Content-Length)" in problem["detail"]
        assert f"at most {len(body) - 1:,} bytes" in problem["detail"]
        # Without Content-Length (chunked), the limit is met while reading.
        streamed = client.post("/v1/events", content=iter([body[:200], body[200:]]), headers=ingest)
        assert streamed.status_code == 413
        assert "were sent; this endpoint takes at most" in streamed.json()["detail"]
        # Other routes have their own, smaller limit.
        admin = {**headers[("acme", "vendor-admin")], "content-type": "application/yaml"}
        contract = client.post("/v1/contracts", content=ACME_CONTRACT.read_bytes(), headers=admin)
        assert contract.status_code == 413
        assert "at most 300 bytes" in contract.json()["detail"]
        # Just under the limit is taken.
        fits = client.post("/v1/events", content=events_body(2), headers=ingest)
        assert fits.status_code == 200, fits.text
    with SqliteLedger(tmp_path / "raas.db") as ledger:
        assert ledger.count("acme") == len(conversation("c0", tenant="acme")) * 2


def test_an_otlp_export_past_the_limit_gets_a_status_not_a_problem(tmp_path: Path) -> None:
    app, headers = served(tmp_path, ingest_body_bytes_max=64)
    with TestClient(app) as client:
        response = client.post(
            "/v1/traces",
            content=b"\x0a" * 65,
            headers={**headers[("acme", "ingest")], "content-type": "application/x-protobuf"},
        )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/x-protobuf"
    status = Status.FromString(response.content)
    assert status.code == 8  # RESOURCE_EXHAUSTED
    assert "at most 64 bytes" in status.message


def test_each_key_has_a_token_bucket_and_429_says_when_to_retry(tmp_path: Path) -> None:
    clock = Clock()
    app, headers = served(tmp_path, clock, requests_per_second=0.5, requests_burst=2)
    acme, globex = headers[("acme", "buyer")], headers[("globex", "buyer")]
    with TestClient(app) as client:
        assert [client.get("/v1/me", headers=acme).status_code for _ in range(2)] == [200, 200]
        problem = retry_problem(client.get("/v1/me", headers=acme), 429, "2", "rate-limited")
        assert "0.5 requests per second (bursts of 2); retry after 2 s" in problem["detail"]
        # Another key (of another tenant, or of the same) has its own bucket.
        assert client.get("/v1/me", headers=globex).status_code == 200
        assert client.get("/v1/me", headers=headers[("acme", "auditor")]).status_code == 200
        clock.now += 1.9  # not yet a whole token
        assert client.get("/v1/me", headers=acme).status_code == 429
        clock.now += 0.2
        assert client.get("/v1/me", headers=acme).status_code == 200
        assert client.get("/v1/me", headers=acme).status_code == 429
        clock.now += 3600  # a bucket refills to its burst, no further
        assert [client.get("/v1/me", headers=acme).status_code for _ in range(3)] == [
            200,
            200,
            429,
        ]


def test_a_handler_past_the_request_timeout_gets_503_with_retry_after(tmp_path: Path) -> None:
    app, _ = served(tmp_path, request_timeout_seconds=0.05)
    finished: list[bool] = []

    @app.get("/v1/slow")
    async def slow() -> dict[str, str]:
        await asyncio.sleep(30)
        finished.append(True)
        return {"status": "done"}

    with TestClient(app) as client:
        response = client.get("/v1/slow")
        assert client.get("/healthz").status_code == 200, "the server still answers"
    problem = retry_problem(response, 503, "1", "request-timeout")
    assert "handling took more than 0.05 s" in problem["detail"]
    assert problem["instance"] == "/v1/slow"
    assert finished == []


def test_a_body_arriving_too_slowly_gets_408_and_nothing_is_stored(tmp_path: Path) -> None:
    app, headers = served(tmp_path, body_timeout_seconds=0.05)
    body = events_body(1)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/events",
        "raw_path": b"/v1/events",
        "query_string": b"",
        "root_path": "",
        "server": ("testserver", 80),
        "client": ("testclient", 1),
        "headers": [
            (b"authorization", headers[("acme", "ingest")]["Authorization"].encode()),
            (b"content-type", b"application/json"),
        ],
    }
    chunks = iter([body[:10]])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        chunk = next(chunks, None)
        if chunk is None:
            await asyncio.sleep(30)  # the rest never comes
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start, body_message = sent
    assert start["status"] == 408
    response_headers = dict(start["headers"])
    assert response_headers[b"content-type"] == PROBLEM.encode()
    assert response_headers[b"connection"] == b"close"
    problem = json.loads(body_message["body"])
    assert problem["detail"] == "the body did not arrive within 0.05 s"
    with SqliteLedger(tmp_path / "raas.db") as ledger:
        assert ledger.count("acme") == 0
