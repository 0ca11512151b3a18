"""The ledger: append-only event stores behind one interface (`store`), with their drivers apart.

Importing this package loads no driver: `SqliteLedger` is resolved on first use, so code that
only needs the interface (`raas.ledger.store`) never pulls in sqlite3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from raas.ledger.store import (
    AppendReceipt,
    LedgerStore,
    LogHead,
    MemoryLedger,
    StoredEvent,
    decode_entry,
)

if TYPE_CHECKING:
    from raas.ledger.sqlite import SqliteLedger

__all__ = [
    "AppendReceipt",
    "LedgerStore",
    "LogHead",
    "MemoryLedger",
    "SqliteLedger",
    "StoredEvent",
    "decode_entry",
]


def __getattr__(name: str) -> Any:
    if name == "SqliteLedger":
        from raas.ledger.sqlite import SqliteLedger

        return SqliteLedger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
