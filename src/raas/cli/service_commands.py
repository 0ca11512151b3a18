"""`raas serve` (the HTTP API) and `raas apikey create|list|revoke` (its keys).

API keys are administered here, on the machine that holds the database, never over HTTP: the
key text is printed once by `create` and cannot be read back.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Final, cast

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from raas.service.settings import ServiceSettings
from raas.service.store import RUN_ATTEMPTS_MAX, RUN_LEASE

if TYPE_CHECKING:
    from raas.service.store import ServiceStore

DATABASE_DEFAULT: Final = "sqlite:///raas.db"
CLI_ACTOR: Final = "cli"
# One preparing process where there is a second core for it.
INGEST_PROCESSES_DEFAULT: Final = 1 if (os.cpu_count() or 1) > 1 else 0

stdout = Console(soft_wrap=True, highlight=False)

database_url_option = click.option(
    "--db",
    "database",
    default=DATABASE_DEFAULT,
    show_default=True,
    envvar="RAAS_DB",
    help="sqlite:///path.db (or a file path) or postgresql://user@host/name.",
)


@click.command()
@database_url_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option(
    "--key",
    "key_paths",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Signer key(s) for POST /v1/checkpoints (repeat while rotating).",
)
@click.option("--vendor", help="The vendor that names the logs, when the ledger is created.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0.001),
    default=100.0,
    show_default=True,
    help="Requests per second each API key may make (bursts of twice as many).",
)
@click.option(
    "--timeout",
    "timeout_seconds",
    type=click.FloatRange(min=0.1),
    default=120.0,
    show_default=True,
    help="Seconds a request may take before it is answered with 503.",
)
@click.option(
    "--settlement-lease",
    "lease_seconds",
    type=click.FloatRange(min=1),
    default=RUN_LEASE.total_seconds(),
    show_default=True,
    help="Seconds after which a settlement run whose server stopped renewing its claim (killed) "
    "is claimed by another server's worker.",
)
@click.option(
    "--settlement-attempts",
    "attempts_max",
    type=click.IntRange(min=1),
    default=RUN_ATTEMPTS_MAX,
    show_default=True,
    help="Claims of a settlement run before it is failed (each of its servers died running it).",
)
@click.option(
    "--ingest-processes",
    type=click.IntRange(min=0),
    default=INGEST_PROCESSES_DEFAULT,
    show_default=True,
    help="Worker processes that parse and make ready ingested batches while the server writes "
    "(SQLite ledger): ingest then uses another core. 0 parses in the server process.",
)
def serve(
    database: str,
    host: str,
    port: int,
    key_paths: tuple[Path, ...],
    vendor: str | None,
    rate: float,
    timeout_seconds: float,
    lease_seconds: float,
    attempts_max: int,
    ingest_processes: int,
) -> None:
    """Serve the HTTP API (OpenAPI document at /openapi.json, docs at /docs)."""
    # Imported here: only this command needs the web framework and the server.
    import uvicorn

    from raas.service.app import create_app

    settings = ServiceSettings(
        database=database,
        signer_key_paths=key_paths,
        vendor=vendor,
        requests_per_second=rate,
        requests_burst=max(1, int(rate * 2)),
        request_timeout_seconds=timeout_seconds,
        settlement_lease_seconds=lease_seconds,
        settlement_attempts_max=attempts_max,
        ingest_processes=ingest_processes,
    )
    app = create_app(settings)
    click.echo(f"raas serve on http://{host}:{port} (database {database})", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", lifespan="on")


@click.group()
def apikey() -> None:
    """API keys of the HTTP API: each has a tenant and a scope, and is shown once."""


@apikey.command("create")
@database_url_option
@click.option("--tenant", required=True, help="The tenant (buyer log) the key acts on.")
@click.option(
    "--scope",
    required=True,
    type=click.Choice(["ingest", "vendor-admin", "buyer", "auditor"]),
    help="ingest: append only; vendor-admin: everything in the tenant; buyer: read contracts, "
    "invoices and evidence; auditor: read-only, evidence and checkpoints.",
)
@click.option("--label", default="", help="A note for people (who holds the key).")
def create(database: str, tenant: str, scope: str, label: str) -> None:
    """Create a key and print it: this is the only time it is shown."""
    from raas.service.apikeys import create_api_key
    from raas.service.store import Scope

    with _store(database) as store:
        token, key = create_api_key(store, tenant, cast(Scope, scope), label, CLI_ACTOR)
    click.echo(f"key id {key.key_id}, tenant {key.tenant}, scope {key.scope}", err=True)
    click.echo(token)


@apikey.command("list")
@database_url_option
@click.option("--tenant", required=True)
def list_keys(database: str, tenant: str) -> None:
    """The tenant's keys (ids, scopes, labels; never the keys themselves)."""
    with _store(database) as store:
        keys = store.api_keys(tenant)
    table = Table(show_header=True)
    for column in ("key id", "scope", "label", "created", "revoked"):
        table.add_column(column)
    for key in keys:
        table.add_row(
            key.key_id,
            key.scope,
            escape(key.label),
            key.created_at.isoformat(timespec="seconds"),
            key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "",
        )
    stdout.print(table)


@apikey.command("revoke")
@database_url_option
@click.option("--tenant", required=True)
@click.argument("key_id")
def revoke(database: str, tenant: str, key_id: str) -> None:
    """Revoke KEY_ID: requests with it are refused from now on."""
    with _store(database) as store:
        key = store.revoke_api_key(tenant, key_id, CLI_ACTOR)
    if key is None:
        raise click.ClickException(f"tenant {tenant!r} has no key {key_id!r}")
    stdout.print(f"revoked {key.key_id} ({key.scope}) of tenant {escape(key.tenant)}")


@contextmanager
def _store(database: str) -> Iterator[ServiceStore]:
    """The service store behind a --db URL, closed on leaving."""
    from raas.service.settings import sqlite_path
    from raas.service.sql_store import PostgresServiceStore, SqliteServiceStore

    path = sqlite_path(database)
    store: ServiceStore = (
        PostgresServiceStore(database) if path is None else SqliteServiceStore(path)
    )
    try:
        yield store
    finally:
        store.close()
