"""The vendor's figures kept current as the ledger grows: each customer's share of a contract's
grouped figures, kept in a DuckDB file beside the episode table, and their sums in memory.

A full grouping of a million-episode table takes more than a second; the table is rebuilt one
customer at a time (a customer's rows are a function of that customer's entries alone), so the
figures are too: after the log grows from size a to b, only the customers with entries at
[a, b) are grouped again, their old shares subtracted and their new ones added. The sums are
exactly those of a full grouping of the table at b (integers and decimals, no floats).
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, NamedTuple

import duckdb

from raas.engine.episode_table import EPISODE_TABLE_FORMAT, changed_customers
from raas.ledger.store import LedgerStore

# Changes whenever what a kept share means changes; a file of another format is filled again.
KEPT_FORMAT: Final = "1"
LATENCY_QUANTILE: Final = 0.95
_TABLE: Final = "episode_file"  # the episode table, attached read-only while shares are read

GroupKey = tuple[str, int, bool, str]  # day (ISO, contract zone), verdict, handed off, tiers


class GroupSums(NamedTuple):
    episodes: int
    csat_total: int
    csat_answers: int
    model_cost: Decimal


class KeptTotals(NamedTuple):
    """The figures' groups and the p95 latency of the episode table at `size`; whether they
    were all grouped again (`full`), else how many customers were (`regrouped`)."""

    groups: dict[GroupKey, GroupSums]
    latency_p95_ms: int | None
    size: int
    last_leaf: str
    full: bool
    regrouped: int


class FigureKeeper:
    """One contract's shares per customer, for one episode table file (`update` under the
    caller's lock: the table must not be rewritten while it is attached)."""

    def __init__(self, path: Path, verdict_sql: str, time_zone: str) -> None:
        self.path = path
        self.signature = hashlib.sha256(
            "\n".join((KEPT_FORMAT, EPISODE_TABLE_FORMAT, verdict_sql, time_zone)).encode()
        ).hexdigest()
        zone = time_zone.replace("'", "''")
        # What one customer's episodes add to each group, and to the latency histogram.
        self._shares_sql = (
            f"SELECT customer, CAST(timezone('{zone}', started_at) AS DATE) AS day, "
            f"{verdict_sql} AS verdict, handed_off, tiers, count(*) AS episodes, "
            "coalesce(sum(csat), 0) AS csat_total, count(csat) AS csat_answers, "
            "coalesce(sum(model_cost), 0) AS model_cost FROM {source} GROUP BY ALL"
        )
        self._latency_sql = (
            "SELECT customer, latency_ms_max AS latency_ms, count(*) AS episodes FROM {source} "
            "WHERE model_calls > 0 AND latency_ms_max IS NOT NULL GROUP BY ALL"
        )
        self._groups: dict[GroupKey, GroupSums] | None = None
        self._latencies: Counter[int] = Counter()
        self._connection: duckdb.DuckDBPyConnection | None = None

    def update(
        self,
        ledger: LedgerStore,
        tenant: str,
        table: Path,
        changed: Callable[[int, int], set[str]] | None = None,
    ) -> KeptTotals:
        """The totals at the table's state, regrouping only the customers that changed since
        the shares were last kept (all of them the first time, or when the log is another).
        `changed(a, b)` gives the customers with entries at [a, b) when the caller knows them
        (default: `changed_customers` reads those entries)."""
        connection = self._connect()
        connection.execute(f"ATTACH {_literal(str(table))} AS {_TABLE} (READ_ONLY)")
        try:
            row = connection.execute(
                f"SELECT size, last_leaf FROM {_TABLE}.episode_table"
            ).fetchone()
            assert row is not None, f"{table} holds no state"
            size, last_leaf = int(row[0]), str(row[1])
            full, regrouped = False, 0
            kept = connection.execute("SELECT signature, size, last_leaf FROM kept").fetchone()
            if kept is not None and tuple(kept) == (self.signature, size, last_leaf):
                if self._groups is None:
                    self._load(connection)
            elif (
                kept is not None
                and kept[0] == self.signature
                and _grown(ledger, tenant, int(kept[1]), str(kept[2]), size)
            ):
                if self._groups is None:
                    self._load(connection)
                if changed is None:
                    customers = sorted(changed_customers(ledger, tenant, int(kept[1]), size))
                else:
                    customers = sorted(changed(int(kept[1]), size))
                self._regroup(connection, customers, size, last_leaf)
                regrouped = len(customers)
            else:
                self._regroup(connection, None, size, last_leaf)
                full = True
        except BaseException:
            self._groups = None  # read again from the file, as it was committed
            raise
        finally:
            connection.execute(f"DETACH {_TABLE}")
        assert self._groups is not None
        return KeptTotals(
            dict(self._groups), _quantile(self._latencies), size, last_leaf, full, regrouped
        )

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _connect(self) -> duckdb.DuckDBPyConnection:
        if self._connection is None:
            connection = duckdb.connect(str(self.path))
            connection.execute(
                "CREATE TABLE IF NOT EXISTS shares (customer VARCHAR NOT NULL, day DATE NOT NULL, "
                "verdict INTEGER NOT NULL, handed_off BOOLEAN, tiers VARCHAR, "
                "episodes BIGINT NOT NULL, csat_total BIGINT NOT NULL, "
                "csat_answers BIGINT NOT NULL, model_cost DECIMAL(38, 12) NOT NULL)"
            )
            connection.execute(
                "CREATE TABLE IF NOT EXISTS latencies (customer VARCHAR NOT NULL, "
                "latency_ms BIGINT NOT NULL, episodes BIGINT NOT NULL)"
            )
            connection.execute(
                "CREATE TABLE IF NOT EXISTS kept (signature VARCHAR NOT NULL, "
                "size BIGINT NOT NULL, last_leaf VARCHAR NOT NULL)"
            )
            self._connection = connection
        return self._connection

    def _load(self, connection: duckdb.DuckDBPyConnection) -> None:
        self._groups = {}
        self._latencies = Counter()
        self._add_all(connection)

    def _regroup(
        self,
        connection: duckdb.DuckDBPyConnection,
        customers: Sequence[str] | None,
        size: int,
        last_leaf: str,
    ) -> None:
        """Group `customers` (None: everyone) again from the attached table, in one
        transaction with the state it brings the file to; the sums follow."""
        if customers is None:
            self._groups, self._latencies = {}, Counter()
            where, values = "", {}
        else:
            where, values = (
                " WHERE customer IN (SELECT unnest($customers))",
                {"customers": list(customers)},
            )
        connection.execute("BEGIN TRANSACTION")
        try:
            # A few customers: the rows deleted and inserted come back and are folded here, each
            # table scanned once to delete rather than twice more to sum what changed.
            returning = "" if customers is None else " RETURNING * EXCLUDE (customer)"
            for table, sql in (("shares", self._shares_sql), ("latencies", self._latency_sql)):
                removed = connection.execute(f"DELETE FROM {table}{where}{returning}", values)
                if customers is not None:
                    self._fold(table, removed.fetchall(), -1)
                source = f"(SELECT * FROM {_TABLE}.episodes{where})"
                added = connection.execute(
                    f"INSERT INTO {table} {sql.format(source=source)}{returning}", values
                )
                if customers is not None:
                    self._fold(table, added.fetchall(), +1)
            if customers is None:
                self._add_all(connection)
            connection.execute("DELETE FROM kept")
            connection.execute(
                "INSERT INTO kept VALUES (?, ?, ?)", [self.signature, size, last_leaf]
            )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def _add_all(self, connection: duckdb.DuckDBPyConnection) -> None:
        """Add every kept share to the sums."""
        rows = connection.execute(
            "SELECT day, verdict, handed_off, tiers, sum(episodes), sum(csat_total), "
            "sum(csat_answers), sum(model_cost) FROM shares GROUP BY ALL"
        ).fetchall()
        self._fold("shares", rows, +1)
        latencies = connection.execute(
            "SELECT latency_ms, sum(episodes) FROM latencies GROUP BY ALL"
        ).fetchall()
        self._fold("latencies", latencies, +1)

    def _fold(self, table: str, rows: Sequence[tuple[Any, ...]], sign: int) -> None:
        """Add (sign 1) or take away (-1) rows of `table` (shares or latencies, without the
        customer; grouped or not, as sums they are the same). Each partial sum is of real
        episodes (all taken away are kept ones), so a group of no episodes sums to nothing."""
        assert self._groups is not None
        if table == "latencies":
            for latency, count in rows:
                self._latencies[int(latency)] += sign * int(count)
                if self._latencies[int(latency)] == 0:
                    del self._latencies[int(latency)]
            return
        groups = self._groups
        for day, verdict, handed_off, tiers, episodes, total, answers, cost in rows:
            key = (day.isoformat(), int(verdict), bool(handed_off), str(tiers))
            old = groups.get(key, GroupSums(0, 0, 0, Decimal(0)))
            new = GroupSums(
                old.episodes + sign * int(episodes),
                old.csat_total + sign * int(total),
                old.csat_answers + sign * int(answers),
                old.model_cost + sign * Decimal(cost),
            )
            if new.episodes:
                groups[key] = new
            else:
                groups.pop(key, None)


def _grown(ledger: LedgerStore, tenant: str, kept_size: int, kept_leaf: str, size: int) -> bool:
    """Whether the log at `size` extends the one the shares were kept at."""
    if kept_size > size or kept_size > ledger.head(tenant):
        return False
    if kept_size == 0:
        return kept_leaf == ""
    return ledger.leaf_hashes(tenant, kept_size - 1, kept_size)[0].hex() == kept_leaf


def _quantile(histogram: Counter[int]) -> int | None:
    """The discrete quantile as DuckDB's `quantile_disc` gives it: the value at position
    ceil(n * q) (from 1, q a double as there) of the sorted values."""
    count = sum(histogram.values())
    if not count:
        return None
    position = max(1, math.ceil(count * LATENCY_QUANTILE))
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= position:
            return value
    raise AssertionError("unreachable: the positions add up to the count")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
