"""The episode table: a tenant's episodes as typed rows, the input the SQL engines settle from.

Built from the ledger with the pure `derive_episodes`, one customer at a time, into a DuckDB
database file, and kept up to date incrementally: a later build at a larger ledger size
re-derives only the customers that have entries in the new part of the log and replaces their
rows, in one transaction. The table's content at a given size is a pure function of the ledger's
first `size` entries of the tenant's log and of the link horizon (row order is not).

Tables in the file:

- `episodes`: one row per episode. The columns of `raas.core.features.FEATURES` (the values of
  `episode_features`, with the SQL types `column_type` gives; decimals rounded to 12 places,
  half away from zero, as the rule language reads them), then:
    id                the episode id ("<first conversation>#<intent>")
    customer          the customer
    conversation      the episode's first conversation
    conversation_ids  every conversation of the episode, in order of their first event
    last_activity_at  with `resolution_at`, what `Plan.final_at` needs
    model_cost_places the decimal places of the episode's model cost as summed (at most 12)
    business          the business events (order, refund, subscription) behind the episode:
                      a list of {event, kind, reference, amount DECIMAL(38, 12), places,
                      currency, time}; `places` are the amount's decimal places as written,
                      so that a sum can be given back as the reference's Decimal writes it
- `customers`: each customer with the log indexes of its entries, so that an incremental build
  reads only the changed customers' entries (`LedgerStore.entries`), and `links`, JSON of
  what relinking starts from: the same log indexes by conversation (conversation null: the
  customer's holdout assignments) and what linking reads of each segment
  (`raas.core.episodes.SegmentSummary`, times in microseconds since the epoch). With them an
  update derives again only the episodes that a customer's new entries change (`relink`):
  a customer who comes back reads its new conversation and the episodes it joins, not its
  whole month. One row a customer, so that an update takes a customer's state with one
  lookup of the customer index and writes it back as one row;
- `episode_table`: one row, the state: format, tenant, size, the hash of the log's last leaf
  at that size, link horizon.

`export_parquet` writes `episodes` as Parquet for engines that read files (Spark).
"""

from __future__ import annotations

import hashlib
import itertools
import multiprocessing
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final, NamedTuple, Protocol

import duckdb
import msgspec

from raas.core.episodes import (
    LINK_HORIZON_DEFAULT,
    Entry,
    Episode,
    SegmentSummary,
    customer_holdout_group,
    derive_episodes_and_segments,
    derive_relinked,
    relink,
)
from raas.core.events import BusinessEvent, HoldoutAssignment, decode_trusted_entry
from raas.core.expressions import DECIMAL_INTEGER_DIGITS, DECIMAL_PLACES, Type
from raas.core.expressions_sql import column_type, quote_identifier
from raas.core.features import FEATURES, episode_features
from raas.errors import SettlementError, StoreError
from raas.ledger.store import LedgerStore, StoredEvent

__all__ = [
    "EPISODE_COLUMNS",
    "EPISODE_TABLE_FORMAT",
    "EpisodeTableBuild",
    "EpisodeTableState",
    "RowsWatcher",
    "build_episode_table",
    "changed_customers",
    "export_parquet",
    "read_episode_table_state",
]


_DECIMAL_SQL: Final = column_type(Type.DECIMAL, "duckdb")
_BUSINESS_SQL: Final = (
    f"STRUCT(event VARCHAR, kind VARCHAR, reference VARCHAR, amount {_DECIMAL_SQL}, "
    "places INTEGER, currency VARCHAR, time TIMESTAMPTZ)[]"
)
# The columns besides the features; none may share a feature's name.
_EXTRA_COLUMNS: Final[Mapping[str, str]] = {
    "id": "VARCHAR NOT NULL",
    "customer": "VARCHAR NOT NULL",
    "conversation": "VARCHAR NOT NULL",
    "conversation_ids": "VARCHAR[] NOT NULL",
    "last_activity_at": "TIMESTAMPTZ NOT NULL",
    "model_cost_places": "INTEGER NOT NULL",
    "business": f"{_BUSINESS_SQL} NOT NULL",
}
assert not set(_EXTRA_COLUMNS) & set(FEATURES), "a table column would hide a feature"

EPISODE_COLUMNS: Final[Mapping[str, str]] = {
    **{name: column_type(kind, "duckdb") for name, kind in FEATURES.items()},
    **_EXTRA_COLUMNS,
}
"""Every column of `episodes` with its DuckDB type (NOT NULL where a value is always known)."""

# Changes whenever what a row holds changes (the columns, by their digest; the meaning of a
# value, by hand); a file of another format is built again from scratch.
# 3: the conversations and segments tables. 4: those as the customers' `links`.
EPISODE_TABLE_FORMAT: Final = (
    "4-" + hashlib.sha256(repr(sorted(EPISODE_COLUMNS.items())).encode()).hexdigest()[:12]
)

# Bounds: rows buffered in Python before they go to DuckDB, and log indexes read at once.
CHUNK_EPISODES_DEFAULT: Final = 50_000
NEW_ENTRIES_READ_MAX: Final = 10_000
CHANGED_CUSTOMERS_CHUNK_MAX: Final = 5_000
# Customers go to be derived in batches of about this many entries (a worker's unit of work).
BATCH_ENTRIES: Final = 20_000

_QUANTUM: Final = Decimal(1).scaleb(-DECIMAL_PLACES)
# Rounding a decimal feature to 12 places, as the rule language does on reading it.
_STORED: Final = Context(prec=DECIMAL_PLACES + DECIMAL_INTEGER_DIGITS, rounding=ROUND_HALF_UP)
_DECIMAL_FEATURES: Final = tuple(name for name, kind in FEATURES.items() if kind is Type.DECIMAL)
_encoder: Final = msgspec.json.Encoder()


