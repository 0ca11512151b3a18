"""Fixtures for the HTTP API: a served app over a real SQLite file, two tenants with a key of
every scope each, and a signing key for checkpoints."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import raas.service.tenancy
from raas.ledger.keys import generate, write_signer_key
from raas.service.apikeys import create_api_key
from raas.service.app import create_app
from raas.service.settings import ServiceSettings
from raas.service.sql_store import PostgresServiceStore, SqliteServiceStore
from raas.service.store import SCOPES, Scope, ServiceStore

TENANTS = ("acme", "globex")
REPOSITORY = Path(__file__).resolve().parents[2]
ACME_CONTRACT = REPOSITORY / "examples" / "contracts" / "acme-support.yaml"


@dataclass
class Service:
    """A running app (in process), its database file and a key per (tenant, scope)."""

    client: TestClient
    database: Path
    keys: dict[tuple[str, Scope], str]

    def headers(self, tenant: str, scope: Scope) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[(tenant, scope)]}"}


def make_keys(database: Path) -> dict[tuple[str, Scope], str]:
    store = SqliteServiceStore(database)
    try:
        return {
            (tenant, scope): create_api_key(store, tenant, scope, f"{tenant} {scope}", "test")[0]
            for tenant in TENANTS
            for scope in SCOPES
        }
    finally:
        store.close()


def signer_key(folder: Path) -> Path:
    """A signer key file (and its verifier key beside it, as helpdesk-ai.pub)."""
    signer_text, verifier_text = generate("helpdesk-ai")
    path = folder / "helpdesk-ai.key"
    write_signer_key(path, signer_text)
    (folder / "helpdesk-ai.pub").write_text(verifier_text + "\n", encoding="utf-8")
    return path


# The service files disputes at the wall clock's time, and the tests' invoices are of November
# 2026: the clock stands inside that month's dispute window, so the tests keep passing later on.
FILING_MOMENT = datetime(2026, 12, 2, 12, tzinfo=UTC)


@pytest.fixture(autouse=True)
def filing_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(raas.service.tenancy, "utc_now", lambda: FILING_MOMENT)


@pytest.fixture
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Service]:
    """A served app over a new SQLite file; parametrize it indirectly with a number of ingest
    worker processes (raas serve's --ingest-processes; 0 unless given)."""
    database = tmp_path / "raas.db"
    keys = make_keys(database)
    settings = ServiceSettings(
        database=f"sqlite:///{database}",
        signer_key_paths=(signer_key(tmp_path),),
        requests_per_second=10_000,
        requests_burst=10_000,
        ingest_processes=getattr(request, "param", 0),
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield Service(client, database, keys)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServiceStore]:
    """An empty service store on SQLite, then on PostgreSQL."""
    opened: ServiceStore
    if request.param == "sqlite":
        opened = SqliteServiceStore(tmp_path / "service.db")
    else:
        opened = PostgresServiceStore(request.getfixturevalue("postgres_url"))
    try:
        yield opened
    finally:
        opened.close()
