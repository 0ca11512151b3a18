"""The vendor's figures kept and brought up to date by each update of the episode table: what
would break is an update whose sums differ from a full grouping of the same table (a leaving
episode not taken away, a changed one counted twice, a group left at zero, a latency percentile
off by one), or sums of another table state or contract taken as current."""

from __future__ import annotations

import gc
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from unittest.mock import patch
from zoneinfo import ZoneInfo

import duckdb
import msgspec
import pytest
from dashboard_workload import Workspace, build_workspace, contract_for
from hypothesis import given, settings
from hypothesis import strategies as st

from factories import holdout
from raas.core.events import HoldoutAssignment
from raas.core.invoice import invoice_from_json, invoice_json
from raas.core.periods import start_of_day
from raas.core.plan import plan_of
from raas.dashboard import figures
from raas.dashboard.data import (
    ContractFigures,
    ContractText,
    DashboardData,
    FigureGroup,
    fold_figures,
    period_model_cost,
)
from raas.dashboard.figures import FigureKeeper, GroupSums, KeptTotals, _Sums
from raas.engine.duckdb_engine import compile_plan
from raas.engine.episode_table import build_episode_table, read_episode_table_state
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


def grow(
    workspace: Workspace,
    seed: int,
    conversations: int,
    *,
    holdouts: bool = True,
    review_rate: float = 0.05,
) -> None:
    """New conversations of (mostly) known customers, from another source: the log grows.
    Without `holdouts`, the customers' holdout assignments are left out (each simulation
    assigns its customers again, which changes every episode of theirs; without, only the
    episodes the new conversations join change)."""
    simulation = Simulation(
        SimConfig(
            conversations=conversations,
            seed=seed,
            tenant="acme",
            source=f"urn:test:grow:{seed}",
            review_rate=review_rate,
        )
    )
    for body in simulation.ndjson_batches():
        events = parse_batch(body, ndjson=True)
        if not holdouts:
            events = [event for event in events if not isinstance(event.data, HoldoutAssignment)]
        workspace.ledger.append(events)


# A verdict that a holdout assignment arriving later changes (the example contract's does not).
HOLDOUT_VERDICT = "CASE WHEN holdout_group = 'control' THEN 0 WHEN handed_off THEN 1 ELSE 2 END"


def scanned_totals(table: Path, verdict_sql: str, time_zone: str) -> tuple[object, ...]:
    """The groups and p95 latency by one full scan of the table: the reference."""
    with duckdb.connect(str(table), read_only=True) as connection:
        groups = connection.execute(
            f"SELECT CAST(timezone('{time_zone}', started_at) AS DATE), {verdict_sql}, "
            "handed_off, tiers, count(*), coalesce(sum(csat), 0), count(csat), "
            "coalesce(sum(model_cost), 0) FROM episodes GROUP BY ALL"
        ).fetchall()
        latency = connection.execute(
            "SELECT quantile_disc(latency_ms_max, 0.95) FILTER (model_calls > 0) FROM episodes"
        ).fetchone()
    assert latency is not None
    return (
        {
            (day.isoformat(), int(verdict), bool(handed_off), str(tiers)): GroupSums(
                int(count), int(total), int(answers), Decimal(cost)
            )
            for day, verdict, handed_off, tiers, count, total, answers, cost in groups
        },
        latency[0],
    )


def kept_totals(keeper: FigureKeeper, table: Path) -> KeptTotals:
    with duckdb.connect(str(table), read_only=True) as connection:
        return keeper.totals(connection)


def watched_update(workspace: Workspace, table: Path, keepers: list[FigureKeeper]) -> int:
    """Bring the table to the log's head with the keepers watching, as the dashboard does;
    how many of them followed it."""
    state = read_episode_table_state(table)
    watches = [(keeper, keeper.watch(state.size, state.last_leaf)) for keeper in keepers]
    built = build_episode_table(
        workspace.ledger,
        "acme",
        None,
        table,
        link_horizon=workspace.contracts[0].contract.window,
        watchers=[watch for _, watch in watches if watch is not None],
    )
    assert not built.full and built.updated_from == state.size
    return sum(
        keeper.advance(watch, built.state.size, built.state.last_leaf)
        for keeper, watch in watches
        if watch is not None
    )


