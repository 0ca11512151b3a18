"""Settlement on Apache Spark, for when one machine is not enough: the DuckDB engine's plan and
queries in Spark SQL over the episode table exported as Parquet, then the same pure rating step,
so that the invoice is the reference's byte for byte.

The meaning is `raas.engine.duckdb_engine`'s, query for query (see its docstring): each episode
row gets its verdict, weight class and final_at from `compile_plan(plan, "spark")`, its unit's
verdict (per conversation, by window functions over the conversation's episodes) and its status
against the period and as_of; then one statement gathers the counts, the final units by verdict
and weight class with their sorted ids, and the measures that are lists. Spark sorts strings by
their UTF-8 bytes, which is Python's code-point order, and sums DECIMAL(38, 12) into
DECIMAL(38, 12) (an overflow raises under ANSI mode), so the result is the DuckDB engine's and
goes through the same `rate_classified`.

Spark reads files, not DuckDB databases: the episode table is exported to Parquet
(`export_for_spark`) beside it, or into `staging` (on a cluster, a directory every executor
sees at the same path), under a name that carries the table's ledger size and last leaf, so an
export is reused until the table is brought up to date. `spark_session` starts a session with
the settings the queries assume (ANSI mode, UTC), on `local[*]` or a cluster's master URL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from raas.core.contract import Contract
from raas.core.expressions_sql import string_literal
from raas.core.periods import Period
from raas.core.plan import EXCLUDED, NO_OUTCOME, Plan, plan_of
from raas.core.settle import Settlement, check_contract_covers
from raas.engine.duckdb_engine import (
    ClassifiedPeriod,
    PlanSql,
    compile_plan,
    rate_classified,
    unit_columns,
)

# The DuckDB engine's reading of the query's one row, shared so that both engines give their
# figures to the rater through the same code.
from raas.engine.duckdb_engine import _classified as classified_from_row
from raas.engine.episode_table import (
    EpisodeTableState,
    export_parquet,
    read_episode_table_state,
)
from raas.errors import SettlementError
from raas.ledger.store import time_microseconds

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = [
    "SPARK_MASTER_DEFAULT",
    "export_for_spark",
    "settle_contract_with_spark",
    "settle_with_spark",
    "spark_for_a_while",
    "spark_session",
]

SPARK_MASTER_DEFAULT: Final = "local[*]"

# What the queries assume of a session, whatever the cluster's defaults: exact decimal
# arithmetic that raises on overflow, instants read and written in UTC.
_REQUIRED_CONF: Final[Mapping[str, str]] = {
    "spark.sql.ansi.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
}
# Defaults for a session this module starts: no web UI or progress bars (a CLI and tests own the
# terminal), few shuffle partitions (one settlement's shuffles are small: per conversation, per
# outcome, per order).
_SESSION_DEFAULTS: Final[Mapping[str, str]] = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.adaptive.enabled": "true",
}

# Where a unit's outcome becomes final, relative to the period (as in the DuckDB engine).
_PROVISIONAL: Final = 0
_EARLIER: Final = 1
_LATER: Final = 2
_FINAL: Final = 3


def spark_session(
    master: str = SPARK_MASTER_DEFAULT,
    *,
    config: Mapping[str, str] | None = None,
    app_name: str = "raas-settle",
) -> SparkSession:
    """A Spark session on `master` (`local[*]`, `local[2]`, or a cluster's URL such as
    `spark://host:7077`) set up as settlement needs; `config` adds or overrides settings
    (e.g. `spark.driver.memory`, which only a session's first start can set).

    Returns the running session when there is one (Spark allows one per process), with the
    settings settlement needs applied to it."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise SettlementError(
            "the Spark engine needs pyspark: pip install 'raas[spark]' (and Java 17 or later)"
        ) from error
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in {**_SESSION_DEFAULTS, **(config or {}), **_REQUIRED_CONF}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    for key, value in _REQUIRED_CONF.items():
        session.conf.set(key, value)
    session.sparkContext.setLogLevel("ERROR")
    return session


@contextmanager
def spark_for_a_while(master: str = SPARK_MASTER_DEFAULT) -> Iterator[SparkSession]:
    """`spark_session(master)` for the length of a `with` block: stopped at its end if the
    block started it, left running if it was already (a caller's session is the caller's)."""
    try:
        from pyspark.sql import SparkSession

        running = SparkSession.getActiveSession()
    except ImportError:  # pragma: no cover - spark_session says what is missing
        running = None
    session = spark_session(master)
    try:
        yield session
    finally:
        if running is None:
            session.stop()


