"""PostgreSQL for tests: a database of its own per test session on 127.0.0.1:5432 (user
postgres, trust), migrated once, emptied before each test that asks for it, dropped at the end;
and the `ledger` fixture, each test once on SQLite and once on PostgreSQL.

Tests skip, saying why, only when no server answers there.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Final

import psycopg
import pytest
from psycopg import sql

from raas.ledger import open_ledger

if TYPE_CHECKING:
    from raas.ledger import Ledger

SERVER_URL: Final = os.environ.get("RAAS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
_unreachable: str | None = None


def server_or_skip() -> str:
    """The server's base URL (no database); skips the test if no server answers."""
    global _unreachable
    if _unreachable is None:
        try:
            with psycopg.connect(f"{SERVER_URL}/postgres", connect_timeout=3):
                _unreachable = ""
        except psycopg.OperationalError as error:
            _unreachable = f"no PostgreSQL server reachable at {SERVER_URL}: {error}".strip()
    if _unreachable:
        pytest.skip(_unreachable)
    return SERVER_URL


def create_database(prefix: str = "raas_test") -> str:
    """A new, empty database with a unique name; its URL."""
    server = server_or_skip()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"{prefix}_{worker}_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return f"{server}/{name}"


def drop_database(url: str) -> None:
    server, name = url.rsplit("/", 1)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def empty_tables(url: str) -> None:
    """Remove every row of every table but Alembic's, and restart the identity columns."""
    with psycopg.connect(url, autocommit=True) as connection:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename <> 'alembic_version'"
            )
        ]
        if tables:
            connection.execute(
                sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                    sql.SQL(", ").join(sql.Identifier(table) for table in tables)
                )
            )


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """The session's database, migrated to the newest revision."""
    from raas.migrations import upgrade

    url = create_database()
    try:
        upgrade(url)
        yield url
    finally:
        drop_database(url)


@pytest.fixture
def postgres_url(postgres_database: str) -> str:
    """The session's database with every table emptied: a fresh ledger for this test."""
    empty_tables(postgres_database)
    return postgres_database


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    """A database of this test's own, never migrated."""
    url = create_database("raas_empty")
    try:
        yield url
    finally:
        drop_database(url)


def commitment_key_of(location: str) -> bytes:
    """A ledger's secret salt key, read straight from its database or file (tests only)."""
    if location.startswith("postgresql://"):
        with psycopg.connect(location) as connection:
            row = connection.execute("SELECT commitment_key FROM ledger_meta").fetchone()
    else:
        import sqlite3
        from contextlib import closing

        with closing(sqlite3.connect(location)) as connection:
            row = connection.execute(
                "SELECT value FROM meta WHERE name = 'commitment_key'"
            ).fetchone()
    assert row is not None
    return bytes(row[0])


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a fresh, empty ledger lives: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def ledger(ledger_location: str) -> Iterator[Ledger]:
    """A fresh ledger of each kind, opened with `open_ledger`."""
    with open_ledger(ledger_location) as opened:
        yield opened