class EpisodeTableState(msgspec.Struct, frozen=True, kw_only=True):
    """What an episode table file holds: the episodes of `tenant` at ledger `size` (whose log
    ended with the leaf hash `last_leaf` then), derived with `link_horizon_seconds`, in the row
    format `format`."""

    format: str
    tenant: str
    size: int
    # The hex leaf hash of the log's entry at size - 1 ("" when empty): which log the rows are
    # from, checked before an update. (Not the root: a past size's root means rebuilding the
    # Merkle tree, tens of seconds for a month of a large tenant.)
    last_leaf: str
    link_horizon_seconds: int
    episodes: int
    customers: int


class EpisodeTableBuild(msgspec.Struct, frozen=True, kw_only=True):
    """What a build did: the state it left, whether it started from scratch, and how many
    customers it derived (all of them on a full build, the changed ones otherwise). An update
    also says which size it started from and which customers' rows it replaced (so that what
    is kept per customer elsewhere need not read the new entries again)."""

    state: EpisodeTableState
    full: bool
    customers_derived: int
    entries_read: int
    updated_from: int | None = None  # None for a full build
    customers_changed: tuple[str, ...] = ()  # sorted


class RowsWatcher(Protocol):
    """Told of every row of `episodes` that an update takes away or adds, inside the update's
    transaction, so that what it keeps of the rows (sums, say) can follow them without reading
    the table again: the values of its `expressions` (SQL over a row's columns) for each row,
    read by the update from the rows it deletes and inserts anyway. A full build tells nothing
    (`EpisodeTableBuild.full`)."""

    @property
    def expressions(self) -> Sequence[str]: ...

    def rows(self, values: Sequence[Sequence[Any]], sign: int) -> None:
        """The `expressions`' values of rows that leave the table (sign -1) or enter it (+1);
        each row leaves or enters once per update (a changed row does both)."""


def build_episode_table(
    ledger: LedgerStore,
    tenant: str,
    size: int | None,
    path: str | os.PathLike[str],
    *,
    link_horizon: timedelta = LINK_HORIZON_DEFAULT,
    chunk_episodes: int = CHUNK_EPISODES_DEFAULT,
    processes: int = 0,
    on_customer: Callable[[int], None] | None = None,
    attach_to: duckdb.DuckDBPyConnection | None = None,
    attached_as: str | None = None,
    watchers: Sequence[RowsWatcher] = (),
) -> EpisodeTableBuild:
    """Bring the episode table at `path` to `tenant`'s log at `size` entries (default: the log
    as it is now).

    A file already holding an earlier size of the same tenant, link horizon and format is
    updated in place: only customers with entries at log indexes [old size, size) are derived
    again, and their rows replaced in one transaction. Anything else (no file, another tenant,
    horizon or format, a larger size) is built from scratch into a new file that replaces the
    old one when complete. Memory stays bounded by `chunk_episodes` rows and a few batches of
    customers' entries. With `processes` > 0, that many worker processes decode the entries
    and derive the episodes while this one reads the ledger and writes the table (the rows are
    the same). `on_customer(entries)` is called after each customer is derived (progress).
    With `attach_to`, a DuckDB connection, the file is attached to its database while it is
    read and written (and detached after) instead of opened as a database of its own, which
    costs more than a small update. With `attached_as` too, the file is already attached
    there read-write under that alias, and kept so: used as it is (detached first when a full
    build replaces the file; the caller attaches the new one). `watchers` are told of the rows
    an update takes away and adds (`RowsWatcher`).
    """
    target = Path(path)
    size = ledger.head(tenant) if size is None else size
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= ledger.head(tenant):
        raise StoreError(
            f"size {size!r} is not within the log of tenant {tenant!r}, "
            f"which has {ledger.head(tenant)} entries"
        )
    if chunk_episodes < 1:
        raise ValueError(f"chunk_episodes must be at least 1, found {chunk_episodes}")
    if processes < 0:
        raise ValueError(f"processes must be 0 or more, found {processes}")
    if attached_as is not None and attach_to is None:
        raise ValueError("attached_as names an alias in attach_to's database: give both")
    options = _Options(
        link_horizon,
        chunk_episodes,
        processes,
        on_customer,
        attach_to,
        attached_as,
        tuple(watchers),
    )
    horizon_seconds = _whole_seconds(link_horizon)
    last_leaf = _last_leaf(ledger, tenant, size)
    previous = _previous_state(target, attach_to, attached_as)
    if (
        previous is not None
        and previous.format == EPISODE_TABLE_FORMAT
        and previous.tenant == tenant
        and previous.link_horizon_seconds == horizon_seconds
        and previous.size <= size
        # The same log, grown: anything else (another ledger) starts over.
        and _last_leaf(ledger, tenant, previous.size) == previous.last_leaf
    ):
        if previous.size == size:
            return EpisodeTableBuild(
                state=previous,
                full=False,
                customers_derived=0,
                entries_read=0,
                updated_from=previous.size,
            )
        return _update(ledger, previous, size, last_leaf, target, options)
    return _build_full(ledger, tenant, size, last_leaf, target, options)


def read_episode_table_state(
    path: str | os.PathLike[str], connection: duckdb.DuckDBPyConnection | None = None
) -> EpisodeTableState:
    """The state recorded in an episode table file (read through `connection` when given, a
    connection to that file); StoreError if it is not one."""
    if connection is not None:
        return _read_state(connection, Path(path))
    with _connect(Path(path), read_only=True) as own:
        return _read_state(own, Path(path))


