"""The episode table holds exactly the reference's episodes, and keeps holding them as the ledger
grows. What would break: a settlement on DuckDB that reads a stale, partial or foreign table (a
customer's old episodes left beside its new ones, a table of another ledger updated in place),
a feature that differs from `episode_features`, or a business amount rounded on the way in."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factories import SOURCE, conversation, entries, holdout
from raas.core.episodes import Episode, derive_episodes
from raas.core.events import BusinessEvent, Event, HoldoutAssignment, make_event
from raas.core.features import FEATURES, episode_features
from raas.engine.episode_table import (
    EPISODE_COLUMNS,
    build_episode_table,
    export_parquet,
    read_episode_table_state,
)
from raas.errors import SettlementError, StoreError
from raas.ledger.store import MemoryLedger

TENANT = "acme"
HORIZON = timedelta(hours=72)
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
TABLES = itertools.count()


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("episode-table")


def fresh(directory: Path) -> Path:
    return directory / f"table-{next(TABLES)}.duckdb"


def order(
    conversation_id: str, amount: str, *, customer: str, intent: str, kind: str = "order"
) -> Event:
    return make_event(
        BusinessEvent(
            kind=kind,  # type: ignore[arg-type]
            amount=Decimal(amount),
            currency="USD",
            reference=f"{conversation_id}-{kind}",
        ),
        id=f"{conversation_id}-{kind}",
        source=SOURCE,
        time=START + timedelta(hours=1),
        tenant=TENANT,
        customer=customer,
        conversation=conversation_id,
        intent=intent,
    )


def table_rows(path: Path) -> dict[str, dict[str, Any]]:
    with duckdb.connect(str(path), read_only=True) as connection:
        cursor = connection.execute("SELECT * FROM episodes")
        names = [column[0] for column in cursor.description]
        return {
            row[names.index("id")]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()
        }


def state_rows(path: Path) -> list[tuple[Any, ...]]:
    """What an update starts from besides the rows: each customer's log indexes and links (by
    conversation, and the segments), customers in order."""
    with duckdb.connect(str(path), read_only=True) as connection:
        return connection.execute("SELECT * FROM customers ORDER BY customer").fetchall()


def reference_episodes(events: list[Event]) -> list[Episode]:
    by_customer: dict[str, list[Event]] = {}
    for event in events:
        by_customer.setdefault(event.customer, []).append(event)
    return [
        episode
        for customer_events in by_customer.values()
        for episode in derive_episodes(entries(customer_events), link_horizon=HORIZON)
    ]


def test_rows_are_the_episode_features_and_what_settlement_needs_besides(directory: Path) -> None:
    events = [
        *conversation("c1", intents=("refund", "billing"), confirm=True, csat=4, start=START),
        order("c1", "25.50", customer="customer-1", intent="billing"),
        *conversation("c2", customer="customer-2", handoff="with", channel="voice", start=START),
        *conversation(
            "c3",
            customer="customer-2",
            recontact_of="c2",
            start=START + timedelta(hours=2),
            model_cost="0.1234567",
        ),
    ]
    ledger = MemoryLedger()
    ledger.append(events)
    path = fresh(directory)
    built = build_episode_table(ledger, TENANT, None, path, link_horizon=HORIZON)
    assert built.full and built.customers_derived == 2 and built.entries_read == len(events)
    assert built.state.size == len(events) and built.state.episodes == 3
    assert (
        built.state.last_leaf == ledger.leaf_hashes(TENANT, len(events) - 1, len(events))[0].hex()
    )
    rows = table_rows(path)
    assert set(EPISODE_COLUMNS) == set(next(iter(rows.values())))
    for episode in reference_episodes(events):
        row = rows[episode.id]
        assert {name: row[name] for name in FEATURES} == episode_features(episode)
        assert row["customer"] == episode.customer
        assert row["conversation"] == episode.conversations[0]
        assert row["conversation_ids"] == list(episode.conversations)
        assert row["last_activity_at"] == episode.last_activity_at
    assert rows["c2#refund"]["conversation_ids"] == ["c2", "c3"]
    [sale] = rows["c1#billing"]["business"]
    assert sale["amount"] == Decimal("25.50") and sale["reference"] == "c1-order"
    assert sale["kind"] == "order" and sale["currency"] == "USD" and sale["event"] == "c1-order"
    assert rows["c1#refund"]["business"] == []


@st.composite
def growing_workloads(draw: st.DrawFn) -> list[list[Event]]:
    """A workload cut into appends: new customers, new conversations of known ones,
    recontacts that join an earlier episode, late events of an earlier conversation, holdout
    assignments."""
    batches: list[list[Event]] = []
    number = 0
    known: list[tuple[str, str, datetime]] = []
    for _ in range(draw(st.integers(2, 3))):
        batch: list[Event] = []
        for _ in range(draw(st.integers(1, 3))):
            conversation_id = f"c{number}"
            number += 1
            if known and draw(st.booleans()):
                customer, previous, previous_start = draw(st.sampled_from(known))
                start = previous_start + draw(
                    st.sampled_from([timedelta(minutes=30), timedelta(hours=80)])
                )
                recontact_of = previous if draw(st.booleans()) else None
            else:
                customer = f"customer-{draw(st.integers(0, 5))}"
                start = START + timedelta(hours=draw(st.integers(0, 200)))
                recontact_of = None
            events = conversation(
                conversation_id,
                customer=customer,
                start=start,
                intents=draw(
                    st.lists(st.sampled_from(["refund", "billing"]), min_size=1, unique=True)
                ),
                handoff=draw(st.sampled_from([None, "with"])),
                confirm=draw(st.sampled_from([None, True])),
                recontact_of=recontact_of,
            )
            # Part of a conversation may arrive with a later batch.
            cut = draw(st.integers(1, len(events)))
            batch += events[:cut]
            if cut < len(events):
                batches.append(batch)
                batch = events[cut:]
            known.append((customer, conversation_id, start))
            if draw(st.integers(0, 3)) == 0:
                # A holdout assignment changes the group of every episode of its customer.
                batch.append(
                    make_event(
                        HoldoutAssignment(
                            group=draw(st.sampled_from(["treatment", "control"])),
                            experiment="campaign-1",
                        ),
                        id=f"holdout-{conversation_id}",
                        source=SOURCE,
                        time=start + timedelta(minutes=draw(st.sampled_from([-60, 5]))),
                        tenant=TENANT,
                        customer=customer,
                        conversation=conversation_id,
                    )
                )
        batches.append(batch)
    return [batch for batch in batches if batch]


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=growing_workloads())
def test_an_incremental_build_equals_a_full_build_at_the_same_size(
    batches: list[list[Event]], directory: Path
) -> None:
    ledger = MemoryLedger()
    path = fresh(directory)
    host = duckdb.connect()  # every other build attaches the file to it, as the dashboard does
    for number, batch in enumerate(batches):
        size_before = ledger.head(TENANT)
        ledger.append(batch)
        built = build_episode_table(
            ledger, TENANT, None, path, link_horizon=HORIZON, attach_to=host if number % 2 else None
        )
        assert built.full == (number == 0)
        changed = {event.customer for event in batch}
        assert built.customers_derived == len(changed)
        if number:
            assert built.updated_from == size_before
            assert built.customers_changed == tuple(sorted(changed))
        assert built.state.size == size_before + len(batch)
        assert built.state == read_episode_table_state(path)  # counts kept, not counted
        full = fresh(directory)
        build_episode_table(ledger, TENANT, None, full, link_horizon=HORIZON)
        assert table_rows(path) == table_rows(full)
        assert state_rows(path) == state_rows(full)
        assert read_episode_table_state(path) == read_episode_table_state(full)
    everything = [event for batch in batches for event in batch]
    assert set(table_rows(path)) == {episode.id for episode in reference_episodes(everything)}


def test_a_returning_customer_reads_only_what_its_new_conversation_changes(
    directory: Path,
) -> None:
    ledger = MemoryLedger()
    month = [
        conversation(f"c{day}", intents=("refund", "billing"), start=START + timedelta(days=day))
        for day in range(0, 20, 4)
    ]
    ledger.append([event for events in month for event in events])
    path = fresh(directory)
    build_episode_table(ledger, TENANT, None, path, link_horizon=HORIZON)
    # Back two hours after c8: its refund episode is joined, the other four conversations stand.
    back = conversation("c8b", start=START + timedelta(days=8, hours=2), intents=("refund",))
    ledger.append(back)
    built = build_episode_table(ledger, TENANT, None, path, link_horizon=HORIZON)
    assert built.customers_derived == 1
    assert built.entries_read == len(month[2]) + len(back)  # c8 and c8b, not the month
    full = fresh(directory)
    build_episode_table(ledger, TENANT, None, full, link_horizon=HORIZON)
    assert table_rows(path) == table_rows(full) and state_rows(path) == state_rows(full)
    assert table_rows(path)["c8#refund"]["conversation_ids"] == ["c8", "c8b"]
    # A holdout assignment belongs to every episode, but changes only its holdout group.
    ledger.append([holdout("customer-1", "control", at=START)])
    built = build_episode_table(ledger, TENANT, None, path, link_horizon=HORIZON)
    assert built.entries_read == 1
    full = fresh(directory)
    build_episode_table(ledger, TENANT, None, full, link_horizon=HORIZON)
    assert table_rows(path) == table_rows(full) and state_rows(path) == state_rows(full)
    assert {row["holdout_group"] for row in table_rows(path).values()} == {"control"}
    # Later conversations read the holdout assignment (each episode's group), not the month.
    late = conversation("c30", start=START + timedelta(days=30))
    ledger.append(late)
    built = build_episode_table(ledger, TENANT, None, path, link_horizon=HORIZON)
    assert built.entries_read == len(late) + 1
    full = fresh(directory)
    build_episode_table(ledger, TENANT, None, full, link_horizon=HORIZON)
    assert table_rows(path) == table_rows(full) and state_rows(path) == state_rows(full)


def test_a_table_of_another_log_or_a_larger_size_is_built_again(directory: Path) -> None:
    first = MemoryLedger()
    first.append(conversation("c1", customer="customer-1", start=START))
    first.append(conversation("c2", customer="customer-2", start=START))
    path = fresh(directory)
    assert build_episode_table(first, TENANT, None, path).full
    # An earlier size of the same log: the rows of customer-2 must go.
    smaller = build_episode_table(first, TENANT, 6, path)
    assert smaller.full and set(table_rows(path)) == {"c1#refund"}
    # Another ledger whose log is longer: same tenant, but not the same entries.
    other = MemoryLedger()
    other.append(conversation("d1", customer="customer-1", start=START))
    other.append(conversation("d2", customer="customer-3", start=START))
    rebuilt = build_episode_table(other, TENANT, None, path)
    assert rebuilt.full and set(table_rows(path)) == {"d1#refund", "d2#refund"}
    # Another horizon changes how episodes link, so it is another table.
    assert build_episode_table(other, TENANT, None, path, link_horizon=timedelta(hours=1)).full
    # The same size again: nothing to derive.
    again = build_episode_table(other, TENANT, None, path, link_horizon=timedelta(hours=1))
    assert not again.full and again.customers_derived == 0
    # A file this version does not read (an older format) is replaced.
    older = fresh(directory)
    with duckdb.connect(str(older)) as connection:
        connection.execute("CREATE TABLE episode_table (format INTEGER, tenant VARCHAR)")
    assert build_episode_table(other, TENANT, None, older).full
    assert set(table_rows(older)) == {"d1#refund", "d2#refund"}


def test_small_chunks_give_the_same_table(directory: Path) -> None:
    ledger = MemoryLedger()
    for number in range(6):
        ledger.append(
            conversation(
                f"c{number}",
                customer=f"customer-{number % 3}",
                intents=("a", "b"),
                start=START + timedelta(days=5 * number),
            )
        )
    chunked, whole = fresh(directory), fresh(directory)
    build_episode_table(ledger, TENANT, None, chunked, chunk_episodes=1)
    build_episode_table(ledger, TENANT, None, whole)
    assert table_rows(chunked) == table_rows(whole) and len(table_rows(whole)) == 12


def test_worker_processes_give_the_same_table_and_their_errors(directory: Path) -> None:
    ledger = MemoryLedger()
    for number in range(5):
        ledger.append(conversation(f"c{number}", customer=f"customer-{number}", start=START))
    here, there = fresh(directory), fresh(directory)
    build_episode_table(ledger, TENANT, None, here)
    seen: list[int] = []
    built = build_episode_table(ledger, TENANT, None, there, processes=1, on_customer=seen.append)
    assert table_rows(here) == table_rows(there) and built.customers_derived == 5
    assert seen == [6] * 5
    ledger.append([order("c1", "0.0000000000001", customer="customer-1", intent="refund")])
    with pytest.raises(SettlementError, match="amount of business event c1-order"):
        build_episode_table(ledger, TENANT, None, fresh(directory), processes=1)


def test_bad_sizes_and_inexact_amounts_are_refused_and_leave_the_table(directory: Path) -> None:
    ledger = MemoryLedger()
    ledger.append(conversation("c1", start=START))
    path = fresh(directory)
    build_episode_table(ledger, TENANT, None, path)
    before = table_rows(path)
    with pytest.raises(StoreError, match="size 99 is not within the log of tenant 'acme'"):
        build_episode_table(ledger, TENANT, 99, path)
    ledger.append([order("c1", "0.0000000000001", customer="customer-1", intent="refund")])
    with pytest.raises(SettlementError, match=r"amount of business event c1-order .*12 decimal"):
        build_episode_table(ledger, TENANT, None, path)
    assert table_rows(path) == before
    assert read_episode_table_state(path).size == ledger.head(TENANT) - 1
    with pytest.raises(StoreError, match="is not an episode table"):
        other = directory / "not-a-table.duckdb"
        duckdb.connect(str(other)).close()
        read_episode_table_state(other)


def test_export_to_parquet_keeps_every_value(directory: Path) -> None:
    ledger = MemoryLedger()
    ledger.append(conversation("c1", start=START, csat=2, model_cost="0.0035"))
    ledger.append([order("c1", "19.99", customer="customer-1", intent="refund")])
    path = fresh(directory)
    build_episode_table(ledger, TENANT, None, path)
    parquet = directory / "episodes.parquet"
    export_parquet(path, parquet)
    with duckdb.connect() as connection:
        cursor = connection.execute(f"SELECT * FROM read_parquet('{parquet}')")
        names = [column[0] for column in cursor.description]
        [row] = cursor.fetchall()
    assert dict(zip(names, row, strict=True)) == table_rows(path)["c1#refund"]


def test_a_table_kept_attached_is_updated_in_place_and_detached_when_built_again(
    directory: Path,
) -> None:
    ledger = MemoryLedger()
    ledger.append(conversation("c1", customer="customer-1", start=START))
    path = fresh(directory)
    build_episode_table(ledger, TENANT, None, path, link_horizon=HORIZON)
    home = duckdb.connect()
    try:
        home.execute(f"ATTACH '{path}' AS kept")
        ledger.append(conversation("c2", customer="customer-2", start=START))
        built = build_episode_table(
            ledger, TENANT, None, path, link_horizon=HORIZON, attach_to=home, attached_as="kept"
        )
        # Written through the attached database, which stays attached and reads the update.
        assert not built.full and built.customers_derived == 1
        assert home.execute("SELECT count(*) FROM kept.episodes").fetchone() == (2,)
        # Another horizon: a new file replaces this one, so it is detached first.
        rebuilt = build_episode_table(
            ledger,
            TENANT,
            None,
            path,
            link_horizon=timedelta(hours=1),
            attach_to=home,
            attached_as="kept",
        )
        assert rebuilt.full
        names = {row[0] for row in home.execute("FROM duckdb_databases()").fetchall()}
        assert "kept" not in names
    finally:
        home.close()
    full = fresh(directory)
    build_episode_table(ledger, TENANT, None, full, link_horizon=timedelta(hours=1))
    assert table_rows(path) == table_rows(full) and state_rows(path) == state_rows(full)


def customer_indexes(path: Path) -> set[str]:
    with duckdb.connect(str(path), read_only=True) as connection:
        rows = connection.execute("SELECT table_name FROM duckdb_indexes()").fetchall()
    return {str(row[0]) for row in rows}


def test_an_update_reads_changed_customers_through_indexes_it_creates_on_older_tables(
    directory: Path,
) -> None:
    ledger = MemoryLedger()
    ledger.append(conversation("c1", customer="customer-1", start=START))
    ledger.append(conversation("c2", customer="customer-2", start=START))
    path = fresh(directory)
    build_episode_table(ledger, TENANT, None, path, link_horizon=HORIZON)
    tables = {"episodes", "customers"}
    assert customer_indexes(path) == tables
    # A table built before the indexes: its first update creates them.
    with duckdb.connect(str(path)) as connection:
        for table in tables:
            connection.execute(f"DROP INDEX {table}_customer")
    ledger.append(conversation("c3", customer="customer-1", start=START + timedelta(hours=1)))
    built = build_episode_table(ledger, TENANT, None, path, link_horizon=HORIZON)
    assert not built.full and built.customers_derived == 1
    assert customer_indexes(path) == tables
    full = fresh(directory)
    build_episode_table(ledger, TENANT, None, full, link_horizon=HORIZON)
    assert table_rows(path) == table_rows(full) and state_rows(path) == state_rows(full)
