"""The SDK against the service app (`raas serve`'s) over a real SQLite ledger: every helper
makes the event the service stores, a retried batch is stored once, a full queue pushes back
instead of growing, and what is queued at exit is still delivered."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fault_gate import FaultGate

import raas
from raas.core.events import DATA_TYPES, ModelCall
from raas.errors import EventError
from raas.ledger.sqlite import SqliteLedger
from raas.sdk import ClientClosedError, ClientError, DeliveryError, QueueFullError
from raas.service.apikeys import create_api_key
from raas.service.app import create_app
from raas.service.settings import ServiceSettings
from raas.service.sql_store import SqliteServiceStore
from serving import serving

# Disputes are filed by buyers through the API, under their own customer, not by agents.
AGENT_EVENT_TYPES = {name for name in DATA_TYPES if ".dispute." not in name}


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "raas.db"


@pytest.fixture
def key(database: Path) -> str:
    store = SqliteServiceStore(database)
    try:
        secret: str = create_api_key(store, "acme", "ingest", "sdk tests", "test")[0]
    finally:
        store.close()
    return secret


@pytest.fixture
def gate(database: Path, key: str) -> Iterator[FaultGate]:
    """The service app (`raas serve`'s) over the database, behind a fault gate."""
    settings = ServiceSettings(
        database=f"sqlite:///{database}", requests_per_second=10_000, requests_burst=10_000
    )
    app = create_app(settings)
    yield FaultGate(app)
    app.state.services.store.close()
    app.state.services.ledger.close()


@pytest.fixture
def ledger(database: Path, gate: FaultGate) -> Iterator[SqliteLedger]:
    with SqliteLedger(database) as store:
        yield store


@pytest.fixture
def url(gate: FaultGate) -> Iterator[str]:
    with serving(gate) as base:
        yield base


def _client(url: str, key: str, **options: Any) -> raas.Client:
    options.setdefault("backoff_initial_seconds", 0.01)
    options.setdefault("backoff_max_seconds", 0.05)
    return raas.Client(url, api_key=key, tenant="acme", **options)


def _every_event_type(chat: raas.Conversation[Any]) -> list[Any]:
    return [
        chat.started("voice"),
        chat.message("customer", "my order never came"),
        chat.model_call(
            tier="small",
            model="llama-3.1-8b",
            input_tokens=120,
            output_tokens=40,
            latency_ms=350,
            cost="0.00042",
        ),
        chat.tool_call("lookup_order", ok=False, latency_ms=80),
        chat.handoff(context_passed=True, reason="asked for a person"),
        chat.resolution_claimed("human_agent"),
        chat.confirmation(resolved=True),
        chat.csat(5),
        chat.recontact("conv-0"),
        chat.review_verdict(passed=True, reviewer="qa-1", note="fine"),
        chat.business_event("order", amount=Decimal("19.99"), currency="EUR", reference="o-1"),
        chat.holdout("treatment", experiment="nov"),
        chat.closed("solved"),
    ]


def test_every_helper_records_the_event_the_ledger_stores(
    url: str, key: str, ledger: SqliteLedger
) -> None:
    with _client(url, key) as client:
        chat = client.conversation("conv-1", customer="cust-9", intent="delivery")
        _every_event_type(chat)
        client.flush()
        assert client.stats.accepted == len(AGENT_EVENT_TYPES)
    stored = [stored.event for stored in ledger.iter_events("acme")]
    assert {event.type for event in stored} == AGENT_EVENT_TYPES
    assert {(event.customer, event.conversation, event.intent) for event in stored} == {
        ("cust-9", "conv-1", "delivery")
    }
    model_call = next(event.data for event in stored if isinstance(event.data, ModelCall))
    assert model_call.cost == Decimal("0.00042")


def test_a_bad_event_is_refused_at_the_call_site_and_nothing_is_queued(url: str, key: str) -> None:
    with _client(url, key) as client:
        chat = client.conversation("conv-1", customer="cust-9")
        with pytest.raises(EventError, match=r"data\.score"):
            chat.csat(9)
        with pytest.raises(TypeError, match="`cost` must be a Decimal, str or int, not float"):
            chat.model_call(
                tier="t", model="m", input_tokens=1, output_tokens=1, latency_ms=1, cost=0.1
            )
        assert client.stats.queued == 0


def test_an_upstream_that_fails_then_succeeds_stores_each_event_once(
    url: str, key: str, gate: FaultGate, ledger: SqliteLedger
) -> None:
    # The first two sends reach the ledger but their acknowledgements are lost (503), the next
    # one is refused outright: the client must send the same ids again until one is acknowledged.
    gate.fail_after_store = 2
    gate.refuse = 1
    with _client(url, key, batch_events=50) as client:
        chat = client.conversation("conv-1", customer="cust-1")
        for number in range(120):
            chat.message("ai", f"answer {number}")
        client.flush()
        stats = client.stats
    assert gate.failed == 3
    assert ledger.count("acme") == 120
    # The first batch went three more times; the service found it already stored.
    assert (stats.accepted, stats.duplicates) == (70, 50)
    assert stats.retries == 3
    assert stats.failed == 0


def test_a_refused_batch_is_reported_by_flush(url: str, key: str, ledger: SqliteLedger) -> None:
    client = raas.Client(url, api_key="not-a-key", tenant="acme")
    client.conversation("conv-1", customer="cust-1").started()
    with pytest.raises(DeliveryError, match="HTTP 401: the API key is unknown") as raised:
        client.flush()
    assert raised.value.failed_events == 1
    assert client.stats.failed == 1
    client.close()  # the failure was reported once; closing does not raise it again
    assert ledger.count("acme") == 0


def test_retries_end_after_retries_max(url: str, key: str, gate: FaultGate) -> None:
    gate.refuse = 10
    with _client(url, key, retries_max=2) as client:
        client.conversation("conv-1", customer="cust-1").started()
        with pytest.raises(DeliveryError, match="gave up after 2 retries; last: HTTP 503"):
            client.flush()
    assert gate.failed == 3


def test_a_full_queue_raises_instead_of_growing(
    url: str, key: str, gate: FaultGate, ledger: SqliteLedger
) -> None:
    gate.held.clear()  # the service stops answering
    client = _client(url, key, batch_events=2, queue_events_max=5, when_full="raise")
    chat = client.conversation("conv-1", customer="cust-1")
    sent = 0
    with pytest.raises(QueueFullError, match="5 events are waiting to be sent"):
        for number in range(100):
            chat.message("ai", f"m{number}")
            sent += 1
    # At most one batch in flight beside a full queue: memory is bounded by the limits.
    assert 5 <= sent <= 5 + 2
    gate.held.set()
    client.close()
    assert ledger.count("acme") == sent


def test_a_full_queue_blocks_then_raises_after_the_block_timeout(
    url: str, key: str, gate: FaultGate, ledger: SqliteLedger
) -> None:
    gate.held.clear()
    client = _client(url, key, batch_events=1, queue_events_max=3, block_timeout_seconds=0.05)
    chat = client.conversation("conv-1", customer="cust-1")
    sent = 0
    with pytest.raises(QueueFullError):
        for number in range(100):
            chat.message("ai", f"m{number}")
            sent += 1
    assert 3 <= sent <= 3 + 1
    gate.held.set()
    client.close()
    assert ledger.count("acme") == sent


# The sending thread is made to die here; pytest would report its exception as a warning.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_sending_thread_that_stops_is_reported_not_silent(url: str, key: str) -> None:
    client = _client(url, key)
    client._http.close()  # the worker's next send raises an error that is no transport error
    client.conversation("conv-1", customer="cust-1").started()
    with pytest.raises(ClientError, match="1 events not sent: the sending thread stopped"):
        client.flush()
    with pytest.raises(ClientError, match="the sending thread stopped"):
        client.close()


def test_a_closed_client_refuses_events(url: str, key: str) -> None:
    client = _client(url, key)
    client.close()
    client.close()
    with pytest.raises(ClientClosedError):
        client.conversation("conv-1", customer="cust-1").started()


def test_events_queued_when_the_program_exits_are_delivered(
    url: str, key: str, ledger: SqliteLedger
) -> None:
    # A long flush interval: only the exit hook can have sent them.
    script = textwrap.dedent(
        f"""
        import raas
        client = raas.Client({url!r}, api_key={key!r}, tenant="acme",
                             flush_interval_seconds=3600, batch_events=1000)
        chat = client.conversation("conv-exit", customer="cust-1")
        for number in range(30):
            chat.message("ai", f"m{{number}}")
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    assert ledger.count("acme") == 30


# -- the async client ----------------------------------------------------------------------------


def _async_client(gate: FaultGate, key: str, **options: Any) -> raas.AsyncClient:
    options.setdefault("backoff_initial_seconds", 0.01)
    options.setdefault("backoff_max_seconds", 0.05)
    transport = httpx.ASGITransport(app=gate)
    return raas.AsyncClient(
        "http://raas.test", api_key=key, tenant="acme", transport=transport, **options
    )


def test_async_helpers_and_retries_store_each_event_once(
    gate: FaultGate, key: str, ledger: SqliteLedger
) -> None:
    gate.fail_after_store = 1

    async def run() -> raas.sdk.ClientStats:
        async with _async_client(gate, key, batch_events=5) as client:
            chat = client.conversation("conv-a", customer="cust-2", intent="refund")
            for step in _every_event_type(chat):
                await step
            await client.flush()
            return client.stats

    stats = asyncio.run(run())
    assert ledger.count("acme") == len(AGENT_EVENT_TYPES)
    assert {stored.event.type for stored in ledger.iter_events("acme")} == AGENT_EVENT_TYPES
    assert (stats.accepted, stats.duplicates, stats.retries) == (len(AGENT_EVENT_TYPES) - 5, 5, 1)


def test_async_full_queue_raises(gate: FaultGate, key: str, ledger: SqliteLedger) -> None:
    async def run() -> int:
        client = _async_client(gate, key, batch_events=2, queue_events_max=4, when_full="raise")
        chat = client.conversation("conv-a", customer="cust-2")
        sent = 0
        # Nothing runs the sending task between these sends: the queue fills to its bound.
        with pytest.raises(QueueFullError):
            for number in range(100):
                await chat.message("ai", f"m{number}")
                sent += 1
        await client.aclose()
        return sent

    sent = asyncio.run(run())
    assert sent == 4
    assert ledger.count("acme") == 4