def export_parquet(
    table_path: str | os.PathLike[str], parquet_path: str | os.PathLike[str]
) -> None:
    """Write the `episodes` rows to one Parquet file (timestamps as UTC instants, decimals as
    DECIMAL(38, 12)), for engines that read files rather than DuckDB databases."""
    with _connect(Path(table_path), read_only=True) as connection:
        _read_state(connection, Path(table_path))
        connection.execute(
            f"COPY episodes TO {_string_literal(os.fspath(parquet_path))} (FORMAT parquet)"
        )


# ---------------------------------------------------------------------------------------------
# Building


class _Options(NamedTuple):
    link_horizon: timedelta
    chunk_episodes: int
    processes: int
    on_customer: Callable[[int], None] | None
    attach_to: duckdb.DuckDBPyConnection | None
    attached_as: str | None = None
    watchers: tuple[RowsWatcher, ...] = ()


def _build_full(
    ledger: LedgerStore,
    tenant: str,
    size: int,
    last_leaf: str,
    target: Path,
    options: _Options,
) -> EpisodeTableBuild:
    # Built beside the target and moved over it when complete, so that a crash or an error
    # leaves the previous table as it was.
    target.parent.mkdir(parents=True, exist_ok=True)
    building = target.with_name(target.name + ".building")
    _remove_database(building)
    try:
        with (
            _opened(building, options.attach_to) as connection,
            _Staging(connection, target.parent) as staging,
        ):
            _create_schema(connection)
            customers = ledger.iter_customers(tenant, upto_size=size)
            derived = _derive(_batches(customers), options)
            customers_derived, entries_read = staging.write(derived, options)
            _create_indexes(connection)  # after the rows: faster than kept up row by row
            state = _write_state(connection, tenant, size, last_leaf, options.link_horizon)
        if options.attach_to is not None and options.attached_as is not None:
            # The file is replaced: detached first (the caller attaches the new one).
            options.attach_to.execute(f"DETACH {quote_identifier(options.attached_as, 'duckdb')}")
        _remove_database(target)
        os.replace(building, target)
    finally:
        _remove_database(building)
    return EpisodeTableBuild(
        state=state, full=True, customers_derived=customers_derived, entries_read=entries_read
    )


def _update(
    ledger: LedgerStore,
    previous: EpisodeTableState,
    size: int,
    last_leaf: str,
    target: Path,
    options: _Options,
) -> EpisodeTableBuild:
    tenant = previous.tenant
    new_entries: dict[str, list[StoredEvent]] = {}
    new_indexes = _new_indexes_by_customer(ledger, tenant, previous.size, size, new_entries)
    changed = sorted(new_indexes)
    customers_derived = entries_read = 0
    # The counts follow the rows deleted and inserted (counting the tables again is a scan).
    episodes, customers_kept = previous.episodes, previous.customers
    with (
        _opened(target, options.attach_to, attached_as=options.attached_as) as connection,
        _Staging(connection, target.parent, options.watchers) as staging,
    ):
        connection.execute("BEGIN TRANSACTION")
        try:
            _create_indexes(connection)
            for start in range(0, len(changed), CHANGED_CUSTOMERS_CHUNK_MAX):
                chunk = changed[start : start + CHANGED_CUSTOMERS_CHUNK_MAX]
                # Their state rows go and come back whole (as a full build writes them).
                taken = _take_customers(connection, chunk)
                customers_kept -= len(taken)
                relinked: list[_Derived] = []
                stale: list[tuple[str, str]] = []
                holdout_groups: dict[str, str | None] = {}
                again = [customer for customer in chunk if customer not in taken]
                returning = [customer for customer in chunk if customer in taken]
                steps = _relinked(
                    ledger,
                    tenant,
                    [
                        (
                            customer,
                            taken[customer],
                            # Kept from the scan that found them, or read again.
                            new_entries.get(customer)
                            or _entries(ledger, tenant, new_indexes[customer]),
                        )
                        for customer in returning
                    ],
                    options.link_horizon,
                )
                for customer, step in zip(returning, steps, strict=True):
                    relinked.append(step.derived)
                    stale += ((customer, episode_id) for episode_id in step.stale)
                    if step.holdout_group is not None:
                        holdout_groups[customer] = step.holdout_group[0]
                # A customer new to the table has no rows yet: only stale ones go. Before the
                # new rows go in, the rows that stand take the holdout group they were derived
                # with.
                episodes -= _delete_stale(connection, options.watchers, holdout_groups, stale)
                customers = (
                    (
                        customer,
                        new_entries.get(customer)
                        or _entries(ledger, tenant, new_indexes[customer]),
                    )
                    for customer in again
                )
                derived = itertools.chain(relinked, _derive(_batches(customers), options))
                counted = staging.write(derived, options)
                customers_derived += counted[0]
                entries_read += counted[1]
            counts = (
                episodes + staging.inserted["episodes"],
                customers_kept + staging.inserted["customers"],
            )
            state = _write_state(connection, tenant, size, last_leaf, options.link_horizon, counts)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    assert customers_derived == len(changed)
    return EpisodeTableBuild(
        state=state,
        full=False,
        customers_derived=customers_derived,
        entries_read=entries_read,
        updated_from=previous.size,
        customers_changed=tuple(changed),
    )


class _Step(NamedTuple):
    """A known customer's update by `relink`: its rows to insert, the ids of its episodes to
    delete, and, when new holdout assignments moved it to another group, the holdout group of
    all its episodes."""

    derived: _Derived
    stale: list[str]
    holdout_group: tuple[str | None] | None


