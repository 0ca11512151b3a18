"""The vendor's figures kept per customer and brought up to date as the ledger grows: what would
break is an incremental update whose figures differ from a full grouping of the same table (a
customer's old share not taken away, a group left at zero, a latency percentile off by one)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb
from dashboard_workload import Workspace, build_workspace

from raas.core.plan import plan_of
from raas.dashboard.data import ContractFigures, FigureGroup, fold_figures, fold_kept
from raas.dashboard.figures import FigureKeeper
from raas.engine.duckdb_engine import compile_plan
from raas.engine.episode_table import build_episode_table
from raas.ingest.validate import parse_batch
from raas.sim import SimConfig, Simulation


def scanned_figures(workspace: Workspace, table: Path) -> ContractFigures:
    """The figures by one full scan of the table, as the dashboard computed them before it kept
    shares: the reference."""
    contract = workspace.contracts[0].contract
    plan = compile_plan(plan_of(contract))
    with duckdb.connect(str(table), read_only=True) as connection:
        size = connection.execute("SELECT size FROM episode_table").fetchone()
        groups = connection.execute(
            f"SELECT CAST(timezone('{contract.time_zone}', started_at) AS DATE), "
            f"{plan.verdict}, handed_off, tiers, count(*), coalesce(sum(csat), 0), count(csat), "
            "coalesce(sum(model_cost), 0) FROM episodes GROUP BY ALL"
        ).fetchall()
        latency = connection.execute(
            "SELECT quantile_disc(latency_ms_max, 0.95) FILTER (model_calls > 0) FROM episodes"
        ).fetchone()
    assert size is not None and latency is not None
    return fold_figures(
        contract,
        [verdict.name for verdict in plan.verdicts],
        [verdict.billable for verdict in plan.verdicts],
        [
            FigureGroup(day.isoformat(), int(verdict), bool(handed_off), str(tiers), *rest)
            for day, verdict, handed_off, tiers, *rest in groups
        ],
        None if latency[0] is None else int(latency[0]),
        int(size[0]),
    )


def kept_figures(
    workspace: Workspace, keeper: FigureKeeper, table: Path
) -> tuple[ContractFigures, bool, int]:
    contract = workspace.contracts[0].contract
    plan = compile_plan(plan_of(contract))
    totals = keeper.update(workspace.ledger, "acme", table)
    return fold_kept(contract, plan, totals), totals.full, totals.regrouped


def grow(workspace: Workspace, seed: int, conversations: int) -> None:
    """New conversations of (mostly) known customers, from another source: the log grows."""
    simulation = Simulation(
        SimConfig(
            conversations=conversations, seed=seed, tenant="acme", source=f"urn:test:grow:{seed}"
        )
    )
    for body in simulation.ndjson_batches():
        workspace.ledger.append(parse_batch(body, ndjson=True))


def test_kept_figures_equal_a_full_grouping_after_each_growth(tmp_path: Path) -> None:
    workspace = build_workspace(tmp_path / "ledger", conversations=150)
    contract = workspace.contracts[0].contract
    plan = compile_plan(plan_of(contract))
    table = tmp_path / "acme.duckdb"
    build_episode_table(workspace.ledger, "acme", None, table, link_horizon=contract.window)
    keeper = FigureKeeper(tmp_path / "acme.figures.duckdb", plan.verdict, contract.time_zone)
    try:
        figures, full, _ = kept_figures(workspace, keeper, table)
        assert full
        assert figures == scanned_figures(workspace, table)
        assert figures.episodes > 100 and figures.latency_p95_ms is not None
        for seed, conversations in ((21, 12), (22, 40), (23, 1)):
            grow(workspace, seed, conversations)
            before = figures
            build_episode_table(workspace.ledger, "acme", None, table, link_horizon=contract.window)
            figures, full, regrouped = kept_figures(workspace, keeper, table)
            assert not full and 0 < regrouped < 150
            assert figures == scanned_figures(workspace, table)
            assert figures.episodes > before.episodes and figures.size > before.size
        # Kept in the file: a new keeper (a restarted dashboard) reads the shares, not the table.
        keeper.close()
        again = FigureKeeper(tmp_path / "acme.figures.duckdb", plan.verdict, contract.time_zone)
        try:
            figures_again, full, regrouped = kept_figures(workspace, again, table)
            assert (full, regrouped) == (False, 0) and figures_again == figures
        finally:
            again.close()
        # Another contract (another verdict) does not read these shares as its own.
        other = FigureKeeper(tmp_path / "acme.figures.duckdb", "0", contract.time_zone)
        try:
            assert kept_figures(workspace, other, table)[1]
        finally:
            other.close()
    finally:
        keeper.close()
        workspace.ledger.close()


def test_the_dashboard_figures_after_the_log_grew_equal_a_full_grouping(tmp_path: Path) -> None:
    workspace = build_workspace(tmp_path / "ledger", conversations=80)
    data = workspace.data()
    item = workspace.contracts[0]
    try:
        first = data.contract_figures(item)
        data.refresh("acme")  # nothing new: the table is found current, the figures kept
        assert data.contract_figures(item) == first
        grow(workspace, 31, 20)
        data.refresh("acme")
        data.review_queue(item)  # another page brings the table up first
        grow(workspace, 32, 5)
        data.refresh("acme")
        # The kept figures span both updates: the customers of each are grouped again.
        grown = data.contract_figures(item)
        horizon = int(item.contract.window.total_seconds())
        table = tmp_path / "ledger" / "tables" / f"acme-{horizon}.duckdb"
        assert grown == scanned_figures(workspace, table)
        assert grown.size == workspace.ledger.head("acme")
        assert grown.episodes > first.episodes
        assert grown.model_cost > first.model_cost > Decimal(0)
    finally:
        data.close()
        workspace.ledger.close()