def scanned_reviews(table: Path) -> list[tuple[str, str, datetime]]:
    """The newest failed reviews by a query of the table, as the dashboard read them before
    it kept them: the reference."""
    with duckdb.connect(str(table), read_only=True) as connection:
        connection.execute("SET TimeZone = 'UTC'")
        rows = connection.execute(
            "SELECT id, intent, started_at FROM episodes WHERE review_passed = false "
            f"ORDER BY started_at DESC, id LIMIT {figures.REVIEW_QUEUE_MAX}"
        ).fetchall()
    return [(str(episode), str(intent), started_at) for episode, intent, started_at in rows]


def kept_reviews(totals: KeptTotals) -> list[tuple[str, str, datetime]]:
    return [(review.episode, review.intent, review.started_at) for review in totals.reviews]


def test_kept_sums_follow_each_update_as_a_full_grouping_gives_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Few failed reviews kept and shown, so that updates move the bound of those kept.
    monkeypatch.setattr(figures, "REVIEW_KEPT", 4)
    monkeypatch.setattr(figures, "REVIEW_QUEUE_MAX", 2)
    workspace = build_workspace(tmp_path / "ledger", conversations=150)
    contract = workspace.contracts[0].contract
    plan = compile_plan(plan_of(contract))
    zone = contract.time_zone
    table = tmp_path / "acme.duckdb"
    build_episode_table(workspace.ledger, "acme", None, table, link_horizon=contract.window)
    verdicts = (plan.verdict, HOLDOUT_VERDICT)
    keepers = [FigureKeeper(tmp_path / f"acme.{n}.json", v, zone) for n, v in enumerate(verdicts)]
    try:
        for keeper, verdict in zip(keepers, verdicts, strict=True):
            totals = kept_totals(keeper, table)
            assert totals.full
            assert (totals.groups, totals.latency_p95_ms) == scanned_totals(table, verdict, zone)
            assert kept_reviews(totals) == scanned_reviews(table)
        customers = sorted({customer for customer, _ in workspace.ledger.iter_customers("acme")})
        first = kept_totals(keepers[0], table)
        growths = [
            lambda: grow(workspace, 21, 12),
            # Returning customers: the episodes their conversations join are derived again.
            lambda: grow(workspace, 22, 40, holdouts=False),
            # A known customer is put in the control group: every episode of theirs changes.
            lambda: workspace.ledger.append([holdout(customers[3], "control")]),
            lambda: grow(workspace, 23, 1),
            # Every conversation reviewed: failed reviews newer than those kept.
            lambda: grow(workspace, 25, 30, holdouts=False, review_rate=1.0),
        ]
        for growth in growths:
            growth()
            assert watched_update(workspace, table, keepers) == len(keepers)
            for keeper, verdict in zip(keepers, verdicts, strict=True):
                totals = kept_totals(keeper, table)
                assert not totals.full
                assert totals.size == workspace.ledger.head("acme")
                assert (totals.groups, totals.latency_p95_ms) == scanned_totals(
                    table, verdict, zone
                )
                assert kept_reviews(totals) == scanned_reviews(table)
        assert len(scanned_reviews(table)) == figures.REVIEW_QUEUE_MAX
        assert sum(s.episodes for s in kept_totals(keepers[0], table).groups.values()) > sum(
            s.episodes for s in first.groups.values()
        )
        # Kept in the file: a new keeper (a restarted dashboard) reads the sums, not the table.
        again = FigureKeeper(keepers[0].path, plan.verdict, zone)
        assert kept_totals(again, table) == kept_totals(keepers[0], table)._replace(full=False)
        assert not kept_totals(again, table).full
        # Another contract (another verdict) does not read these sums as its own.
        assert kept_totals(FigureKeeper(keepers[0].path, "0", zone), table).full
        # The table updated where nobody watched: the sums kept are of an older state, not used.
        grow(workspace, 24, 5)
        build_episode_table(workspace.ledger, "acme", None, table, link_horizon=contract.window)
        stale = FigureKeeper(keepers[0].path, plan.verdict, zone)
        totals = kept_totals(stale, table)
        assert totals.full and totals.size == workspace.ledger.head("acme")
        assert (totals.groups, totals.latency_p95_ms) == scanned_totals(table, plan.verdict, zone)
        # A watch of the old state is no longer taken up.
        old = again.watch(*again.state) if again.state is not None else None
        assert old is not None and not stale.advance(old, 0, "")
    finally:
        workspace.ledger.close()