def _relinked(
    ledger: LedgerStore,
    tenant: str,
    customers: Sequence[tuple[str, _CustomerState, Sequence[StoredEvent]]],
    link_horizon: timedelta,
) -> list[_Step]:
    """Known customers' new entries (customer, what the table held, new entries) applied to
    their episodes: only the conversations they belong to and the episodes whose segments link
    differently are derived again (`relink`). A new holdout assignment changes no other
    feature of an episode than its holdout group, which the caller sets on the customer's rows
    that stand. The earlier entries of all the customers are read in two calls of the ledger,
    not two a customer."""
    touched: list[tuple[list[tuple[Entry, int]], list[tuple[Entry, int]], set[str]]] = []
    for _, _held, new in customers:
        fresh = _decoded(new)
        holdouts = [(entry, index) for entry, index in fresh if _conversation_of(entry) is None]
        fresh = [(entry, index) for entry, index in fresh if _conversation_of(entry) is not None]
        touched.append((fresh, holdouts, {entry.event.conversation for entry, _ in fresh}))
    earlier_all = _decoded_many(
        ledger,
        tenant,
        [
            sorted(i for name in names for i in held.conversations.get(name, ()))
            for (_, held, _), (_, _, names) in zip(customers, touched, strict=True)
        ],
    )
    linked = []
    for (_, held, _), (fresh, _, names), earlier in zip(
        customers, touched, earlier_all, strict=True
    ):
        touched_entries = [entry for entry, _ in earlier] + [entry for entry, _ in fresh]
        found = relink(held.segments, names, touched_entries, link_horizon=link_horizon)
        linked.append((touched_entries, found))
    more_all = _decoded_many(
        ledger,
        tenant,
        [
            sorted(
                index
                for name in [*(found.conversations - names), None]
                for index in held.conversations.get(name, ())
            )
            for (_, held, _), (_, _, names), (_, found) in zip(
                customers, touched, linked, strict=True
            )
        ],
    )
    steps = []
    for (customer, held, new), (fresh, holdouts, _), (touched_entries, found), more in zip(
        customers, touched, linked, more_all, strict=True
    ):
        others = [entry for entry, _ in [*more, *holdouts]]
        entries = touched_entries + others
        rows = _episode_rows(entries, derive_relinked(found, others))
        by_conversation = {name: list(indexes) for name, indexes in held.conversations.items()}
        for entry, index in fresh:
            by_conversation.setdefault(entry.event.conversation, []).append(index)
        group = None
        if holdouts:
            by_conversation.setdefault(None, []).extend(index for _, index in holdouts)
            assigned = [entry for entry, _ in more if _conversation_of(entry) is None]
            new_group = customer_holdout_group([*assigned, *(entry for entry, _ in holdouts)])
            # Assigned again to the group it was in (as a returning customer usually is): the
            # rows that stand hold that group already, and stay as they are.
            if new_group != customer_holdout_group(assigned):
                group = (new_group,)
        derived = _Derived(
            episode_lines=[_encoder.encode(row) for row in rows],
            customer_lines=[
                _customer_line(
                    customer,
                    sorted([*held.log_indexes, *(item.log_index for item in new)]),
                    by_conversation,
                    found.segments,
                )
            ],
            entries=[len(touched_entries) + len(more) + len(holdouts)],
        )
        steps.append(_Step(derived, found.stale, group))
    return steps


def _decoded_many(
    ledger: LedgerStore, tenant: str, wanted: Sequence[Sequence[int]]
) -> list[list[tuple[Entry, int]]]:
    """The entries at each list of log indexes, decoded, read together."""
    decoded = _decoded(_entries(ledger, tenant, [index for indexes in wanted for index in indexes]))
    found: list[list[tuple[Entry, int]]] = []
    at = 0
    for indexes in wanted:
        found.append(decoded[at : at + len(indexes)])
        at += len(indexes)
    return found


def _decoded(stored: Iterable[StoredEvent]) -> list[tuple[Entry, int]]:
    return [
        (Entry(decode_trusted_entry(item.entry), item.leaf_hash), item.log_index) for item in stored
    ]


def _customer_in(customers: Collection[str]) -> str:
    """`customer IN (?, ...)`, one parameter a customer: constants the customer indexes
    (`_create_indexes`) look up, where a join with a list would scan every row of the columns
    a query reads."""
    return f"customer IN ({', '.join('?' * len(customers))})"


def _create_indexes(connection: duckdb.DuckDBPyConnection) -> None:
    """An index on the customer of each table an update reads by customer (created by the
    first update of a table built before them)."""
    for table in _TABLES:
        connection.execute(f"CREATE INDEX IF NOT EXISTS {table}_customer ON {table} (customer)")


class _CustomerState(NamedTuple):
    """What an update starts from for a customer the table holds (a `customers` row)."""

    log_indexes: list[int]
    conversations: dict[str | None, list[int]]
    segments: list[SegmentSummary]  # in link order


class _Links(msgspec.Struct, array_like=True):
    """The `links` of a customer: its log indexes by conversation (None: its holdout
    assignments), and its segments as (conversation, intent, started at, last at, previous
    conversation), times in microseconds since the epoch, in link order."""

    conversations: list[tuple[str | None, list[int]]]
    segments: list[tuple[str, str, int, int, str | None]]


_links_decoder: Final = msgspec.json.Decoder(_Links)


