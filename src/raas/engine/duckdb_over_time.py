"""Settlement over time on DuckDB: contract versions and adjustments of earlier invoices
(`raas.core.adjust`) with every period settled from the episode table. The logic is the pure
core's; this module only says how DuckDB settles one part and reads episodes' features."""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import duckdb

from raas.core.adjust import settle_with_adjustments
from raas.core.contract import Contract
from raas.core.events import Event
from raas.core.features import FEATURES
from raas.core.invoice import Invoice
from raas.core.periods import Period
from raas.core.settle import Settlement
from raas.engine.duckdb_engine import _connect, settle_contract_with_duckdb

__all__ = ["episode_rows_from_table", "settle_over_time_with_duckdb"]


def episode_rows_from_table(
    connection: duckdb.DuckDBPyConnection, ids: Collection[str]
) -> dict[str, dict[str, object]]:
    """The features rows of these episodes, as `raas.core.features.episode_features` gives
    them, read from the episode table."""
    if not ids:
        return {}
    columns = ", ".join(f'"{name}"' for name in FEATURES)
    cursor = connection.execute(
        f"SELECT id, {columns} FROM episodes WHERE list_contains($ids, id)", {"ids": sorted(ids)}
    )
    names = list(FEATURES)
    return {row[0]: dict(zip(names, row[1:], strict=True)) for row in cursor.fetchall()}


def settle_over_time_with_duckdb(
    versions: Sequence[Contract],
    table_path: str | os.PathLike[str],
    period: Period,
    *,
    issued: Sequence[Invoice],
    dispute_events: Iterable[Event] = (),
    as_of: datetime | None = None,
    prepaid_balance: Decimal | None = None,
) -> Settlement:
    """`raas.engine.reference.settle_over_time_from_ledger` over the episode table at
    `table_path` (built with the contract's window), given the issued invoices and dispute
    events the caller read from the ledger at the table's size."""
    connection = _connect(Path(table_path))
    try:

        def settle_one(
            version: Contract, part: Period, moment: datetime, balance: Decimal | None
        ) -> Settlement:
            return settle_contract_with_duckdb(
                version,
                table_path,
                part,
                as_of=moment,
                prepaid_balance=balance,
                connection=connection,
            )

        return settle_with_adjustments(
            versions,
            period,
            settle_one,
            issued=issued,
            dispute_events=dispute_events,
            episode_rows=lambda ids: episode_rows_from_table(connection, ids),
            as_of=as_of,
            prepaid_balance=prepaid_balance,
        )
    finally:
        connection.close()