def test_an_update_that_fails_leaves_the_kept_sums_of_the_table_as_it_was(
    tmp_path: Path,
) -> None:
    workspace = build_workspace(tmp_path / "ledger", conversations=60)
    contract = workspace.contracts[0].contract
    plan = compile_plan(plan_of(contract))
    table = tmp_path / "acme.duckdb"
    build_episode_table(workspace.ledger, "acme", None, table, link_horizon=contract.window)
    keeper = FigureKeeper(tmp_path / "acme.json", plan.verdict, contract.time_zone)
    before = kept_totals(keeper, table)

    class Failing:
        expressions = ("id",)

        def rows(self, values: object, sign: int) -> None:
            if sign > 0:
                raise RuntimeError("the update fails after rows left")

    try:
        grow(workspace, 41, 10)
        state = read_episode_table_state(table)
        watch = keeper.watch(state.size, state.last_leaf)
        assert watch is not None
        with pytest.raises(RuntimeError):
            build_episode_table(
                workspace.ledger,
                "acme",
                None,
                table,
                link_horizon=contract.window,
                watchers=[watch, Failing()],
            )
        # Nothing was committed: the table and the kept sums are as they were.
        assert read_episode_table_state(table) == state
        assert kept_totals(keeper, table) == before._replace(full=False)
        assert watched_update(workspace, table, [keeper]) == 1
        totals = kept_totals(keeper, table)
        assert not totals.full and totals.size == workspace.ledger.head("acme")
        assert (totals.groups, totals.latency_p95_ms) == scanned_totals(
            table, plan.verdict, contract.time_zone
        )
    finally:
        workspace.ledger.close()


@pytest.fixture
def grouped(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each of the keepers' totals asked for was grouped in full, in order."""
    found: list[bool] = []
    totals = FigureKeeper.totals

    def spied(keeper: FigureKeeper, connection: duckdb.DuckDBPyConnection) -> KeptTotals:
        kept = totals(keeper, connection)
        found.append(kept.full)
        return kept

    monkeypatch.setattr(FigureKeeper, "totals", spied)
    return found


def test_the_dashboard_figures_after_the_log_grew_equal_a_full_grouping(
    tmp_path: Path, grouped: list[bool]
) -> None:
    workspace = build_workspace(tmp_path / "ledger", conversations=80)
    data = workspace.data()
    item = workspace.contracts[0]
    try:
        first = data.contract_figures(item)
        data.refresh("acme")  # nothing new: the table is found current, the figures kept
        assert data.contract_figures(item) == first
        assert grouped == [True]
        grow(workspace, 31, 20)
        data.refresh("acme")
        data.customer_of(item, "none")  # another page brings the table up first, the sums along
        grow(workspace, 32, 5)
        data.refresh("acme")
        grown = data.contract_figures(item)
        assert grouped == [True, False]
    finally:
        data.close()
    horizon = int(item.contract.window.total_seconds())
    table = tmp_path / "ledger" / "tables" / f"acme-{horizon}.duckdb"
    try:
        assert grown == scanned_figures(workspace, table)
        assert grown.size == workspace.ledger.head("acme")
        assert grown.episodes > first.episodes
        assert grown.model_cost > first.model_cost > Decimal(0)
    finally:
        workspace.ledger.close()


def test_warming_keeps_the_figures_before_the_first_page_and_no_page_reads_them_stale(
    tmp_path: Path, grouped: list[bool]
) -> None:
    workspace = build_workspace(tmp_path / "ledger", conversations=60)
    data = workspace.data()
    item = workspace.contracts[0]
    try:
        data.warm()
        assert grouped == [True, True]  # both buyers' contracts, grouped in full
        data.close()
        data = workspace.data()  # a server started again: the figures kept are read
        data.start_warming()
        # A page asked for while warming waits for the table it reads, and reads it whole.
        assert data.contract_figures(item).size == workspace.ledger.head("acme")
        data.close()  # stops warming (after the contract in hand)
        data = workspace.data()
        data.warm()
        assert grouped[2:] and not any(grouped[2:])
        del grouped[:]
        warmed = data.ledger.head("acme")
        # The log grew after warming, and nobody told the dashboard: the first page still
        # reads the log's head (warming is no page's refresh), the sums following the update.
        grow(workspace, 51, 8)
        grown = data.contract_figures(item)
        assert grouped == [False]
        assert data.contract_figures(item) is grown and grouped == [False]
        assert grown.size == workspace.ledger.head("acme") > warmed
    finally:
        data.close()
    horizon = int(item.contract.window.total_seconds())
    try:
        assert grown == scanned_figures(
            workspace, tmp_path / "ledger" / "tables" / f"acme-{horizon}.duckdb"
        )
    finally:
        workspace.ledger.close()


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Zones whose days are not all 24 hours long (and one whose midnight a clock once skipped).
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "America/Santiago", "Asia/Kolkata")


