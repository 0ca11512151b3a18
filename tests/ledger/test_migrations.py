"""The PostgreSQL schema comes from the Alembic migrations shipped in the package.

What would break: migrations that need an alembic.ini in the working directory, an upgrade that
is not a no-op the second time, servers starting together failing on each other's migration,
`raas db upgrade` not reaching the newest revision, or rows of the ledger that can be edited.
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
from raas.migrations import LEDGER_REVISION, current, heads, sqlalchemy_url, upgrade

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