def _take_customers(
    connection: duckdb.DuckDBPyConnection, customers: Sequence[str]
) -> dict[str, _CustomerState]:
    """Delete the rows of those of `customers` that the table holds; what they held (one
    lookup a customer, in one statement). The log indexes are those of `links` (every entry
    is under its conversation, or None): not read back from `log_indexes`, whose list DuckDB
    fetches row by row at twice the cost of the rest (1M episodes, 91 customers: 12 -> 4 ms)."""
    rows = connection.execute(
        f"DELETE FROM customers WHERE {_customer_in(customers)} RETURNING customer, links",
        list(customers),
    ).fetchall()
    taken: dict[str, _CustomerState] = {}
    for customer, text in rows:
        links = _links_decoder.decode(text)
        taken[str(customer)] = _CustomerState(
            sorted(index for _, indexes in links.conversations for index in indexes),
            dict(links.conversations),
            [
                SegmentSummary(
                    conversation,
                    intent,
                    _EPOCH + timedelta(microseconds=started),
                    _EPOCH + timedelta(microseconds=last),
                    previous,
                )
                for conversation, intent, started, last, previous in links.segments
            ],
        )
    return taken


def _delete_stale(
    connection: duckdb.DuckDBPyConnection,
    watchers: Sequence[RowsWatcher],
    holdout_groups: Mapping[str, str | None],
    stale: Sequence[tuple[str, str]],
) -> int:
    """Delete the `stale` episodes (customer, id) and set the holdout group of the rows that
    stand of the customers in `holdout_groups`, telling the watchers of the rows that leave
    and of those that change (they leave and come back), each row once; how many were
    deleted. One lookup of the customers' rows (by the customer index) finds them all, by
    row id, and the rest goes by row id: the expressions are read from the rows that leave
    alone, not computed for every row of the customers (1M episodes, 91 customers' 2,600
    rows: 28-45 ms against 12 + 5 ms CPU); the ids are not filtered in the lookup (DuckDB
    would scan the whole table for it), nor the customers joined with a list (a scan as
    well)."""
    stale_keys = set(stale)
    affected = set(holdout_groups) | {customer for customer, _ in stale_keys}
    if not affected:
        return 0
    rows = connection.execute(
        f"SELECT rowid, customer, id FROM episodes WHERE {_customer_in(affected)}",
        sorted(affected),
    ).fetchall()
    deleted = [rowid for rowid, customer, key in rows if (customer, key) in stale_keys]
    assert len(deleted) == len(stale_keys), "a stale episode was not there"
    changing: dict[str | None, list[int]] = {}  # the rows that stand, by their new group
    for rowid, customer, key in rows:
        if customer in holdout_groups and (customer, key) not in stale_keys:
            changing.setdefault(holdout_groups[customer], []).append(rowid)
    standing = [rowid for rowids in changing.values() for rowid in rowids]
    by_row = "FROM episodes WHERE rowid IN (SELECT unnest($rows))"
    if watchers and standing:
        _tell(connection, watchers, by_row, {"rows": standing}, -1)
    if deleted:
        # Read, then deleted: a DELETE ... RETURNING of the expressions fetched the rows one
        # by one (8-17 ms against 7 for both statements, 100 rows of the 1M-episode table).
        if watchers:
            _tell(connection, watchers, by_row, {"rows": deleted}, -1)
        found = connection.execute(f"DELETE {by_row}", {"rows": deleted}).fetchone()
        assert found is not None and int(found[0]) == len(deleted)
    for group, rowids in changing.items():
        connection.execute(
            "UPDATE episodes SET holdout_group = $group WHERE rowid IN (SELECT unnest($rows))",
            {"group": group, "rows": rowids},
        )
    if watchers and standing:
        _tell(connection, watchers, by_row, {"rows": standing}, +1)
    return len(deleted)


def _tell(
    connection: duckdb.DuckDBPyConnection,
    watchers: Sequence[RowsWatcher],
    source: str,
    parameters: Mapping[str, Any],
    sign: int,
) -> None:
    """Tell the watchers of the rows `source` (FROM ...) selects."""
    expressions = _expressions(watchers)
    rows = connection.execute(f"SELECT {', '.join(expressions)} {source}", parameters).fetchall()
    _tell_values(watchers, rows, sign)


def _expressions(watchers: Sequence[RowsWatcher]) -> list[str]:
    """Every watcher's expressions, in order (`_tell_values` splits their values so)."""
    return [expression for watcher in watchers for expression in watcher.expressions]


def _tell_values(watchers: Sequence[RowsWatcher], rows: Sequence[Sequence[Any]], sign: int) -> None:
    """Each watcher its own expressions' values of `rows` (all watchers' values, in order)."""
    if not rows:
        return
    at = 0
    for watcher in watchers:
        count = len(watcher.expressions)
        watcher.rows([row[at : at + count] for row in rows], sign)
        at += count


# ---------------------------------------------------------------------------------------------
# Deriving, here or in worker processes

# What goes to a worker: customers with their entries as (entry bytes, leaf hash, log index),
# in batches of about BATCH_ENTRIES entries; what comes back: the rows as JSON lines.
_Batch = list[tuple[str, list[tuple[bytes, bytes, int]]]]


class _Derived(NamedTuple):
    episode_lines: list[bytes]
    customer_lines: list[bytes]
    entries: list[int]  # per customer, for progress


def _batches(customers: Iterable[tuple[str, Sequence[StoredEvent]]]) -> Iterator[_Batch]:
    batch: _Batch = []
    entries = 0
    for customer, stored in customers:
        batch.append((customer, [(item.entry, item.leaf_hash, item.log_index) for item in stored]))
        entries += len(stored)
        if entries >= BATCH_ENTRIES:
            yield batch
            batch, entries = [], 0
    if batch:
        yield batch


