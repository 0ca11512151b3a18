"""Spark gives the reference's invoice, byte for byte: every example contract settled from a
simulated month read through a real SQLite ledger, and from random workloads; hand-made cases
pin what Spark could do differently from DuckDB (the order of ids, the refusal of a table of
another horizon or tenant, an export reused only while the table is unchanged). What would
break: ids sorted by a collation instead of code points, a decimal sum that loses a place, a
stale Parquet export settled after the table moved on."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from engine_workloads import TENANT, workloads
from hypothesis import HealthCheck, given, settings

from factories import NOVEMBER, conversation
from raas.core.contract import Contract, load_contract
from raas.core.events import Event
from raas.core.invoice import invoice_json
from raas.core.periods import month_period
from raas.core.plan import OutcomeRule, Plan
from raas.engine.duckdb_engine import settle_contract_with_duckdb
from raas.engine.episode_table import build_episode_table
from raas.engine.reference import settle_from_ledger
from raas.engine.spark_engine import (
    export_for_spark,
    settle_contract_with_spark,
    settle_with_spark,
)
from raas.errors import SettlementError
from raas.ledger.sqlite import SqliteLedger
from raas.ledger.store import LedgerStore, MemoryLedger
from raas.sim import SimConfig, Simulation

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = {
    path.stem: load_contract(path) for path in sorted(ROOT.glob("examples/contracts/*.yaml"))
}
NOVEMBER_PERIOD = month_period("Europe/Berlin", 2026, 11)
TABLES = itertools.count()


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("spark-engine")


def fresh(directory: Path) -> Path:
    return directory / f"table-{next(TABLES)}.duckdb"


def assert_same_settlements(
    ledger: LedgerStore,
    directory: Path,
    contracts: dict[str, Contract],
    spark: SparkSession,
) -> None:
    tables: dict[timedelta, Path] = {}
    for name, contract in contracts.items():
        period = month_period(contract.time_zone, 2026, 11)
        table = tables.get(contract.window)
        if table is None:
            table = tables[contract.window] = fresh(directory)
            build_episode_table(ledger, TENANT, None, table, link_horizon=contract.window)
        expected = settle_from_ledger(ledger, contract, period)
        found = settle_contract_with_spark(contract, table, period, session=spark)
        assert invoice_json(found.invoice) == invoice_json(expected.invoice), name
        assert found.report == expected.report, name


def test_a_simulated_month_through_sqlite_gives_the_reference_invoice(
    directory: Path, spark: SparkSession
) -> None:
    with SqliteLedger(directory / "month.db") as ledger:
        simulation = Simulation(SimConfig(seed=11, conversations=300, batch_events=2_000))
        for batch in simulation.batches():
            ledger.append(batch)
        assert ledger.head(TENANT) > 4_000
        assert_same_settlements(ledger, directory, CONTRACTS, spark)


@settings(
    max_examples=2,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(events=workloads(customers_max=5))
def test_random_workloads_give_the_reference_invoice_per_conversation(
    events: list[Event], directory: Path, spark: SparkSession
) -> None:
    """The per-conversation example (gates, exclusions, handoffs final when they happen) on
    random workloads, against the reference and DuckDB."""
    ledger = MemoryLedger()
    ledger.append(events)
    contract = CONTRACTS["intercom-fin"]
    table = fresh(directory)
    build_episode_table(ledger, TENANT, None, table, link_horizon=contract.window)
    expected = settle_from_ledger(ledger, contract, NOVEMBER_PERIOD)
    on_duckdb = settle_contract_with_duckdb(contract, table, NOVEMBER_PERIOD)
    on_spark = settle_contract_with_spark(contract, table, NOVEMBER_PERIOD, session=spark)
    assert invoice_json(on_spark.invoice) == invoice_json(expected.invoice)
    assert invoice_json(on_duckdb.invoice) == invoice_json(expected.invoice)
    assert on_spark.report == expected.report


def test_episode_ids_sort_by_code_point_as_python_does(
    directory: Path, spark: SparkSession
) -> None:
    plan = Plan(rules=(OutcomeRule(name="any", when="true"),), window_seconds=3600)
    names = ["Zeta", "alpha", "Ärger", "émile", "\u00e9", "\U0001f600", "z"]
    events = [
        event
        for number, name in enumerate(names)
        for event in conversation(name, customer=f"customer-{number}", start=NOVEMBER)
    ]
    ledger = MemoryLedger()
    ledger.append(events)
    table = fresh(directory)
    build_episode_table(ledger, TENANT, None, table, link_horizon=timedelta(hours=1))
    [outcome] = settle_with_spark(plan, table, NOVEMBER_PERIOD, session=spark).outcomes
    assert list(outcome.units) == sorted(f"{name}#refund" for name in names)


def test_a_table_of_another_horizon_or_tenant_is_refused(directory: Path) -> None:
    """Refused before Spark is asked anything (no session needed)."""
    ledger = MemoryLedger()
    ledger.append(conversation("c1"))
    table = fresh(directory)
    build_episode_table(ledger, TENANT, None, table, link_horizon=timedelta(hours=72))
    plan = Plan(rules=(OutcomeRule(name="any", when="true"),), window_seconds=3600)
    with pytest.raises(SettlementError, match="derived with a link horizon of 259200 s"):
        settle_with_spark(plan, table, NOVEMBER_PERIOD)
    with pytest.raises(SettlementError, match="holds tenant 'acme', not 'globex'"):
        settle_with_spark(
            plan, table, NOVEMBER_PERIOD, tenant="globex", link_horizon_seconds=259200
        )


def test_the_parquet_export_follows_the_table(directory: Path) -> None:
    """Exported once per table state; a table brought up to date is exported again and the
    stale export removed."""
    ledger = MemoryLedger()
    ledger.append(conversation("c1"))
    table = fresh(directory)
    staging = directory / "staging"
    build_episode_table(ledger, TENANT, None, table, link_horizon=timedelta(hours=72))
    first = export_for_spark(table, staging)
    assert export_for_spark(table, staging) == first
    ledger.append(conversation("c2", customer="customer-2"))
    build_episode_table(ledger, TENANT, None, table, link_horizon=timedelta(hours=72))
    second = export_for_spark(table, staging)
    assert second != first and second.exists() and not first.exists()
    assert sorted(path.name for path in staging.iterdir()) == [second.name]
