"""What `raas serve` is given: the database, the signing keys, and the limits of every request.

`open_stores` turns a database URL into the ledger and the service store that share it:
`sqlite:///relative.db`, `sqlite:////absolute.db` (or a plain path) for the embedded default,
`postgresql://...` for the production store (PostgresLedger, tables made by Alembic).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from raas.errors import RaasError
from raas.ingest.validate import BATCH_BYTES_MAX
from raas.ledger.store import LedgerStore
from raas.service.store import RUN_ATTEMPTS_MAX, RUN_LEASE, ServiceStore

__all__ = ["DatabaseUrlError", "ServiceSettings", "open_stores", "sqlite_path"]

SQLITE_SCHEME: Final = "sqlite://"
POSTGRES_SCHEMES: Final = ("postgresql://", "postgres://")


class DatabaseUrlError(RaasError):
    """A --db value that names no database raas can open."""


@dataclass(frozen=True, kw_only=True)
class ServiceSettings:
    """Everything the app needs to start; units last in every name."""

    database: str
    signer_key_paths: tuple[Path, ...] = ()
    vendor: str | None = None
    ingest_body_bytes_max: int = BATCH_BYTES_MAX
    body_bytes_max: int = 1024 * 1024
    requests_per_second: float = 100.0
    requests_burst: int = 200
    request_timeout_seconds: float = 120.0
    body_timeout_seconds: float = 30.0
    # A settlement run's claim lapses this long after its server stopped renewing it (killed),
    # and the run is failed after this many claims (see raas.service.worker).
    settlement_lease_seconds: float = RUN_LEASE.total_seconds()
    settlement_attempts_max: int = RUN_ATTEMPTS_MAX
    # Worker processes that parse and make ready ingested batches, so that ingest uses more than
    # the one core the server's interpreter holds (SQLite ledgers; 0: in the server process).
    ingest_processes: int = 0


def sqlite_path(database: str) -> Path | None:
    """The file a SQLite URL (or plain path) names; None for a PostgreSQL URL."""
    if database.startswith(POSTGRES_SCHEMES):
        return None
    if database.startswith(SQLITE_SCHEME):
        rest = database[len(SQLITE_SCHEME) :]
        if not rest.startswith("/") or rest == "/":
            raise DatabaseUrlError(
                f"{database!r}: a SQLite URL reads sqlite:///relative/path.db or "
                "sqlite:////absolute/path.db"
            )
        return Path(rest[1:])
    if "://" in database:
        raise DatabaseUrlError(
            f"{database!r}: expected sqlite:///path.db, postgresql://... or a file path"
        )
    return Path(database)


def open_stores(settings: ServiceSettings) -> tuple[LedgerStore, ServiceStore]:
    """The ledger and the service store behind `settings.database`, both open."""
    path = sqlite_path(settings.database)
    if path is None:
        return _open_postgres(settings)
    from raas.ledger.sqlite import SqliteLedger
    from raas.service.sql_store import SqliteServiceStore

    ledger = SqliteLedger(path, vendor=settings.vendor)
    try:
        return ledger, SqliteServiceStore(path)
    except BaseException:
        ledger.close()
        raise


def _open_postgres(settings: ServiceSettings) -> tuple[LedgerStore, ServiceStore]:
    from raas.service.sql_store import PostgresServiceStore

    try:
        from raas.ledger import postgres
    except ImportError as error:
        raise DatabaseUrlError(
            "this raas has no PostgreSQL ledger yet (raas.ledger.postgres is missing)"
        ) from error
    ledger: LedgerStore = postgres.PostgresLedger(settings.database, vendor=settings.vendor)
    try:
        return ledger, PostgresServiceStore(settings.database)
    except BaseException:
        ledger.close()
        raise