def _derive_batch(batch: _Batch, horizon_seconds: int) -> _Derived:
    """Decode a batch's entries, derive its customers' episodes and encode their rows (pure;
    runs in a worker process when asked)."""
    link_horizon = timedelta(seconds=horizon_seconds)
    derived = _Derived([], [], [])
    for customer, items in batch:
        entries = [Entry(decode_trusted_entry(entry), leaf) for entry, leaf, _ in items]
        episodes, segments = derive_episodes_and_segments(entries, link_horizon=link_horizon)
        derived.episode_lines.extend(
            _encoder.encode(row) for row in _episode_rows(entries, episodes)
        )
        by_conversation: dict[str | None, list[int]] = {}
        for entry, (_, _, index) in zip(entries, items, strict=True):
            by_conversation.setdefault(_conversation_of(entry), []).append(index)
        derived.customer_lines.append(
            _customer_line(
                customer, sorted(index for _, _, index in items), by_conversation, segments
            )
        )
        derived.entries.append(len(items))
    return derived


def _conversation_of(entry: Entry) -> str | None:
    # A holdout assignment belongs to every episode of its customer, not to its conversation.
    if isinstance(entry.event.data, HoldoutAssignment):
        return None
    return entry.event.conversation


def _customer_line(
    customer: str,
    log_indexes: list[int],
    by_conversation: Mapping[str | None, Sequence[int]],
    segments: Iterable[SegmentSummary],
) -> bytes:
    """A customer's row of `customers`, as a line of JSON."""
    links = _Links(
        # Sorted (holdout assignments first), so that an update writes what a full build does.
        sorted(
            ((conversation, sorted(indexes)) for conversation, indexes in by_conversation.items()),
            key=lambda item: (item[0] is not None, item[0] or ""),
        ),
        [
            (
                segment.conversation,
                segment.intent,
                _microseconds(segment.started_at),
                _microseconds(segment.last_at),
                segment.previous_conversation,
            )
            for segment in segments
        ],
    )
    return _encoder.encode(
        {
            "customer": customer,
            "log_indexes": log_indexes,
            "links": _encoder.encode(links).decode(),
        }
    )


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _microseconds(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _derive(batches: Iterator[_Batch], options: _Options) -> Iterator[_Derived]:
    """The batches derived in order: here, or by `options.processes` workers with at most two
    batches each in flight, so that memory stays bounded however large the ledger."""
    horizon_seconds = _whole_seconds(options.link_horizon)
    if options.processes == 0:
        for batch in batches:
            yield _derive_batch(batch, horizon_seconds)
        return
    # spawn, not fork: this process holds threads (DuckDB's) and open databases.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(options.processes, mp_context=context) as pool:
        pending: deque[Future[_Derived]] = deque()
        for batch in batches:
            pending.append(pool.submit(_derive_batch, batch, horizon_seconds))
            if len(pending) >= 2 * options.processes:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def changed_customers(ledger: LedgerStore, tenant: str, old_size: int, size: int) -> set[str]:
    """The customers with entries at log indexes [old_size, size): those whose rows an update
    of the table from old_size to size replaces."""
    return set(_new_indexes_by_customer(ledger, tenant, old_size, size))


def _new_indexes_by_customer(
    ledger: LedgerStore,
    tenant: str,
    old_size: int,
    size: int,
    entries: dict[str, list[StoredEvent]] | None = None,
) -> dict[str, list[int]]:
    """The customers with entries at log indexes [old_size, size), with those indexes; the
    entries themselves go into `entries` (by customer) when given and there are at most
    NEW_ENTRIES_READ_MAX, so that they need not be read again."""
    found: dict[str, list[int]] = {}
    decode = _customer_decoder.decode
    keep = entries is not None and size - old_size <= NEW_ENTRIES_READ_MAX
    for start in range(old_size, size, NEW_ENTRIES_READ_MAX):
        indexes = range(start, min(start + NEW_ENTRIES_READ_MAX, size))
        for stored in ledger.entries(tenant, indexes):
            # Only the customer is needed: decoding the whole event cost twice the read.
            customer = decode(stored.entry).customer
            found.setdefault(customer, []).append(stored.log_index)
            if keep:
                assert entries is not None
                entries.setdefault(customer, []).append(stored)
    return found


class _EntryCustomer(msgspec.Struct):
    customer: str  # as `decode_trusted_entry` gives it (a commitment when the field is personal)


_customer_decoder: Final = msgspec.json.Decoder(_EntryCustomer)


def _entries(ledger: LedgerStore, tenant: str, indexes: Sequence[int]) -> list[StoredEvent]:
    stored: list[StoredEvent] = []
    for start in range(0, len(indexes), NEW_ENTRIES_READ_MAX):
        stored += ledger.entries(tenant, indexes[start : start + NEW_ENTRIES_READ_MAX])
    return stored


# ---------------------------------------------------------------------------------------------
# Rows


def episode_row(
    episode: Episode, business: Sequence[tuple[str, BusinessEvent, datetime]]
) -> dict[str, object]:
    """One row of `episodes`: the episode's features and the columns settlement needs besides."""
    row = episode_features(episode)
    for name in _DECIMAL_FEATURES:
        value = row[name]
        if value is not None:
            row[name] = _stored_decimal(value, f"feature {name} of episode {episode.id}")
    row["id"] = episode.id
    row["customer"] = episode.customer
    row["conversation"] = episode.conversations[0]
    row["conversation_ids"] = list(episode.conversations)
    row["last_activity_at"] = episode.last_activity_at
    row["model_cost_places"] = min(_places(episode.model_cost), DECIMAL_PLACES)
    row["business"] = [
        {
            "event": event_id,
            "kind": data.kind,
            "reference": data.reference,
            "amount": _exact_decimal(
                data.amount, f"amount of business event {event_id} (episode {episode.id})"
            ),
            "places": _places(data.amount),
            "currency": data.currency,
            "time": at,
        }
        for event_id, data, at in business
    ]
    return row


def _episode_rows(entries: Sequence[Entry], episodes: Iterable[Episode]) -> list[dict[str, object]]:
    """The rows of a customer's episodes, given (at least) the entries behind them (pure)."""
    business_by_hash = {
        entry.leaf_hash.hex(): (entry.event.id, entry.event.data, entry.event.time)
        for entry in entries
        if isinstance(entry.event.data, BusinessEvent)
    }
    rows = []
    for episode in episodes:
        business: list[tuple[str, BusinessEvent, datetime]] = []
        if business_by_hash:
            # A business event names an intent (or follows one), so it is behind exactly one
            # episode: the one whose entries include it.
            business = [
                business_by_hash[leaf] for leaf in episode.event_hashes if leaf in business_by_hash
            ]
            business.sort(key=lambda item: (item[2], item[0]))
        rows.append(episode_row(episode, business))
    return rows


def _places(value: Decimal) -> int:
    """Digits after the point as written (25.50 has 2, 1E+2 has 0): with the rounded value,
    what gives back the Decimal the reference holds, so that sums print the same."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int), "only finite amounts are stored"
    return max(-exponent, 0)


def _stored_decimal(value: object, what: str) -> Decimal:
    if not isinstance(value, (Decimal, int)) or isinstance(value, bool):
        raise SettlementError(f"{what}: expected a decimal number, found {value!r}")
    try:
        return Decimal(value).quantize(_QUANTUM, context=_STORED)
    except InvalidOperation:
        raise SettlementError(
            f"{what}: expected a decimal number below 10^{DECIMAL_INTEGER_DIGITS}, found {value}"
        ) from None


def _exact_decimal(value: Decimal, what: str) -> Decimal:
    # Money is never rounded on the way into the table: an amount DECIMAL(38, 12) cannot hold
    # exactly is refused, naming it.
    stored = _stored_decimal(value, what)
    if stored != value:
        raise SettlementError(
            f"{what}: expected at most {DECIMAL_PLACES} decimal places, found {value}"
        )
    return stored


class _Staging:
    """Rows on their way into DuckDB: buffered as newline-delimited JSON in a temporary
    directory, then inserted with DuckDB's JSON reader (one chunk at a time)."""

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        directory: Path,
        watchers: Sequence[RowsWatcher] = (),
    ) -> None:
        self.connection = connection
        self.watchers = watchers
        self.directory = Path(tempfile.mkdtemp(prefix=".episode-table-", dir=directory))
        self.lines: dict[str, list[bytes]] = {table: [] for table in _TABLES}
        self.inserted = dict.fromkeys(_TABLES, 0)  # rows, by table

    def __enter__(self) -> _Staging:
        return self

    def __exit__(self, *exception: object) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def write(self, derived: Iterable[_Derived], options: _Options) -> tuple[int, int]:
        """Insert derived rows, a chunk of about `chunk_episodes` at a time; returns how many
        customers and entries they came from."""
        customers = entries = 0
        for batch in derived:
            self.lines["episodes"] += batch.episode_lines
            self.lines["customers"] += batch.customer_lines
            customers += len(batch.entries)
            entries += sum(batch.entries)
            if options.on_customer is not None:
                for count in batch.entries:
                    options.on_customer(count)
            if len(self.lines["episodes"]) >= options.chunk_episodes:
                self.flush()
        self.flush()
        return customers, entries

    def flush(self) -> None:
        for table, columns in _TABLES.items():
            if self.lines[table]:
                self._insert(table, self.lines[table], columns)
                self.lines[table] = []

    def _insert(self, table: str, lines: list[bytes], columns: Mapping[str, str]) -> None:
        file = self.directory / f"{table}.ndjson"
        file.write_bytes(b"\n".join(lines))
        self.inserted[table] += len(lines)
        names = ", ".join(quote_identifier(name, "duckdb") for name in columns)
        types = ", ".join(
            f"{_string_literal(name)}: {_string_literal(_bare_type(kind))}"
            for name, kind in columns.items()
        )
        source = (
            f"FROM read_json({_string_literal(str(file))}, "
            f"format = 'newline_delimited', columns = {{{types}}})"
        )
        insert = f"INSERT INTO {table} ({names}) SELECT {names} {source}"
        if table == "episodes" and self.watchers:
            # The rows as inserted, returned by the insert (not read from the file again).
            expressions = _expressions(self.watchers)
            rows = self.connection.execute(
                f"{insert} RETURNING {', '.join(expressions)}"
            ).fetchall()
            _tell_values(self.watchers, rows, +1)
        else:
            self.connection.execute(insert)
        file.unlink()


