"""The PostgreSQL schema comes from the Alembic migrations shipped in the package.

What would break: migrations that need an alembic.ini in the working directory, an upgrade that
is not a no-op the second time, servers starting together failing on each other's migration,
`raas db upgrade` not reaching the newest revision, rows of the ledger that can be edited, or
invoices that lose rows or their append-only trigger when their key becomes (tenant, id).
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from raas.cli.main import main
from raas.errors import StoreError
from raas.migrations import (
    LEDGER_REVISION,
    current,
    downgrade,
    heads,
    sqlalchemy_url,
    upgrade,
)

LEDGER_TABLES = {
    "ledger_meta",
    "ledger_logs",
    "ledger_events",
    "ledger_checkpoints",
    "ledger_invoices",
}


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as connection:
        return {
            str(row[0])
            for row in connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
        }


def test_upgrade_creates_the_ledger_schema_once(empty_postgres_url: str) -> None:
    assert current(empty_postgres_url) is None

    upgrade(empty_postgres_url)
    upgrade(empty_postgres_url)

    assert tables(empty_postgres_url) >= LEDGER_TABLES
    assert current(empty_postgres_url) == heads()[0]


def test_the_ledger_revision_can_be_reached_alone(empty_postgres_url: str) -> None:
    upgrade(empty_postgres_url, LEDGER_REVISION)

    assert current(empty_postgres_url) == LEDGER_REVISION
    assert tables(empty_postgres_url) >= LEDGER_TABLES


def test_processes_upgrading_at_once_all_succeed(empty_postgres_url: str) -> None:
    with ProcessPoolExecutor(3) as pool:
        list(pool.map(upgrade, [empty_postgres_url] * 3))

    assert current(empty_postgres_url) == heads()[0]


def test_raas_db_upgrade_migrates_from_any_directory(
    empty_postgres_url: str, tmp_path: Path
) -> None:
    # A directory with no alembic.ini: the migrations are found in the package.
    done = subprocess.run(
        [sys.executable, "-m", "raas.cli.main", "db", "upgrade", "--db", empty_postgres_url],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert f"the database is at revision {heads()[0]}" in done.stdout
    assert current(empty_postgres_url) == heads()[0]


def test_raas_db_upgrade_refuses_a_url_that_is_not_postgresql() -> None:
    result = CliRunner().invoke(main, ["db", "upgrade", "--db", "sqlite:///raas.db"])

    assert result.exit_code == 1
    assert "is not a PostgreSQL URL" in result.output


def test_the_driver_is_psycopg_3() -> None:
    assert sqlalchemy_url("postgresql://u@h:1/d") == "postgresql+psycopg://u@h:1/d"
    assert sqlalchemy_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    with pytest.raises(StoreError, match="not a PostgreSQL URL"):
        sqlalchemy_url("mysql://u@h/d")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_events SET entry = 'x'",
        "DELETE FROM ledger_events",
        "UPDATE ledger_checkpoints SET note = 'x'",
        "DELETE FROM ledger_invoices",
    ],
)
def test_stored_rows_cannot_be_changed(postgres_url: str, statement: str) -> None:
    with psycopg.connect(postgres_url) as connection:
        connection.execute(
            "INSERT INTO ledger_events VALUES (1, 0, 1, 's', 'i', 'c', 0, 'l', 'e', 'd')"
        )
        connection.execute(
            "INSERT INTO ledger_checkpoints (tenant, origin, size, root, note)"
            " VALUES ('t', 'o', 1, 'r', 'n')"
        )
        connection.execute("INSERT INTO ledger_invoices VALUES ('i', 't', 'b')")
        with pytest.raises(psycopg.errors.RaiseException, match="the ledger is append-only"):
            connection.execute(statement)


def invoice_key(url: str) -> list[str]:
    """The columns of ledger_invoices' primary key, in key order."""
    with psycopg.connect(url) as connection:
        return [
            str(row[0])
            for row in connection.execute(
                "SELECT a.attname FROM pg_index i"
                " JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, place) ON true"
                " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
                " WHERE i.indrelid = 'ledger_invoices'::regclass AND i.indisprimary"
                " ORDER BY k.place"
            )
        ]


def invoices(url: str) -> list[tuple[str, str, bytes]]:
    with psycopg.connect(url) as connection:
        return [
            (str(row[0]), str(row[1]), bytes(row[2]))
            for row in connection.execute(
                "SELECT tenant, id, body FROM ledger_invoices ORDER BY 1, 2"
            )
        ]


def test_invoices_keyed_by_tenant_and_id_upgrade_and_downgrade(empty_postgres_url: str) -> None:
    url = empty_postgres_url
    upgrade(url, "0006_run_lease")
    assert invoice_key(url) == ["id"]
    issued = [("acme", "standard-support-v1-2026-11", b"a"), ("globex", "other-v1-2026-11", b"g")]
    with psycopg.connect(url) as connection:
        for tenant, invoice_id, body in issued:
            connection.execute(
                "INSERT INTO ledger_invoices (tenant, id, body) VALUES (%s, %s, %s)",
                (tenant, invoice_id, body),
            )

    upgrade(url, "0007_invoices_by_tenant")
    assert (invoice_key(url), invoices(url)) == (["tenant", "id"], issued)
    downgrade(url, "0006_run_lease")
    assert (current(url), invoice_key(url), invoices(url)) == ("0006_run_lease", ["id"], issued)
    upgrade(url)

    shared = ("globex", "standard-support-v1-2026-11", b"g2")
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO ledger_invoices (tenant, id, body) VALUES (%s, %s, %s)", shared
        )
        with pytest.raises(psycopg.errors.RaiseException, match="the ledger is append-only"):
            connection.execute("DELETE FROM ledger_invoices WHERE tenant = 'globex'")
    # Keyed by id alone, the two buyers' invoices cannot both be kept: going back is refused.
    with pytest.raises(StoreError, match="several tenants hold invoice standard-support-v1-2026"):
        downgrade(url, "0006_run_lease")
    assert (current(url), invoice_key(url)) == (heads()[0], ["tenant", "id"])
    assert invoices(url) == sorted([*issued, shared])
