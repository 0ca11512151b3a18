"""The ledger: append-only event stores behind one interface (`store`), with their drivers apart.

Importing this package loads no driver: `SqliteLedger` and `PostgresLedger` are resolved on
first use, so code that only needs the interface (`raas.ledger.store`) never pulls in sqlite3 or
psycopg. `open_ledger` opens either from where it lives: a path or sqlite:/// URL, or a
postgresql:// URL.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, TypeAlias

from raas.errors import StoreError
from raas.ledger.store import (
    AppendReceipt,
    LedgerStore,
    LogHead,
    MemoryLedger,
    StoredEvent,
    decode_entry,
)

if TYPE_CHECKING:
    from raas.ledger.postgres import PostgresLedger
    from raas.ledger.sqlite import SqliteLedger

    Ledger: TypeAlias = SqliteLedger | PostgresLedger

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
SQLITE_SCHEME = "sqlite:///"

__all__ = [
    "AppendReceipt",
    "LedgerStore",
    "LogHead",
    "MemoryLedger",
    "PostgresLedger",
    "SqliteLedger",
    "StoredEvent",
    "decode_entry",
    "is_postgres_url",
    "open_ledger",
]


def __getattr__(name: str) -> Any:
    if name == "SqliteLedger":
        from raas.ledger.sqlite import SqliteLedger

        return SqliteLedger
    if name == "PostgresLedger":
        from raas.ledger.postgres import PostgresLedger

        return PostgresLedger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def is_postgres_url(location: str | os.PathLike[str]) -> bool:
    """Whether `location` names a PostgreSQL database rather than a SQLite file."""
    return isinstance(location, str) and location.startswith(POSTGRES_SCHEMES)


def open_ledger(location: str | os.PathLike[str], *, vendor: str | None = None) -> Ledger:
    """The ledger at `location`: postgresql://user@host:port/database, sqlite:///path (as
    SQLAlchemy writes it: sqlite:///relative.db, sqlite:////absolute.db), or a plain file path.
    """
    if is_postgres_url(location):
        from raas.ledger.postgres import PostgresLedger

        return PostgresLedger(str(location), vendor=vendor)
    from raas.ledger.sqlite import SqliteLedger

    path = os.fspath(location)
    if path.startswith(SQLITE_SCHEME):
        path = path[len(SQLITE_SCHEME) :]
    elif "://" in path:
        raise StoreError(
            f"{path!r} is not a ledger location: give a file path, sqlite:///path or "
            "postgresql://user@host:port/database"
        )
    if not path:
        raise StoreError("the sqlite:/// URL names no file")
    return SqliteLedger(path, vendor=vendor)