@st.composite
def days_and_periods(draw: st.DrawFn) -> tuple[ContractFigures, datetime, datetime]:
    """Figures of episodes on some days of a zone, and a period: whole days of that zone (as an
    invoice's month is), or ends anywhere."""
    zone = draw(st.sampled_from(ZONES))
    first = date(2026, 3, 1) + timedelta(days=draw(st.integers(0, 300)))
    groups = [
        FigureGroup(
            (first + timedelta(days=draw(st.integers(0, 40)))).isoformat(),
            draw(st.integers(0, 2)),
            draw(st.booleans()),
            "",
            1,
            0,
            0,
            Decimal(draw(st.integers(0, 10**9))).scaleb(-12),
        )
        for _ in range(draw(st.integers(0, 30)))
    ]
    figures = fold_figures(
        contract_for("acme").contract, ["excluded", "unmatched", "ok"], [False] * 3, groups, None, 1
    )
    ends = []
    for _ in range(2):
        day = first + timedelta(days=draw(st.integers(-2, 42)))
        end = start_of_day(day, zone)
        if draw(st.booleans()):
            end += timedelta(minutes=draw(st.integers(1, 24 * 60 - 1)))
        ends.append(end)
    return msgspec.structs.replace(figures, time_zone=zone), min(ends), max(ends)


@settings(max_examples=200, deadline=None)
@given(case=days_and_periods())
def test_a_period_of_whole_days_costs_the_sum_of_its_days(
    case: tuple[ContractFigures, datetime, datetime],
) -> None:
    figures, start, end = case
    cost = period_model_cost(figures, start, end)
    zone = figures.time_zone
    whole = all(
        moment == start_of_day(moment.astimezone(ZoneInfo(zone)).date(), zone)
        for moment in (start, end)
    )
    if not whole:
        assert cost is None  # the table sums it
        return
    # Each day's episodes started within the day: in the period when the day's start is.
    assert cost == sum(
        (
            day_cost
            for day, day_cost in figures.cost_by_day
            if start <= start_of_day(date.fromisoformat(day), zone) < end
        ),
        Decimal(0),
    )