def export_for_spark(
    table_path: str | os.PathLike[str], staging: str | os.PathLike[str] | None = None
) -> Path:
    """The episode table's rows as a Parquet file Spark reads, written once per table state:
    `<table>.<size>-<last leaf>.parquet` in `staging` (default: beside the table). Exports of
    earlier states of the same table are removed."""
    table = Path(table_path)
    state = read_episode_table_state(table)
    directory = table.parent if staging is None else Path(staging)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{table.name}.{_state_key(state)}.parquet"
    if target.exists():
        return target
    partial = target.with_name(target.name + ".partial")
    try:
        export_parquet(table, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    for old in directory.glob(f"{table.name}.*.parquet"):
        if old != target:
            old.unlink(missing_ok=True)
    return target


def settle_with_spark(
    plan: Plan,
    table_path: str | os.PathLike[str],
    period: Period,
    as_of: datetime | None = None,
    *,
    tenant: str | None = None,
    link_horizon_seconds: int | None = None,
    currency: str | None = None,
    case_cost_outcomes: Collection[str] = (),
    session: SparkSession | None = None,
    staging: str | os.PathLike[str] | None = None,
) -> ClassifiedPeriod:
    """Classify the period's units under `plan` on Spark, from the episode table at
    `table_path` (built by `build_episode_table`); what `settle_with_duckdb` gives for the same
    arguments. `session` is the Spark session to use (default: `spark_session()`, local);
    `staging` where the table's Parquet export goes (see `export_for_spark`)."""
    as_of = period.end if as_of is None else as_of
    path = Path(table_path)
    state = read_episode_table_state(path)
    horizon = plan.window_seconds if link_horizon_seconds is None else link_horizon_seconds
    if state.link_horizon_seconds != horizon:
        raise SettlementError(
            f"the episode table {path} was derived with a link horizon of "
            f"{state.link_horizon_seconds} s, but this settlement needs {horizon} s "
            "(build it again with the contract's window)"
        )
    if tenant is not None and state.tenant != tenant:
        raise SettlementError(
            f"the episode table {path} holds tenant {state.tenant!r}, not {tenant!r}"
        )
    parquet = export_for_spark(path, staging)
    session = spark_session() if session is None else session
    compiled = compile_plan(plan, "spark")
    bounds = {
        "as_of": time_microseconds(as_of),
        "start": time_microseconds(period.start),
        "end": time_microseconds(period.end),
    }
    with _views(session) as name:
        try:
            session.read.parquet(str(parquet)).createOrReplaceTempView(name("episodes"))
            rows = session.sql(_episode_rows_sql(plan, compiled, name("episodes"), bounds))
            rows.persist()
            try:
                rows.createOrReplaceTempView(name("episode_rows"))
                statement = _result_sql(
                    plan,
                    compiled,
                    name,
                    currency=currency,
                    case_cost_outcomes=case_cost_outcomes,
                )
                [row] = session.sql(statement).collect()
            finally:
                rows.unpersist()
        except SettlementError:
            raise
        except Exception as error:
            # Spark's errors come from the JVM through py4j (AnalysisException,
            # SparkRuntimeException such as an ANSI overflow, Py4JJavaError).
            raise SettlementError(f"Spark could not settle from {path}: {error}") from error
    result = _plain(row.asDict(recursive=True))
    return classified_from_row(compiled, result, state.tenant, state.size, period, as_of, currency)


def settle_contract_with_spark(
    contract: Contract,
    table_path: str | os.PathLike[str],
    period: Period,
    *,
    as_of: datetime | None = None,
    prepaid_balance: Decimal | None = None,
    commitment_prior_subtotals: Sequence[Decimal] = (),
    session: SparkSession | None = None,
    staging: str | os.PathLike[str] | None = None,
) -> Settlement:
    """Settle `contract` for `period` on Spark from the episode table: the invoice and report
    that `raas.core.settle.settle` gives from the same ledger size, byte for byte."""
    check_contract_covers(contract, period)
    as_of = period.end if as_of is None else as_of
    plan = plan_of(contract)
    case_costs = {name for name, terms in contract.outcomes.items() if terms.case_cost is not None}
    classified = settle_with_spark(
        plan,
        table_path,
        period,
        as_of,
        tenant=contract.buyer,
        link_horizon_seconds=int(contract.window.total_seconds()),
        currency=contract.currency,
        case_cost_outcomes=case_costs,
        session=session,
        staging=staging,
    )
    return rate_classified(
        contract,
        plan,
        classified,
        period=period,
        prepaid_balance=prepaid_balance,
        commitment_prior_subtotals=commitment_prior_subtotals,
    )


# ---------------------------------------------------------------------------------------------
# The queries


def _episode_rows_sql(
    plan: Plan, compiled: PlanSql, episodes: str, bounds: Mapping[str, int]
) -> str:
    """Every episode row with its verdict, weight, final_at, its unit's verdict and its status
    (the DuckDB engine's `episode_rows`)."""
    verdicts = compiled.verdicts
    billable = [verdict.billable for verdict in verdicts]
    measured = [verdict.name != EXCLUDED for verdict in verdicts]
    matched = [verdict.name not in (EXCLUDED, NO_OUTCOME) for verdict in verdicts]
    units = unit_columns(plan, compiled, _lookup)
    return f"""
SELECT
    *,
    id = unit AS representative,
    {_lookup(billable, "verdict")} AS own_billable,
    {_lookup(billable, "unit_verdict")} AS billable,
    {_lookup(measured, "unit_verdict")} AS measured,
    {_lookup(matched, "unit_verdict")} AS matched,
    COALESCE(unix_micros(handoff_at) <= final_at, FALSE) AS taken_over,
    CASE
        WHEN unit_final_at > {bounds["as_of"]} THEN {_PROVISIONAL}
        WHEN unit_final_at < {bounds["start"]} THEN {_EARLIER}
        WHEN unit_final_at >= {bounds["end"]} THEN {_LATER}
        ELSE {_FINAL}
    END AS status
FROM (
    SELECT *,{units}
    FROM (
        SELECT *, {compiled.final_at} AS final_at,
            {compiled.weight_of("weight_class")} AS weight
        FROM (
            SELECT *, {compiled.verdict} AS verdict, {compiled.weight_class} AS weight_class
            FROM {episodes}
        )
    )
)
"""


def _result_sql(
    plan: Plan,
    compiled: PlanSql,
    name: _ViewNames,
    *,
    currency: str | None,
    case_cost_outcomes: Collection[str],
) -> str:
    """One row: what the DuckDB engine's settlement query gives, column for column."""
    window_seconds = plan.window_seconds
    case_costs = set(case_cost_outcomes) - {EXCLUDED, NO_OUTCOME}
    case_cost = _lookup(
        [verdict.name in case_costs for verdict in compiled.verdicts], "unit_verdict"
    )
    rows = name("episode_rows")
    members = f"(SELECT * FROM {rows} WHERE status = {_FINAL})"
    wanted = string_literal(currency, "spark") if currency is not None else "CAST(NULL AS STRING)"
    member_business = f"""(
        SELECT id, unit, billable, measured, customer, holdout_group, b
        FROM {members} AS m
        LATERAL VIEW explode(filter(business, x -> x.currency = {wanted})) AS b
    )"""
    signed = "CASE WHEN b.kind = 'refund' THEN - b.amount ELSE b.amount END"
    final = f"status = {_FINAL}"
    resolved = f"{final} AND measured AND NOT taken_over"
    return f"""
SELECT
    (
        SELECT named_struct(
            'provisional', count(*) FILTER (WHERE representative AND status = {_PROVISIONAL}),
            'earlier', count(*) FILTER (WHERE representative AND status = {_EARLIER}),
            'later', count(*) FILTER (WHERE representative AND status = {_LATER}),
            'episodes', count(*) FILTER (WHERE {final}),
            'model_cost', COALESCE(sum(model_cost) FILTER (WHERE {final}), 0),
            'model_cost_places', COALESCE(max(model_cost_places) FILTER (WHERE {final}), 0),
            'reviewed', count(*) FILTER (
                WHERE {final} AND matched AND review_passed IS NOT NULL),
            'passed', count(*) FILTER (WHERE {final} AND matched AND review_passed),
            'csat_total', COALESCE(sum(csat) FILTER (WHERE {final} AND measured), 0),
            'csat_answers', count(csat) FILTER (WHERE {final} AND measured),
            'handoffs', count(*) FILTER (WHERE {final} AND measured AND taken_over),
            'handoffs_with_context', count(*) FILTER (
                WHERE {final} AND measured AND taken_over AND context_passed),
            'ai_resolutions', count(*) FILTER (WHERE {resolved} AND own_billable),
            'confirmed_resolutions', count(*) FILTER (
                WHERE {resolved} AND own_billable AND confirmed IS TRUE),
            'assumed_resolutions', count(*) FILTER (
                WHERE {resolved} AND own_billable AND confirmed IS NOT TRUE),
            'recontacts_outside_window', count(*) FILTER (
                WHERE {resolved} AND own_billable AND recontact_delay >= {window_seconds}),
            'recontacts_inside_window', count(*) FILTER (
                WHERE {resolved} AND NOT own_billable AND recontact_delay < {window_seconds}),
            'unresolved', count(*) FILTER (
                WHERE {resolved} AND NOT own_billable
                    AND NOT COALESCE(recontact_delay < {window_seconds}, FALSE)),
            'resolved_units', count(*) FILTER (
                WHERE {final} AND representative AND billable AND NOT unit_handed_off),
            'business_events_other_currency', COALESCE(sum(
                size(filter(business, x -> x.currency <> {wanted}))), 0)
        )
        FROM {rows}
        WHERE representative OR {final} OR size(business) > 0
    ) AS counts,
    (
        SELECT collect_list(named_struct(
            'verdict', unit_verdict, 'class', unit_weight_class, 'ids', ids,
            'quantity', quantity))
        FROM (
            SELECT unit_verdict, unit_weight_class, sort_array(collect_list(id)) AS ids,
                sum({compiled.weight_of("unit_weight_class")}) AS quantity
            FROM {members} WHERE representative GROUP BY unit_verdict, unit_weight_class
        )
    ) AS outcomes,
    (
        SELECT sort_array(collect_list(named_struct('unit', unit, 'episodes', episodes)))
        FROM (SELECT unit, sort_array(collect_list(id)) AS episodes FROM {members}
              WHERE billable GROUP BY unit HAVING count(*) > 1)
        WHERE {"TRUE" if plan.count == "per_conversation" else "FALSE"}
    ) AS unit_episodes,
    (
        SELECT sort_array(collect_list(id)) FROM {members} WHERE {case_cost}
    ) AS case_episodes,
    (
        SELECT count(*) FROM (
            SELECT DISTINCT customer, conversation_id
            FROM {members} LATERAL VIEW explode(conversation_ids) AS conversation_id
        )
    ) AS conversations,
    (
        SELECT sort_array(collect_list(latency_ms_max))
        FROM {members} WHERE measured AND model_calls <> 0
    ) AS latencies,
    (
        SELECT sort_array(collect_list(named_struct(
            'order', key, 'amount', amount, 'places', places, 'episodes', episodes)))
        FROM (
            SELECT COALESCE(b.reference, b.event) AS key, sum({signed}) AS amount,
                max(b.places) AS places, sort_array(collect_set(id)) AS episodes
            FROM {member_business} WHERE billable GROUP BY COALESCE(b.reference, b.event)
        )
    ) AS orders,
    (
        SELECT sort_array(collect_list(named_struct(
            'group', holdout_group, 'zero', zero, 'measured', measured)))
        FROM (
            SELECT holdout_group,
                collect_list(customer) FILTER (WHERE amount = 0 AND places = 0) AS zero,
                collect_list(named_struct('customer', customer, 'amount', amount,
                    'places', places)) FILTER (WHERE amount <> 0 OR places <> 0) AS measured
            FROM (
                -- min(): the customer's one group, as in the DuckDB engine (deterministic).
                SELECT m.customer, min(m.holdout_group) AS holdout_group,
                    COALESCE(sum(n.amount), 0) AS amount, COALESCE(max(n.places), 0) AS places
                FROM (SELECT DISTINCT customer, holdout_group FROM {members}
                      WHERE measured AND holdout_group IS NOT NULL) AS m
                LEFT JOIN (
                    SELECT customer, {signed} AS amount, b.places AS places
                    FROM {member_business}
                    WHERE measured AND holdout_group IS NOT NULL
                ) AS n ON m.customer = n.customer
                GROUP BY m.customer
            )
            GROUP BY holdout_group
        )
    ) AS holdout
"""


def _lookup(values: Sequence[object], index: str) -> str:
    """The value at the verdict index `index` of a constant list (Spark's [] counts from 0)."""
    items = ", ".join(
        ("TRUE" if value else "FALSE") if isinstance(value, bool) else str(value)
        for value in values
    )
    return f"array({items})[{index}]"


def _plain(value: Any) -> Any:
    """A collected row as the DuckDB engine's result: dicts and lists all the way down."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if hasattr(value, "asDict"):
        return _plain(value.asDict(recursive=True))
    return value


class _ViewNames:
    """Names of temporary views private to one settlement (a session may serve several)."""

    def __init__(self) -> None:
        self.suffix = uuid.uuid4().hex
        self.made: list[str] = []

    def __call__(self, base: str) -> str:
        view = f"raas_{base}_{self.suffix}"
        if view not in self.made:
            self.made.append(view)
        return view


@contextmanager
def _views(session: SparkSession) -> Iterator[_ViewNames]:
    names = _ViewNames()
    try:
        yield names
    finally:
        for view in names.made:
            session.catalog.dropTempView(view)


def _state_key(state: EpisodeTableState) -> str:
    return f"{state.size}-{state.last_leaf[:16] or 'empty'}-{state.format}"
