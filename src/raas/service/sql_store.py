"""`ServiceStore` over SQL: one implementation, two databases (SQLite, PostgreSQL via psycopg 3).

The queries are written once with `?` placeholders; the PostgreSQL connection turns them into
`%s`. Times are stored as ISO 8601 text in SQLite and as TIMESTAMPTZ in PostgreSQL; both read
back as aware UTC datetimes. Driver exceptions become ServiceStoreError here, at the edge.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Protocol, cast

import msgspec

from raas.ingest.otlp import ModelPrice
from raas.service.schema import (
    SQLITE_RUN_LEASE,
    SQLITE_RUN_LEASE_COLUMNS,
    SQLITE_SCHEMA,
    statements,
)
from raas.service.store import (
    AUDIT_RECORDS_MAX,
    RUN_ATTEMPTS_MAX,
    RUN_LEASE,
    ApiKey,
    AuditRecord,
    ContractVersion,
    RunStatus,
    Scope,
    ServiceStoreError,
    SettlementRun,
    Tenant,
    utc_now,
)

__all__ = ["PostgresServiceStore", "SqliteServiceStore"]

_Row = Sequence[Any]
BUSY_TIMEOUT_SECONDS: Final = 30.0

_KEY_COLUMNS: Final = "key_id, tenant, scope, label, secret_sha256, created_at, revoked_at"
_CONTRACT_COLUMNS: Final = (
    "tenant, contract, version, effective_from, effective_until, document, document_sha256, "
    "created_at, created_by"
)
_RUN_COLUMNS: Final = (
    "id, tenant, contract, version, period, checkpoint_size, status, invoice_id, error, "
    "started_at, finished_at, created_by, attempts, lease_expires_at"
)
# A running run whose lease lapsed, by the time bound first and the attempts bound second. A
# run left running with no lease (claimed before leases existed) counts as lapsed.
_LAPSED: Final = "status = 'running' AND (lease_expires_at IS NULL OR lease_expires_at <= ?)"


class _Cursor(Protocol):
    def run(self, query: str, parameters: Sequence[Any] = ()) -> list[_Row]: ...


class _SqlServiceStore:
    """The queries; a subclass gives `_transaction` (one atomic unit, serialised) and the
    conversion of stored times and dates."""

    def _transaction(self, *, write: bool = False) -> AbstractContextManager[_Cursor]:
        raise NotImplementedError

    def _time(self, value: datetime | None) -> Any:
        return value

    def _date(self, value: date | None) -> Any:
        return value

    def _read_time(self, value: Any) -> datetime:
        return cast(datetime, value)

    def _read_date(self, value: Any) -> date:
        return cast(date, value)

    # -- tenants and keys ---------------------------------------------------------------------

    def ensure_tenant(self, name: str, actor: str) -> Tenant:
        with self._transaction(write=True) as cursor:
            rows = cursor.run(
                "SELECT name, created_at FROM service_tenants WHERE name = ?", (name,)
            )
            if rows:
                return Tenant(name=rows[0][0], created_at=self._read_time(rows[0][1]))
            now = utc_now()
            cursor.run(
                "INSERT INTO service_tenants (name, created_at) VALUES (?, ?)",
                (name, self._time(now)),
            )
            self._audit(cursor, name, actor, "tenant.create", name, "")
            return Tenant(name=name, created_at=now)

    def tenants(self) -> list[Tenant]:
        with self._transaction() as cursor:
            rows = cursor.run("SELECT name, created_at FROM service_tenants ORDER BY name")
        return [Tenant(name=row[0], created_at=self._read_time(row[1])) for row in rows]

    def add_api_key(self, key: ApiKey, actor: str) -> None:
        with self._transaction(write=True) as cursor:
            if not cursor.run("SELECT 1 FROM service_tenants WHERE name = ?", (key.tenant,)):
                raise ServiceStoreError(f"there is no tenant {key.tenant!r}")
            if cursor.run("SELECT 1 FROM service_api_keys WHERE key_id = ?", (key.key_id,)):
                raise ServiceStoreError(f"an API key with id {key.key_id!r} exists")
            cursor.run(
                f"INSERT INTO service_api_keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    key.key_id,
                    key.tenant,
                    key.scope,
                    key.label,
                    key.secret_sha256,
                    self._time(key.created_at),
                    self._time(key.revoked_at),
                ),
            )
            self._audit(cursor, key.tenant, actor, "apikey.create", key.key_id, key.scope)

    def api_key(self, key_id: str) -> ApiKey | None:
        with self._transaction() as cursor:
            rows = cursor.run(
                f"SELECT {_KEY_COLUMNS} FROM service_api_keys WHERE key_id = ?", (key_id,)
            )
        return self._key(rows[0]) if rows else None

    def api_keys(self, tenant: str) -> list[ApiKey]:
        with self._transaction() as cursor:
            rows = cursor.run(
                f"SELECT {_KEY_COLUMNS} FROM service_api_keys WHERE tenant = ? ORDER BY key_id",
                (tenant,),
            )
        return [self._key(row) for row in rows]

    def revoke_api_key(self, tenant: str, key_id: str, actor: str) -> ApiKey | None:
        with self._transaction(write=True) as cursor:
            rows = cursor.run(
                f"SELECT {_KEY_COLUMNS} FROM service_api_keys WHERE tenant = ? AND key_id = ?",
                (tenant, key_id),
            )
            if not rows:
                return None
            key = self._key(rows[0])
            if key.revoked_at is not None:
                return key
            now = utc_now()
            cursor.run(
                "UPDATE service_api_keys SET revoked_at = ? WHERE tenant = ? AND key_id = ?",
                (self._time(now), tenant, key_id),
            )
            self._audit(cursor, tenant, actor, "apikey.revoke", key_id, key.scope)
        return msgspec.structs.replace(key, revoked_at=now)

    def _key(self, row: _Row) -> ApiKey:
        return ApiKey(
            key_id=row[0],
            tenant=row[1],
            scope=cast(Scope, row[2]),
            label=row[3],
            secret_sha256=row[4],
            created_at=self._read_time(row[5]),
            revoked_at=None if row[6] is None else self._read_time(row[6]),
        )

    # -- the audit log ------------------------------------------------------------------------

    def audit(self, tenant: str, actor: str, action: str, target: str, detail: str = "") -> None:
        with self._transaction(write=True) as cursor:
            self._audit(cursor, tenant, actor, action, target, detail)

    def _audit(
        self, cursor: _Cursor, tenant: str, actor: str, action: str, target: str, detail: str
    ) -> None:
        cursor.run(
            "INSERT INTO service_audit_log (at, tenant, actor, action, target, detail) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (self._time(utc_now()), tenant, actor, action, target, detail),
        )

    def audit_log(
        self, tenant: str, *, after_id: int = 0, limit: int = AUDIT_RECORDS_MAX
    ) -> list[AuditRecord]:
        limit = max(0, min(limit, AUDIT_RECORDS_MAX))
        with self._transaction() as cursor:
            rows = cursor.run(
                "SELECT id, at, tenant, actor, action, target, detail FROM service_audit_log "
                "WHERE tenant = ? AND id > ? ORDER BY id LIMIT ?",
                (tenant, after_id, limit),
            )
        return [
            AuditRecord(
                id=int(row[0]),
                at=self._read_time(row[1]),
                tenant=row[2],
                actor=row[3],
                action=row[4],
                target=row[5],
                detail=row[6],
            )
            for row in rows
        ]

    # -- contracts ----------------------------------------------------------------------------

    def add_contract_version(self, tenant: str, version: ContractVersion, actor: str) -> None:
        if version.tenant != tenant:
            raise ServiceStoreError(
                f"contract version of tenant {version.tenant!r} given for tenant {tenant!r}"
            )
        with self._transaction(write=True) as cursor:
            if cursor.run(
                "SELECT 1 FROM service_contract_versions "
                "WHERE tenant = ? AND contract = ? AND version = ?",
                (tenant, version.contract, version.version),
            ):
                raise ServiceStoreError(
                    f"contract {version.contract!r} version {version.version} exists"
                )
            cursor.run(
                f"INSERT INTO service_contract_versions ({_CONTRACT_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    tenant,
                    version.contract,
                    version.version,
                    self._date(version.effective_from),
                    self._date(version.effective_until),
                    version.document,
                    version.document_sha256,
                    self._time(version.created_at),
                    version.created_by,
                ),
            )
            self._audit(
                cursor,
                tenant,
                actor,
                "contract.create",
                f"{version.contract} v{version.version}",
                f"effective from {version.effective_from}",
            )

    def contract_version(self, tenant: str, contract: str, version: int) -> ContractVersion | None:
        with self._transaction() as cursor:
            rows = cursor.run(
                f"SELECT {_CONTRACT_COLUMNS} FROM service_contract_versions "
                "WHERE tenant = ? AND contract = ? AND version = ?",
                (tenant, contract, version),
            )
        return self._contract(rows[0]) if rows else None

    def contract_versions(self, tenant: str, contract: str | None = None) -> list[ContractVersion]:
        query = f"SELECT {_CONTRACT_COLUMNS} FROM service_contract_versions WHERE tenant = ?"
        parameters: tuple[Any, ...] = (tenant,)
        if contract is not None:
            query += " AND contract = ?"
            parameters += (contract,)
        with self._transaction() as cursor:
            rows = cursor.run(query + " ORDER BY contract, version", parameters)
        return [self._contract(row) for row in rows]

    def _contract(self, row: _Row) -> ContractVersion:
        return ContractVersion(
            tenant=row[0],
            contract=row[1],
            version=int(row[2]),
            effective_from=self._read_date(row[3]),
            effective_until=None if row[4] is None else self._read_date(row[4]),
            document=row[5],
            document_sha256=row[6],
            created_at=self._read_time(row[7]),
            created_by=row[8],
        )

    # -- settlement runs ----------------------------------------------------------------------

    def add_settlement_run(self, tenant: str, run: SettlementRun) -> None:
        if run.tenant != tenant:
            raise ServiceStoreError(f"run of tenant {run.tenant!r} given for tenant {tenant!r}")
        with self._transaction(write=True) as cursor:
            cursor.run(
                f"INSERT INTO service_settlement_runs ({_RUN_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.id,
                    tenant,
                    run.contract,
                    run.version,
                    run.period,
                    run.checkpoint_size,
                    run.status,
                    run.invoice_id,
                    run.error,
                    self._time(run.started_at),
                    self._time(run.finished_at),
                    run.created_by,
                    run.attempts,
                    self._time(run.lease_expires_at),
                ),
            )
            self._audit(
                cursor,
                tenant,
                run.created_by,
                "settlement.start",
                run.id,
                f"{run.contract} v{run.version} {run.period} at size {run.checkpoint_size}",
            )

    def finish_settlement_run(
        self,
        tenant: str,
        run_id: str,
        status: RunStatus,
        *,
        invoice_id: str | None = None,
        error: str | None = None,
        attempt: int | None = None,
        now: datetime | None = None,
    ) -> SettlementRun:
        query = (
            "UPDATE service_settlement_runs "
            "SET status = ?, invoice_id = ?, error = ?, finished_at = ?, lease_expires_at = NULL "
            "WHERE tenant = ? AND id = ?"
        )
        parameters: tuple[Any, ...] = (
            status,
            invoice_id,
            error,
            self._time(now or utc_now()),
            tenant,
            run_id,
        )
        if attempt is not None:
            query += " AND status = 'running' AND attempts = ?"
            parameters += (attempt,)
        with self._transaction(write=True) as cursor:
            updated = cursor.run(query + " RETURNING id", parameters)
            run = self._stored_run(cursor, tenant, run_id)
            if updated:
                self._audit(
                    cursor, tenant, run.created_by, f"settlement.{status}", run_id, invoice_id or ""
                )
        return run

    def claim_settlement_run(
        self,
        now: datetime | None = None,
        *,
        lease: timedelta = RUN_LEASE,
        attempts_max: int = RUN_ATTEMPTS_MAX,
    ) -> SettlementRun | None:
        now = now or utc_now()
        with self._transaction(write=True) as cursor:
            self._fail_exhausted(cursor, now, lease, attempts_max)
            # A competing claim of the same row finds it no longer claimable (PostgreSQL re-reads
            # the row it waited for, whose new lease has not lapsed; SQLite has one writer) and
            # claims nothing this time.
            claimable = f"(status = 'queued' OR ({_LAPSED} AND attempts < ?))"
            rows = cursor.run(
                "UPDATE service_settlement_runs "
                "SET status = 'running', attempts = attempts + 1, lease_expires_at = ? "
                f"WHERE {claimable} AND (tenant, id) = ("
                f"SELECT tenant, id FROM service_settlement_runs WHERE {claimable} "
                f"ORDER BY started_at, id LIMIT 1) RETURNING {_RUN_COLUMNS}",
                (
                    self._time(now + lease),
                    *(self._time(now), attempts_max),
                    *(self._time(now), attempts_max),
                ),
            )
            if not rows:
                return None
            run = self._run(rows[0])
            if run.attempts > 1:
                self._audit(
                    cursor,
                    run.tenant,
                    "settlement-worker",
                    "settlement.reclaim",
                    run.id,
                    f"attempt {run.attempts} of {attempts_max}: the lease of the attempt before "
                    "lapsed before it finished",
                )
        return run

    def _fail_exhausted(
        self, cursor: _Cursor, now: datetime, lease: timedelta, attempts_max: int
    ) -> None:
        """Fail the runs whose last allowed claim lapsed, each saying why."""
        exhausted = cursor.run(
            "SELECT tenant, id, attempts, lease_expires_at, created_by "
            f"FROM service_settlement_runs WHERE {_LAPSED} AND attempts >= ? "
            # One order for every worker, so that two failing the same runs lock them alike.
            "ORDER BY tenant, id",
            (self._time(now), attempts_max),
        )
        for tenant, run_id, attempts, lease_expires_at, created_by in exhausted:
            lapsed = "" if lease_expires_at is None else f" at {self._read_time(lease_expires_at)}"
            error = (
                f"settlement run {run_id!r} was given up after {attempts} "
                f"attempt{'' if attempts == 1 else 's'} (at most "
                f"{attempts_max}): each time the server process running it stopped renewing its "
                f"lease of {lease.total_seconds():g} s before the run finished, the last "
                f"lease lapsing{lapsed}; a server killed or stalled while settling this run "
                "(out of memory?) leaves it so. Queue it again once the cause is mended."
            )
            # Fenced by the attempt: a claim taken meanwhile by another worker is left alone.
            if cursor.run(
                "UPDATE service_settlement_runs "
                "SET status = 'failed', error = ?, finished_at = ?, lease_expires_at = NULL "
                f"WHERE tenant = ? AND id = ? AND attempts = ? AND {_LAPSED} RETURNING id",
                (error, self._time(now), tenant, run_id, attempts, self._time(now)),
            ):
                self._audit(cursor, tenant, created_by, "settlement.failed", run_id, "")

    def renew_settlement_lease(
        self, tenant: str, run_id: str, attempt: int, until: datetime
    ) -> bool:
        with self._transaction(write=True) as cursor:
            return bool(
                cursor.run(
                    "UPDATE service_settlement_runs SET lease_expires_at = ? "
                    "WHERE tenant = ? AND id = ? AND status = 'running' AND attempts = ? "
                    "RETURNING id",
                    (self._time(until), tenant, run_id, attempt),
                )
            )

    def _stored_run(self, cursor: _Cursor, tenant: str, run_id: str) -> SettlementRun:
        rows = cursor.run(
            f"SELECT {_RUN_COLUMNS} FROM service_settlement_runs WHERE tenant = ? AND id = ?",
            (tenant, run_id),
        )
        if not rows:
            raise ServiceStoreError(f"tenant {tenant!r} has no settlement run {run_id!r}")
        return self._run(rows[0])

    def settlement_run(self, tenant: str, run_id: str) -> SettlementRun | None:
        with self._transaction() as cursor:
            rows = cursor.run(
                f"SELECT {_RUN_COLUMNS} FROM service_settlement_runs WHERE tenant = ? AND id = ?",
                (tenant, run_id),
            )
        return self._run(rows[0]) if rows else None

    def settlement_runs(self, tenant: str) -> list[SettlementRun]:
        with self._transaction() as cursor:
            rows = cursor.run(
                f"SELECT {_RUN_COLUMNS} FROM service_settlement_runs WHERE tenant = ? "
                "ORDER BY started_at, id",
                (tenant,),
            )
        return [self._run(row) for row in rows]

    def _run(self, row: _Row) -> SettlementRun:
        return SettlementRun(
            id=row[0],
            tenant=row[1],
            contract=row[2],
            version=int(row[3]),
            period=row[4],
            checkpoint_size=int(row[5]),
            status=cast(RunStatus, row[6]),
            invoice_id=row[7],
            error=row[8],
            started_at=self._read_time(row[9]),
            finished_at=None if row[10] is None else self._read_time(row[10]),
            created_by=row[11],
            attempts=int(row[12]),
            lease_expires_at=None if row[13] is None else self._read_time(row[13]),
        )

    # -- disputes -----------------------------------------------------------------------------

    def add_dispute(self, tenant: str, dispute_id: str, invoice_id: str, actor: str) -> None:
        with self._transaction(write=True) as cursor:
            cursor.run(
                "INSERT INTO service_disputes (tenant, dispute_id, invoice_id, filed_at) "
                "VALUES (?, ?, ?, ?)",
                (tenant, dispute_id, invoice_id, self._time(utc_now())),
            )
            self._audit(cursor, tenant, actor, "dispute.file", dispute_id, invoice_id)

    def dispute_ids(self, tenant: str, invoice_id: str | None = None) -> list[str]:
        query = "SELECT dispute_id FROM service_disputes WHERE tenant = ?"
        parameters: tuple[Any, ...] = (tenant,)
        if invoice_id is not None:
            query += " AND invoice_id = ?"
            parameters += (invoice_id,)
        with self._transaction() as cursor:
            rows = cursor.run(query + " ORDER BY filed_at, dispute_id", parameters)
        return [row[0] for row in rows]

    def has_dispute(self, tenant: str, dispute_id: str) -> bool:
        with self._transaction() as cursor:
            return bool(
                cursor.run(
                    "SELECT 1 FROM service_disputes WHERE tenant = ? AND dispute_id = ?",
                    (tenant, dispute_id),
                )
            )

    # -- the price table ----------------------------------------------------------------------

    def set_model_prices(self, tenant: str, prices: Mapping[str, ModelPrice], actor: str) -> None:
        with self._transaction(write=True) as cursor:
            cursor.run("DELETE FROM service_model_prices WHERE tenant = ?", (tenant,))
            for model, price in sorted(prices.items()):
                # Text, which both databases take exactly (SQLite would round a number to a float).
                cursor.run(
                    "INSERT INTO service_model_prices (tenant, model, tier, input_token_price, "
                    "output_token_price, currency) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        tenant,
                        model,
                        price.tier,
                        str(price.input_token_price),
                        str(price.output_token_price),
                        price.currency,
                    ),
                )
            self._audit(cursor, tenant, actor, "prices.set", "price table", f"{len(prices)} models")

    def model_prices(self, tenant: str) -> dict[str, ModelPrice]:
        with self._transaction() as cursor:
            rows = cursor.run(
                "SELECT model, tier, input_token_price, output_token_price, currency "
                "FROM service_model_prices WHERE tenant = ? ORDER BY model",
                (tenant,),
            )
        return {
            row[0]: ModelPrice(
                tier=row[1],
                input_token_price=Decimal(str(row[2])),
                output_token_price=Decimal(str(row[3])),
                currency=row[4],
            )
            for row in rows
        }

    def ping(self) -> None:
        with self._transaction() as cursor:
            cursor.run("SELECT 1")


class _SqliteCursor:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def run(self, query: str, parameters: Sequence[Any] = ()) -> list[_Row]:
        return self._connection.execute(query, tuple(parameters)).fetchall()


class SqliteServiceStore(_SqlServiceStore):
    """The service tables in a SQLite file (the ledger's own file, beside its tables)."""

    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        try:
            connection = sqlite3.connect(
                self._path,
                isolation_level=None,
                check_same_thread=False,
                timeout=BUSY_TIMEOUT_SECONDS,
            )
        except sqlite3.Error as error:
            raise ServiceStoreError(f"cannot open {self._path}: {error}") from error
        self._connection: sqlite3.Connection | None = connection
        with self._transaction(write=True) as cursor:
            for statement in statements(SQLITE_SCHEMA):
                cursor.run(statement)
            # A file made before leases existed gets their columns (SQLite files have no
            # migrations); its runs were claimed once, as PostgreSQL's revision 0006 counts them.
            present = {row[1] for row in cursor.run("PRAGMA table_info(service_settlement_runs)")}
            missing = [column for column in SQLITE_RUN_LEASE_COLUMNS if column[0] not in present]
            for name, definition in missing:
                cursor.run(f"ALTER TABLE service_settlement_runs ADD COLUMN {name} {definition}")
            if missing:
                cursor.run(
                    "UPDATE service_settlement_runs SET attempts = 1 WHERE status <> 'queued'"
                )
            for statement in statements(SQLITE_RUN_LEASE):
                cursor.run(statement)

    @contextmanager
    def _transaction(self, *, write: bool = False) -> Iterator[_Cursor]:
        with self._lock:
            connection = self._connection
            if connection is None:
                raise ServiceStoreError(f"the service store {self._path} is closed")
            try:
                # A reader must not queue behind the ledger's commits; a writer takes the write
                # lock first, as a read transaction that later writes may be refused outright.
                connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            except sqlite3.Error as error:
                raise ServiceStoreError(f"cannot write {self._path}: {error}") from error
            try:
                yield _SqliteCursor(connection)
                connection.execute("COMMIT")
            except sqlite3.Error as error:
                connection.execute("ROLLBACK")
                raise ServiceStoreError(
                    f"the service store {self._path} failed: {error}"
                ) from error
            except BaseException:
                connection.execute("ROLLBACK")
                raise

    def _time(self, value: datetime | None) -> Any:
        return None if value is None else value.astimezone(UTC).isoformat()

    def _date(self, value: date | None) -> Any:
        return None if value is None else value.isoformat()

    def _read_time(self, value: Any) -> datetime:
        return datetime.fromisoformat(str(value)).astimezone(UTC)

    def _read_date(self, value: Any) -> date:
        return date.fromisoformat(str(value))

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


class _PostgresCursor:
    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def run(self, query: str, parameters: Sequence[Any] = ()) -> list[_Row]:
        self._cursor.execute(query.replace("?", "%s"), tuple(parameters))
        if self._cursor.description is None:
            return []
        return list(self._cursor.fetchall())


class PostgresServiceStore(_SqlServiceStore):
    """The service tables in PostgreSQL (created by the Alembic revisions `0002_service` and later).

    One connection, used by one transaction at a time: these tables see few writes (keys,
    contracts, runs), and each request reads one key row.
    """

    def __init__(self, url: str, *, connect: Callable[[str], Any] | None = None) -> None:
        import psycopg

        self._psycopg_error: type[Exception] = psycopg.Error
        self._url = url
        self._lock = threading.Lock()
        try:
            self._connection: Any = (connect or psycopg.connect)(url)
        except psycopg.Error as error:
            raise ServiceStoreError(f"cannot connect to PostgreSQL: {error}") from error

    @contextmanager
    def _transaction(self, *, write: bool = False) -> Iterator[_Cursor]:
        with self._lock:
            if self._connection is None or self._connection.closed:
                raise ServiceStoreError("the PostgreSQL service store is closed")
            try:
                with self._connection.transaction(), self._connection.cursor() as cursor:
                    yield _PostgresCursor(cursor)
            except self._psycopg_error as error:
                raise ServiceStoreError(f"the PostgreSQL service store failed: {error}") from error

    def _read_time(self, value: Any) -> datetime:
        return cast(datetime, value).astimezone(UTC)

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
