"""DuckDB gives the reference's invoice, byte for byte: for every example contract (per problem
and per conversation, gates, exclusions, final_at at the handoff, business shares, holdouts,
savings with SLA credits, accuracy tiers), on random workloads and on a simulated month read
through a real SQLite ledger, the invoice's bytes and the vendor's report are those of
`raas.core.settle`. Hand-made cases pin the folds a random workload rarely reaches. What would
break: a per-conversation unit counted under another episode or weight, a business amount that
prints 25.000000000000 instead of 25.00, a table of another tenant or horizon settled quietly."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from engine_workloads import TENANT, workloads
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factories import NOVEMBER, conversation
from raas.core.contract import Contract, load_contract
from raas.core.events import Event
from raas.core.invoice import invoice_json
from raas.core.periods import month_period
from raas.core.plan import Gate, OutcomeRule, Plan
from raas.engine.duckdb_engine import (
    ClassifiedOutcome,
    settle_contract_with_duckdb,
    settle_with_duckdb,
)
from raas.engine.episode_table import build_episode_table
from raas.engine.reference import settle_from_ledger
from raas.errors import SettlementError
from raas.ledger.sqlite import SqliteLedger
from raas.ledger.store import LedgerStore, MemoryLedger
from raas.sim import SimConfig, Simulation

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = {
    path.stem: load_contract(path) for path in sorted(ROOT.glob("examples/contracts/*.yaml"))
}
NOVEMBER_PERIOD = month_period("Europe/Berlin", 2026, 11)
TABLES = itertools.count()


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("duckdb-engine")


def fresh(directory: Path) -> Path:
    return directory / f"table-{next(TABLES)}.duckdb"


def assert_same_settlements(
    ledger: LedgerStore, directory: Path, contracts: dict[str, Contract], as_of_days: int = 0
) -> None:
    tables: dict[timedelta, Path] = {}
    for name, contract in contracts.items():
        period = month_period(contract.time_zone, 2026, 11)
        as_of = period.end + timedelta(days=as_of_days)
        table = tables.get(contract.window)
        if table is None:
            table = tables[contract.window] = fresh(directory)
            build_episode_table(ledger, TENANT, None, table, link_horizon=contract.window)
        expected = settle_from_ledger(ledger, contract, period, as_of=as_of)
        found = settle_contract_with_duckdb(contract, table, period, as_of=as_of)
        assert invoice_json(found.invoice) == invoice_json(expected.invoice), name
        assert found.report == expected.report, name


def test_the_example_contracts_are_there() -> None:
    counts = {contract.count for contract in CONTRACTS.values()}
    assert len(CONTRACTS) >= 6 and counts == {"per_problem", "per_conversation"}


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(events=workloads(customers_max=5), as_of_days=st.sampled_from([-20, 0, 4]))
def test_every_example_contract_gives_the_reference_invoice(
    events: list[Event], as_of_days: int, directory: Path
) -> None:
    ledger = MemoryLedger()
    ledger.append(events)
    assert_same_settlements(ledger, directory, CONTRACTS, as_of_days)


def test_a_simulated_month_through_sqlite_gives_the_reference_invoice(directory: Path) -> None:
    with SqliteLedger(directory / "month.db") as ledger:
        simulation = Simulation(SimConfig(seed=11, conversations=300, batch_events=2_000))
        for batch in simulation.batches():
            ledger.append(batch)
        assert ledger.head(TENANT) > 4_000
        assert_same_settlements(ledger, directory, CONTRACTS)


# ---------------------------------------------------------------------------------------------
# Hand-made cases


def settle_events(
    events: list[Event], plan: Plan, directory: Path
) -> tuple[ClassifiedOutcome, ...]:
    ledger = MemoryLedger()
    ledger.append(events)
    table = fresh(directory)
    build_episode_table(
        ledger, TENANT, None, table, link_horizon=timedelta(seconds=plan.window_seconds)
    )
    return settle_with_duckdb(plan, table, NOVEMBER_PERIOD).outcomes


def test_a_conversation_is_counted_under_its_episode_that_failed_a_gate(directory: Path) -> None:
    plan = Plan(
        rules=(OutcomeRule(name="resolved", when="ai_answered"),),
        window_seconds=3600,
        count="per_conversation",
        gates=(Gate(name="not_refunds", require='intent != "refund"'),),
    )
    [outcome] = settle_events(conversation("c1", intents=("billing", "refund")), plan, directory)
    assert (outcome.name, outcome.billable, outcome.gate) == ("resolved", False, "not_refunds")
    assert outcome.units == ("c1#refund",)


def test_a_conversation_takes_its_first_outcome_in_contract_order_and_largest_weight(
    directory: Path,
) -> None:
    plan = Plan(
        rules=(
            OutcomeRule(name="billing", when='intent == "billing"'),
            OutcomeRule(name="anything", when="true"),
        ),
        window_seconds=3600,
        count="per_conversation",
        weight_feature="intent",
        weights={"billing": Decimal("1.5"), "shipping": Decimal("2.0")},
    )
    events = conversation("c1", intents=("shipping", "billing")) + conversation(
        "c2", intents=("shipping", "refund"), customer="customer-2"
    )
    found = {outcome.name: outcome for outcome in settle_events(events, plan, directory)}
    assert found["billing"].units == ("c1#billing",) and found["billing"].weights == (
        Decimal("1.5"),
    )
    # Both episodes of c2 are "anything": counted under the smaller id, at the larger weight,
    # written as the contract writes it.
    assert found["anything"].units == ("c2#refund",)
    assert str(found["anything"].weights[0]) == "2.0"


def test_an_outcome_final_at_the_handoff_is_billed_when_it_happens(directory: Path) -> None:
    plan = Plan(
        rules=(OutcomeRule(name="handoff", when="handed_off", final_at="handoff_at"),),
        window_seconds=72 * 3600,
    )
    # The handoff happens a minute before the period ends; the window would close in December.
    late = NOVEMBER_PERIOD.end - timedelta(minutes=3)
    [outcome] = settle_events(conversation("c1", handoff="with", start=late), plan, directory)
    assert outcome.units == ("c1#refund",)


def test_episode_ids_sort_by_code_point_as_python_does(directory: Path) -> None:
    plan = Plan(rules=(OutcomeRule(name="any", when="true"),), window_seconds=3600)
    names = ["Zeta", "alpha", "Ärger", "émile", "\u00e9", "\U0001f600", "z"]
    events = [
        event
        for number, name in enumerate(names)
        for event in conversation(name, customer=f"customer-{number}", start=NOVEMBER)
    ]
    [outcome] = settle_events(events, plan, directory)
    assert list(outcome.units) == sorted(f"{name}#refund" for name in names)


def test_a_table_of_another_horizon_or_tenant_is_refused(directory: Path) -> None:
    ledger = MemoryLedger()
    ledger.append(conversation("c1"))
    table = fresh(directory)
    build_episode_table(ledger, TENANT, None, table, link_horizon=timedelta(hours=72))
    plan = Plan(rules=(OutcomeRule(name="any", when="true"),), window_seconds=3600)
    with pytest.raises(SettlementError, match="derived with a link horizon of 259200 s"):
        settle_with_duckdb(plan, table, NOVEMBER_PERIOD)
    with pytest.raises(SettlementError, match="holds tenant 'acme', not 'globex'"):
        settle_with_duckdb(
            plan, table, NOVEMBER_PERIOD, tenant="globex", link_horizon_seconds=259200
        )
