"""Settlement over time on the SQL engines: contract versions and adjustments of earlier invoices
(`raas.core.adjust`) with every period settled from the episode table. The logic is the pure
core's; this module only says how an engine settles one part and reads episodes' features."""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from contextlib import ExitStack
from datetime import datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Protocol

import duckdb

from raas.core.adjust import settle_with_adjustments
from raas.core.contract import Contract
from raas.core.events import Event
from raas.core.features import FEATURES
from raas.core.invoice import Invoice
from raas.core.periods import Period
from raas.core.settle import Settlement
from raas.core.versions import Subtotals
from raas.engine.duckdb_engine import _connect, settle_contract_with_duckdb

__all__ = [
    "SettlePart",
    "episode_rows_from_table",
    "settle_over_time_from_tables",
    "settle_over_time_with_duckdb",
    "window_seconds",
]


class SettlePart(Protocol):
    """Settle one version over one part from an episode table, as `settle_contract_with_duckdb`
    does (the default); Spark's is another."""

    def __call__(
        self,
        contract: Contract,
        table_path: Path,
        period: Period,
        *,
        as_of: datetime | None = None,
        prepaid_balance: Decimal | None = None,
        commitment_prior_subtotals: Sequence[Decimal] = (),
    ) -> Settlement: ...


def window_seconds(contract: Contract) -> int:
    """The link horizon, in whole seconds, of the episode table `contract` settles from."""
    return int(contract.window.total_seconds())


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
) -> Settlement:
    """`raas.engine.reference.settle_over_time_from_ledger` over the episode table at
    `table_path` (built with the contract's window), given the issued invoices and dispute
    events the caller read from the ledger at the table's size."""
    tables = {window_seconds(version): table_path for version in versions}
    return settle_over_time_from_tables(
        versions,
        tables,
        period,
        issued=issued,
        dispute_events=dispute_events,
        as_of=as_of,
    )


def settle_over_time_from_tables(
    versions: Sequence[Contract],
    tables: Mapping[int, str | os.PathLike[str]],
    period: Period,
    *,
    issued: Sequence[Invoice],
    dispute_events: Iterable[Event] = (),
    as_of: datetime | None = None,
    settle_part: SettlePart | None = None,
) -> Settlement:
    """Settlement over time from episode tables of one ledger size: `tables` maps each link
    horizon the versions need (`window_seconds`) to the table built with it, since versions
    may state different windows. Each part is settled by `settle_part` (default: DuckDB);
    reopened episodes are read from the latest version's table, as the reference derives them
    with the latest version's window."""
    latest = max(versions, key=lambda version: version.version)
    with ExitStack() as stack:
        connections: dict[int, duckdb.DuckDBPyConnection] = {}

        def connection(window: int) -> duckdb.DuckDBPyConnection:
            if window not in connections:
                connections[window] = stack.enter_context(_connect(Path(tables[window])))
            return connections[window]

        def settle_one(
            version: Contract,
            part: Period,
            moment: datetime,
            balance: Decimal | None,
            prior: Subtotals,
        ) -> Settlement:
            # DuckDB by default, on the connection to the table of the version's window.
            settle = settle_part or partial(
                settle_contract_with_duckdb, connection=connection(window_seconds(version))
            )
            return settle(
                version,
                Path(tables[window_seconds(version)]),
                part,
                as_of=moment,
                prepaid_balance=balance,
                commitment_prior_subtotals=prior,
            )

        return settle_with_adjustments(
            versions,
            period,
            settle_one,
            issued=issued,
            dispute_events=dispute_events,
            episode_rows=lambda ids: episode_rows_from_table(
                connection(window_seconds(latest)), ids
            ),
            as_of=as_of,
        )
