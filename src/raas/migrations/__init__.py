"""PostgreSQL schema migrations (Alembic), shipped in the package and driven from code.

`upgrade(url)` brings a database to the newest revision; no alembic.ini is read. Revisions live
in `versions/`: `0001_ledger` is the ledger's schema, later ones build on it. Several processes
may upgrade at once (servers starting together): a session advisory lock lets one migrate at a
time, and the others then find nothing left to do.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final

from raas.errors import StoreError

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["LEDGER_REVISION", "current", "downgrade", "heads", "sqlalchemy_url", "upgrade"]

LEDGER_REVISION: Final = "0001_ledger"
SCRIPT_LOCATION: Final = Path(__file__).resolve().parent
# pg_advisory_lock key taken while migrating: the first 8 bytes of sha256(b"raas migrations").
MIGRATION_LOCK_KEY: Final = 0x2A7D_61C4_05E3_9B11


def sqlalchemy_url(url: str) -> str:
    """A PostgreSQL URL as SQLAlchemy names it with the psycopg 3 driver."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise StoreError(f"{url!r} is not a PostgreSQL URL (postgresql://user@host:port/database)")


def _config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    # ConfigParser interpolation would read a "%" in a password as a reference.
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return config


def heads() -> list[str]:
    """The newest revisions of the shipped migrations (one, unless the history branched)."""
    from alembic.script import ScriptDirectory

    return list(ScriptDirectory(str(SCRIPT_LOCATION)).get_heads())


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` to `revision` (default: the newest), one process at a time."""
    from alembic import command

    _migrate(url, lambda config: command.upgrade(config, revision))


def downgrade(url: str, revision: str) -> None:
    """Take the database at `url` back to `revision`, one process at a time (a revision that
    cannot go back with the rows it holds raises StoreError and leaves them as they were)."""
    from alembic import command

    _migrate(url, lambda config: command.downgrade(config, revision))


def _migrate(url: str, run: Callable[[Config], None]) -> None:
    """`run` the Alembic command on a connection to `url` holding the migration lock."""
    from sqlalchemy import create_engine, pool, text
    from sqlalchemy.exc import SQLAlchemyError

    config = _config(url)
    try:
        engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
        try:
            with engine.connect() as connection:
                connection.execute(
                    text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
                connection.commit()
                try:
                    config.attributes["connection"] = connection
                    run(config)
                    connection.commit()
                finally:
                    connection.execute(
                        text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY}
                    )
                    connection.commit()
        finally:
            engine.dispose()
    except SQLAlchemyError as error:
        raise StoreError(f"could not migrate the database: {error}") from error


def current(url: str) -> str | None:
    """The revision the database at `url` is at, or None if it was never migrated."""
    import psycopg

    try:
        with psycopg.connect(url, autocommit=True) as connection:
            table = connection.execute("SELECT to_regclass('alembic_version')").fetchone()
            if table is None or table[0] is None:
                return None
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except psycopg.Error as error:
        raise StoreError(f"could not read the database's revision: {error}") from error
    return None if row is None else str(row[0])
