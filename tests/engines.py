"""The settlement engines for tests: one Spark session per test session, and fixtures that run a
test on each engine (the reference judge, DuckDB, Spark) from the same events.

Spark starts once (`local[2]`, two shuffle partitions, no UI) and is stopped at the end; tests
on Spark skip, saying why, only when pyspark or Java is missing.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from raas.core.contract import Contract
from raas.core.events import Event
from raas.core.invoice import LedgerPoint
from raas.core.periods import Period
from raas.core.plan import Plan
from raas.core.settle import Settlement, settle
from raas.engine.duckdb_engine import (
    ClassifiedPeriod,
    settle_contract_with_duckdb,
    settle_with_duckdb,
)
from raas.engine.episode_table import build_episode_table
from raas.ledger.store import MemoryLedger

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ENGINES = ("reference", "duckdb", "spark")
SQL_ENGINES = ("duckdb", "spark")
_TABLES = itertools.count()


def spark_missing() -> str | None:
    """Why Spark cannot run here, or None."""
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (pip install -e '.[test]')"
    java_home = os.environ.get("JAVA_HOME")
    if shutil.which("java") is None and not (java_home and Path(java_home, "bin", "java").exists()):
        return "no Java runtime found (Spark needs Java 17 or later on PATH or in JAVA_HOME)"
    return None


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """The test session's Spark, local with two cores."""
    missing = spark_missing()
    if missing is not None:
        pytest.skip(missing)
    from raas.engine.spark_engine import spark_session

    session = spark_session(
        "local[2]",
        config={
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.driver.memory": "1g",
        },
        app_name="raas-tests",
    )
    yield session
    session.stop()


class SqlEngine(Protocol):
    """DuckDB or Spark, with the DuckDB engine's signatures."""

    name: str

    def classify(
        self,
        plan: Plan,
        table: Path,
        period: Period,
        as_of: datetime | None = None,
        **options: Any,
    ) -> ClassifiedPeriod: ...

    def settle(
        self, contract: Contract, table: Path, period: Period, *, as_of: datetime | None = None
    ) -> Settlement: ...


class _DuckDB:
    name = "duckdb"

    def classify(
        self, plan: Plan, table: Path, period: Period, as_of: datetime | None = None, **options: Any
    ) -> ClassifiedPeriod:
        return settle_with_duckdb(plan, table, period, as_of, **options)

    def settle(
        self, contract: Contract, table: Path, period: Period, *, as_of: datetime | None = None
    ) -> Settlement:
        return settle_contract_with_duckdb(contract, table, period, as_of=as_of)


class _Spark:
    name = "spark"

    def __init__(self, session: SparkSession) -> None:
        self.session = session

    def classify(
        self, plan: Plan, table: Path, period: Period, as_of: datetime | None = None, **options: Any
    ) -> ClassifiedPeriod:
        from raas.engine.spark_engine import settle_with_spark

        return settle_with_spark(plan, table, period, as_of, session=self.session, **options)

    def settle(
        self, contract: Contract, table: Path, period: Period, *, as_of: datetime | None = None
    ) -> Settlement:
        from raas.engine.spark_engine import settle_contract_with_spark

        return settle_contract_with_spark(
            contract, table, period, as_of=as_of, session=self.session
        )


def sql_engine_named(name: str, request: pytest.FixtureRequest) -> SqlEngine:
    """The engine called `name`; Spark's session from the `spark` fixture (or a skip)."""
    if name == "spark":
        return _Spark(request.getfixturevalue("spark"))
    assert name == "duckdb", name
    return _DuckDB()


@pytest.fixture(params=SQL_ENGINES)
def sql_engine(request: pytest.FixtureRequest) -> SqlEngine:
    """Each SQL engine in turn."""
    return sql_engine_named(request.param, request)


# Settles `contract` for `period` from events (all of one tenant, the contract's buyer).
SettleEvents = Callable[[Contract, list[Event], Period], Settlement]


@pytest.fixture(params=ENGINES)
def settle_events(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> SettleEvents:
    """Each engine in turn, as a function of the events: the reference judge over the events
    grouped by customer; DuckDB and Spark from an episode table built from a ledger holding
    them."""
    name: str = request.param
    if name == "reference":
        return _settle_on_reference
    engine = sql_engine_named(name, request)
    directory = tmp_path_factory.mktemp(f"settle-{name}")

    def on_engine(contract: Contract, events: list[Event], period: Period) -> Settlement:
        ledger = MemoryLedger()
        ledger.append(events)
        table = directory / f"table-{next(_TABLES)}.duckdb"
        build_episode_table(ledger, contract.buyer, None, table, link_horizon=contract.window)
        return engine.settle(contract, table, period)

    return on_engine


def _settle_on_reference(contract: Contract, events: list[Event], period: Period) -> Settlement:
    from factories import entries

    customers: dict[str, list[Any]] = {}
    for entry in entries(events):
        customers.setdefault(entry.event.customer, []).append(entry)
    return settle(
        contract,
        list(customers.values()),
        period=period,
        ledger=LedgerPoint(tenant=contract.buyer, size=len(events)),
    )