_CUSTOMER_COLUMNS: Final[Mapping[str, str]] = {
    "customer": "VARCHAR NOT NULL",
    "log_indexes": "BIGINT[] NOT NULL",
    "links": "VARCHAR NOT NULL",  # JSON of `_Links`
}
_TABLES: Final[Mapping[str, Mapping[str, str]]] = {
    "episodes": EPISODE_COLUMNS,
    "customers": _CUSTOMER_COLUMNS,
}


def _bare_type(declaration: str) -> str:
    return declaration.removesuffix(" NOT NULL")


# ---------------------------------------------------------------------------------------------
# The file


def _connect(path: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as error:
        raise StoreError(f"cannot open the episode table {path}: {error}") from error


@contextmanager
def _opened(
    path: Path,
    attach_to: duckdb.DuckDBPyConnection | None,
    *,
    read_only: bool = False,
    attached_as: str | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection whose default database is the file at `path`: a database of its own, or
    the file attached to `attach_to`'s database (detached, so written through, on leaving)."""
    if attach_to is None:
        with _connect(path, read_only=read_only) as connection:
            yield connection
        return
    cursor = attach_to.cursor()
    if attached_as is not None:
        # Attached read-write by the caller, who keeps it so: used as it is.
        try:
            cursor.execute(f"USE {quote_identifier(attached_as, 'duckdb')}")
            yield cursor
        finally:
            cursor.close()
        return
    alias = f"episode_table_{next(_aliases)}"
    try:
        home = cursor.execute("SELECT current_database()").fetchone()
        assert home is not None
        cursor.execute(
            f"ATTACH {_string_literal(str(path))} AS {alias}"
            + (" (READ_ONLY)" if read_only else "")
        )
    except duckdb.Error as error:
        cursor.close()
        raise StoreError(f"cannot open the episode table {path}: {error}") from error
    try:
        cursor.execute(f"USE {alias}")
        yield cursor
    finally:
        cursor.execute(f"USE {quote_identifier(str(home[0]), 'duckdb')}")
        cursor.execute(f"DETACH {alias}")
        cursor.close()


_aliases: Final = itertools.count()


def _create_schema(connection: duckdb.DuckDBPyConnection) -> None:
    for table, columns in _TABLES.items():
        connection.execute(f"CREATE TABLE {table} ({_columns_sql(columns)})")
    connection.execute(
        "CREATE TABLE episode_table (format VARCHAR NOT NULL, tenant VARCHAR NOT NULL, "
        "size BIGINT NOT NULL, last_leaf VARCHAR NOT NULL, "
        "link_horizon_seconds BIGINT NOT NULL)"
    )


def _columns_sql(columns: Mapping[str, str]) -> str:
    return ", ".join(f"{quote_identifier(name, 'duckdb')} {kind}" for name, kind in columns.items())


def _write_state(
    connection: duckdb.DuckDBPyConnection,
    tenant: str,
    size: int,
    last_leaf: str,
    link_horizon: timedelta,
    counts: tuple[int, int] | None = None,
) -> EpisodeTableState:
    """Record the state; `counts` are the episodes and customers when the caller knows them."""
    connection.execute("DELETE FROM episode_table")
    connection.execute(
        "INSERT INTO episode_table VALUES (?, ?, ?, ?, ?)",
        [EPISODE_TABLE_FORMAT, tenant, size, last_leaf, _whole_seconds(link_horizon)],
    )
    return _counted_state(
        connection, EPISODE_TABLE_FORMAT, tenant, size, last_leaf, link_horizon, counts
    )


def _counted_state(
    connection: duckdb.DuckDBPyConnection,
    row_format: str,
    tenant: str,
    size: int,
    last_leaf: str,
    link_horizon: timedelta,
    counts: tuple[int, int] | None = None,
) -> EpisodeTableState:
    """The state, with the episodes and customers counted unless `counts` gives them."""
    if counts is None:
        row = connection.execute(
            "SELECT (SELECT count(*) FROM episodes), (SELECT count(*) FROM customers)"
        ).fetchone()
        assert row is not None
        counts = (int(row[0]), int(row[1]))
    return EpisodeTableState(
        format=row_format,
        tenant=tenant,
        size=size,
        last_leaf=last_leaf,
        link_horizon_seconds=_whole_seconds(link_horizon),
        episodes=counts[0],
        customers=counts[1],
    )


def _read_state(connection: duckdb.DuckDBPyConnection, path: Path) -> EpisodeTableState:
    try:
        rows = connection.execute(
            "SELECT format, tenant, size, last_leaf, link_horizon_seconds FROM episode_table"
        ).fetchall()
    except duckdb.Error as error:
        raise StoreError(f"{path} is not an episode table: {error}") from error
    if len(rows) != 1:
        raise StoreError(f"{path} is not an episode table: its state has {len(rows)} rows")
    row_format, tenant, size, last_leaf, horizon = rows[0]
    return _counted_state(
        connection,
        str(row_format),
        str(tenant),
        int(size),
        str(last_leaf),
        timedelta(seconds=int(horizon)),
    )


def _previous_state(
    target: Path, attach_to: duckdb.DuckDBPyConnection | None, attached_as: str | None
) -> EpisodeTableState | None:
    """The state of the table already at `target`, or None when there is none or it is not
    one this version reads (it is then built again from scratch)."""
    if not target.exists():
        return None
    try:
        with _opened(target, attach_to, read_only=True, attached_as=attached_as) as connection:
            return _read_state(connection, target)
    except StoreError:
        return None


def _last_leaf(ledger: LedgerStore, tenant: str, size: int) -> str:
    return ledger.leaf_hashes(tenant, size - 1, size)[0].hex() if size else ""


def _remove_database(path: Path) -> None:
    for suffix in ("", ".wal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _whole_seconds(duration: timedelta) -> int:
    seconds = duration // timedelta(seconds=1)
    if timedelta(seconds=seconds) != duration or seconds < 0:
        raise ValueError(f"expected a link horizon of whole seconds, found {duration}")
    return seconds


def _string_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