def test_period_costs_from_the_kept_days_equal_the_table_sums_as_the_log_grows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = build_workspace(tmp_path / "ledger", conversations=60)
    item = workspace.contracts[0]
    month = invoice_from_json(
        workspace.ledger.get_invoice("acme", workspace.invoices["acme"]) or b""
    )
    # An invoice whose period does not start at a day's start: its cost is summed by the table.
    shifted = msgspec.structs.replace(
        month, id=f"{month.id}-shifted", period_start=month.period_start + timedelta(hours=30)
    )
    workspace.ledger.store_invoice(shifted.id, "acme", invoice_json(shifted))
    summed: list[datetime] = []
    by_table = DashboardData._period_model_cost

    def spied(data: DashboardData, item: ContractText, start: datetime, end: datetime) -> Decimal:
        summed.append(start)
        return by_table(data, item, start, end)

    monkeypatch.setattr(DashboardData, "_period_model_cost", spied)
    data = workspace.data()
    horizon = int(item.contract.window.total_seconds())
    table = tmp_path / "ledger" / "tables" / f"acme-{horizon}.duckdb"
    seen = []
    try:
        for growth in (lambda: None, lambda: grow(workspace, 61, 15, holdouts=False)):
            growth()
            data.refresh("acme")
            costs = data.period_costs(item)
            with data.table(item) as cursor:
                expected = [
                    Decimal(
                        cursor.execute(
                            "SELECT coalesce(sum(model_cost), 0) FROM episodes "
                            "WHERE started_at >= ? AND started_at < ?",
                            [invoice.period_start, invoice.period_end],
                        ).fetchone()[0]
                    )
                    for invoice in (month, shifted)
                ]
            assert [(cost.invoice_id, cost.model_cost) for cost in costs] == list(
                zip([month.id, shifted.id], expected, strict=True)
            )
            seen.append(costs[0].model_cost)
        assert summed == [shifted.period_start] * 2  # the month's came from the kept days
        assert seen[1] > seen[0] > Decimal(0)  # the growth's episodes started in the month
    finally:
        data.close()
        workspace.ledger.close()
    assert table.exists()


REVIEW_KEYS = st.tuples(st.integers(-30, 0), st.sampled_from("abcdefgh"), st.sampled_from("xy"))


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_the_failed_reviews_kept_are_the_newest_of_the_table_through_any_updates(
    data: st.DataObject,
) -> None:
    """A model of the table's failed reviews (keys in the queue's order) and updates that take
    rows away and add others (a changed row does both): what is kept, asked for again only when
    it says so, shows the table's newest."""
    kept, shown = 6, 3
    with (
        patch.object(figures, "REVIEW_KEPT", kept),
        patch.object(figures, "REVIEW_QUEUE_MAX", shown),
    ):
        table = data.draw(st.sets(REVIEW_KEYS, max_size=20))
        sums = _Sums()
        sums.set_reviews(sorted(table)[:kept])
        for _ in range(data.draw(st.integers(1, 8))):
            leaving = data.draw(st.sets(st.sampled_from(sorted(table)))) if table else set()
            entering = data.draw(st.sets(REVIEW_KEYS, max_size=12)) - (table - leaving)
            sums.fold_reviews(leaving, -1)
            sums.fold_reviews(entering, +1)
            table = (table - leaving) | entering
            if sums.reviews is None:  # as `FigureKeeper.totals` does
                sums.set_reviews(sorted(table)[:kept])
            assert sums.reviews is not None and len(sums.reviews) <= 2 * kept
            assert [
                (review.episode, review.intent, review.started_at)
                for review in sums.newest_reviews()
            ] == [
                (episode, intent, EPOCH + timedelta(microseconds=-minus))
                for minus, episode, intent in sorted(table)[:shown]
            ]


def test_warming_freezes_what_the_server_holds_out_of_full_collections(tmp_path: Path) -> None:
    workspace = build_workspace(tmp_path / "ledger", conversations=20)
    data = workspace.data()
    gc.unfreeze()
    try:
        assert any(held is data for held in gc.get_objects())
        data.warm()
        # The dashboard and what it holds are past the collector's generations, not walked.
        assert gc.get_freeze_count() > 0
        assert not any(held is data for held in gc.get_objects())
        made_later = [data.contracts]
        assert any(held is made_later for held in gc.get_objects())
    finally:
        gc.unfreeze()
        data.close()
        workspace.ledger.close()
