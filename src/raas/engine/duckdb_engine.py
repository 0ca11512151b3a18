"""Settlement on DuckDB, in-process: a contract's plan as one SQL query over the episode table,
giving the period's classified outcomes and what pricing measures, then the same pure rating
step as the reference (`raas.core.settle`), so the invoice is the same byte for byte.

The query means what the reference means, episode by episode and unit by unit:

- one CASE gives each episode its verdict (`CompiledPlan.classify`): excluded when the
  exclusion is true; else the first rule that is true names the outcome, and a billable rule's
  outcome is un-billed by the first gate that is not true (false or unknown); no rule true:
  unmatched. Rules are compiled by `raas.core.expressions_sql.to_sql`, where unknown (NULL) is
  "no match" as in Python;
- the weight: the plan's weight for the value of `weight_feature` when it is text the plan
  names, else the default weight;
- final_at (`CompiledPlan.final_at`): the timestamp the verdict's rule names when it is known,
  else the window's close after resolution_at (or last_activity_at when the AI never
  answered), in whole microseconds since the epoch;
- the unit counted is the episode or, per conversation, the episodes that started in one
  conversation folded as `CompiledPlan.conversation_verdict` folds them (the outcome first in
  contract order; un-billed when one of its episodes failed a gate; the largest weight), final
  when the last of them is;
- a unit is provisional when final_at > as_of, else of an earlier period when final_at < start,
  of a later one when final_at >= end, and final in the period otherwise.

The same query measures what pricing reads besides the outcomes (reviews, orders, holdout
groups, cases, SLA figures) and the vendor's report, by the definitions in `raas.core.settle`.

`settle_with_duckdb` gives the plain data (`ClassifiedPeriod`); `rate_classified` turns it into
a `Settlement` (invoice and report) through the reference's own usage step and `rate`, so that
rounding of rates and means lives in one place; `settle_contract_with_duckdb` does both.
"""

from __future__ import annotations

import decimal
import itertools
import operator
import os
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, NamedTuple

import duckdb
import msgspec

from raas.core.contract import Contract
from raas.core.expressions import Type
from raas.core.expressions_sql import Dialect, quote_identifier, string_literal, to_sql
from raas.core.features import FEATURES
from raas.core.invoice import LedgerPoint
from raas.core.periods import Period
from raas.core.plan import EXCLUDED, NO_OUTCOME, Plan, bind_rule, plan_of
from raas.core.pricing.usage import WeightedEpisode
from raas.core.rate import rate
from raas.core.settle import (
    Settlement,
    SettlementReport,
    # The reference's tally and its usage step, private to it: filled from the query so that
    # the usage pricing reads is built by the same code on both paths.
    _Tally,
    _usage,
    check_contract_covers,
)
from raas.engine.episode_table import read_episode_table_state
from raas.errors import SettlementError, StoreError
from raas.ledger.store import time_microseconds

__all__ = [
    "DUCKDB_MEMORY_LIMIT_DEFAULT",
    "DUCKDB_THREADS_DEFAULT",
    "ClassifiedOutcome",
    "ClassifiedPeriod",
    "Measures",
    "Order",
    "PlanSql",
    "Verdict",
    "compile_plan",
    "rate_classified",
    "settle_contract_with_duckdb",
    "settle_with_duckdb",
    "settlement_query",
    "unit_columns",
]

# What the engine lets DuckDB use: the settlement target is under 2 GB on a 2-core machine.
DUCKDB_MEMORY_LIMIT_DEFAULT: Final = "1GB"
DUCKDB_THREADS_DEFAULT: Final = 2

_EXACT: Final = decimal.Context(prec=100, traps=[decimal.Inexact, decimal.InvalidOperation])

# Where a unit's outcome becomes final, relative to the period (the `status` column).
_PROVISIONAL: Final = 0
_EARLIER: Final = 1
_LATER: Final = 2
_FINAL: Final = 3


# ---------------------------------------------------------------------------------------------
# What a settlement on DuckDB gives


class ClassifiedOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """The units final in the period with one verdict: an outcome's name (a rule's name,
    `unmatched` or `excluded`), whether it is billed, and the gate that un-billed it (None
    unless a gate did).

    `units` are the ids the units are counted under (episode ids; per conversation, the
    episode the conversation is counted under), sorted; `weights` run beside them; `count` is
    how many, `quantity` the sum of the weights."""

    name: str
    billable: bool
    gate: str | None = None
    count: int
    quantity: Decimal
    units: tuple[str, ...]
    weights: tuple[Decimal, ...]


class Order(msgspec.Struct, frozen=True, kw_only=True):
    """A business amount inside billed units: its order key (the event's reference, else its
    id), the net amount in the contract's currency, and the episodes it was recorded in."""

    order: str
    amount: Decimal
    episodes: tuple[str, ...]


class Measures(msgspec.Struct, frozen=True, kw_only=True):
    """What the units final in the period measure besides their outcomes, as the reference
    settlement measures it (see `raas.core.settle`). Episodes are the members of those units;
    "measured" means of a unit that is not excluded.

    Business figures count only events in `currency` (none when no currency was asked for)."""

    episodes: int
    conversations: int
    model_cost: Decimal
    # Per conversation only: the billed units of more than one episode, with their episodes
    # (a unit of one episode is its own: `rate` reads a unit missing here as itself).
    unit_episodes: tuple[tuple[str, tuple[str, ...]], ...]
    reviewed: int
    passed: int
    orders: tuple[Order, ...]
    holdout: tuple[tuple[str, str, Decimal], ...]  # (customer, group, net amount), by customer
    case_episodes: tuple[str, ...]
    resolved_units: int  # billed, no human took over any of its episodes
    latencies: tuple[int, ...]  # the slowest model call of each measured episode that made one
    csat_total: int
    csat_answers: int
    handoffs: int
    handoffs_with_context: int
    ai_resolutions: int
    confirmed_resolutions: int
    assumed_resolutions: int
    unresolved: int
    recontacts_inside_window: int
    recontacts_outside_window: int
    business_events_other_currency: int  # in every episode of the table, final or not


class ClassifiedPeriod(msgspec.Struct, frozen=True, kw_only=True):
    """A plan applied to a tenant's episodes at one ledger size, for one period and as_of.

    `outcomes` are sorted by (name, billable, gate) and hold only verdicts with at least one
    unit final in the period; `provisional`, `earlier_periods` and `later_periods` count the
    other units, by where their verdict becomes final."""

    tenant: str
    size: int
    period: str
    as_of: datetime
    outcomes: tuple[ClassifiedOutcome, ...]
    provisional: int
    earlier_periods: int
    later_periods: int
    measures: Measures

    @property
    def units(self) -> int:
        """The units final in the period."""
        return sum(outcome.count for outcome in self.outcomes)

    def billable_outcomes(self) -> dict[str, tuple[WeightedEpisode, ...]]:
        """What pricing bills (`Usage.outcomes`): each billed outcome's units with weights."""
        return {
            outcome.name: tuple(
                WeightedEpisode(episode=unit, weight=weight)
                for unit, weight in zip(outcome.units, outcome.weights, strict=True)
            )
            for outcome in self.outcomes
            if outcome.billable
        }

    def not_billed(self) -> dict[str, int]:
        """How many final units were not billed, by the invoice's key for them: the gate that
        un-billed an outcome, else the outcome's name (an unbilled rule, `excluded`,
        `unmatched`)."""
        counts: dict[str, int] = {}
        for outcome in self.outcomes:
            if not outcome.billable:
                key = outcome.name if outcome.gate is None else outcome.gate
                counts[key] = counts.get(key, 0) + outcome.count
        return counts


# ---------------------------------------------------------------------------------------------
# The plan as SQL


class Verdict(NamedTuple):
    """One value of the verdict column: the outcome, whether billed, the gate that un-billed
    it, and where the outcome stands in contract order (excluded first, unmatched last)."""

    name: str
    billable: bool
    gate: str | None
    rank: int


class PlanSql(msgspec.Struct, frozen=True, kw_only=True):
    """A plan compiled for DuckDB, as SQL expressions over the episode table's columns:

    - `verdict`: an integer, an index into `verdicts`;
    - `final_at`: when the verdict becomes final, in microseconds since the epoch (reads the
      `verdict` column);
    - `weight_class`: an index into `weights`, -1 for the default weight;
    - `weight_of(column)`: the weight of a weight class as DECIMAL(38, 12)."""

    verdict: str
    verdicts: tuple[Verdict, ...]
    final_at: str
    weight_class: str
    weights: tuple[Decimal, ...]
    default_weight: Decimal

    def weight_of(self, column: str) -> str:
        """The weight of the weight class in `column`, as a DECIMAL(38, 12) expression."""
        if not self.weights:
            return _decimal(self.default_weight)
        values = " ".join(
            f"WHEN {index} THEN {_decimal(weight)}" for index, weight in enumerate(self.weights)
        )
        return f"CASE {column} {values} ELSE {_decimal(self.default_weight)} END"


def compile_plan(plan: Plan, dialect: Dialect = "duckdb") -> PlanSql:
    """The plan's classification as DuckDB (or Spark) SQL, meaning what `CompiledPlan` means
    per row."""
    epoch_us = "epoch_us" if dialect == "duckdb" else "unix_micros"
    unmatched_rank = len(plan.rules)
    verdicts: list[Verdict] = [
        Verdict(EXCLUDED, False, None, -1),
        Verdict(NO_OUTCOME, False, None, unmatched_rank),
    ]
    gates = [(gate.name, _rule_sql(gate.require, dialect)) for gate in plan.gates]
    window = (
        f"({epoch_us}(COALESCE(resolution_at, last_activity_at)) + "
        f"{plan.window_seconds * 1_000_000})"
    )
    # A CASE branch is taken only when its condition is true: false and unknown fall through,
    # as `matcher(row) is True` does in the reference; a gate fails unless it is true.
    branches: list[str] = []
    final_branches: list[str] = []
    if plan.exclude is not None:
        branches.append(f"WHEN {_rule_sql(plan.exclude, dialect)} THEN 0")
    for rank, rule in enumerate(plan.rules):
        first = len(verdicts)
        if not rule.billable:
            verdicts.append(Verdict(rule.name, False, None, rank))
            outcome = str(first)
        else:
            verdicts.append(Verdict(rule.name, True, None, rank))
            failed = []
            for gate_name, require in gates:
                failed.append(f"WHEN {require} IS NOT TRUE THEN {len(verdicts)}")
                verdicts.append(Verdict(rule.name, False, gate_name, rank))
            outcome = f"CASE {' '.join(failed)} ELSE {first} END" if failed else str(first)
        branches.append(f"WHEN {_rule_sql(rule.when, dialect)} THEN {outcome}")
        # The rule's own point in time when it names a timestamp feature and it is known.
        if rule.final_at is not None and FEATURES.get(rule.final_at) is Type.TIMESTAMP:
            column = quote_identifier(rule.final_at, dialect)
            final_branches.append(
                f"WHEN verdict BETWEEN {first} AND {len(verdicts) - 1} "
                f"THEN COALESCE({epoch_us}({column}), {window})"
            )
    verdict = f"CASE {' '.join(branches)} ELSE 1 END" if branches else "1"
    final_at = f"CASE {' '.join(final_branches)} ELSE {window} END" if final_branches else window

    keys = sorted(plan.weights)
    weights = tuple(plan.weights[key] for key in keys)
    feature = plan.weight_feature
    # The reference looks the feature's value up among the weights only when it is text.
    if feature is not None and FEATURES.get(feature) is Type.STRING and keys:
        column = quote_identifier(feature, dialect)
        cases = " ".join(
            f"WHEN {string_literal(key, dialect)} THEN {index}" for index, key in enumerate(keys)
        )
        weight_class = f"CASE {column} {cases} ELSE -1 END"
    else:
        weight_class = "-1"
    return PlanSql(
        verdict=verdict,
        verdicts=tuple(verdicts),
        final_at=final_at,
        weight_class=weight_class,
        weights=weights,
        default_weight=plan.default_weight,
    )


def unit_columns(
    plan: Plan, compiled: PlanSql, lookup: Callable[[Sequence[object], str], str]
) -> str:
    """The columns giving each episode row its unit (unit, unit_verdict, unit_weight_class,
    unit_final_at, unit_handed_off), in SQL that DuckDB and Spark both read;
    `lookup(values, index)` is the dialect's way to index a constant list by a verdict."""
    verdicts = compiled.verdicts
    if plan.count == "per_conversation":
        # The unit is the conversation the episodes started in (of one customer): its verdict
        # is that of the first episode in contract order, preferring one a gate un-billed, then
        # the smallest id; its weight the largest among the episodes of that outcome (the
        # smallest id on a tie, whose written form is kept); final when the last episode is.
        ranks = [verdict.rank for verdict in verdicts]
        gate_failed = [verdict.gate is not None for verdict in verdicts]
        conversation = "PARTITION BY customer, conversation"
        by_verdict = (
            f"({conversation} ORDER BY {lookup(ranks, 'verdict')}, "
            f"{lookup(gate_failed, 'verdict')} DESC, id)"
        )
        by_weight = f"({conversation} ORDER BY {lookup(ranks, 'verdict')}, weight DESC, id)"
        units = f"""
            first_value(id) OVER {by_verdict} AS unit,
            first_value(verdict) OVER {by_verdict} AS unit_verdict,
            first_value(weight_class) OVER {by_weight} AS unit_weight_class,
            max(final_at) OVER ({conversation}) AS unit_final_at,
            bool_or(handed_off) OVER ({conversation}) AS unit_handed_off"""
    else:
        units = """
            id AS unit,
            verdict AS unit_verdict,
            weight_class AS unit_weight_class,
            final_at AS unit_final_at,
            handed_off AS unit_handed_off"""
    return units


def settlement_query(
    plan: Plan,
    compiled: PlanSql | None = None,
    *,
    case_cost_outcomes: Collection[str] = (),
) -> str:
    """The one query that settles a period. Parameters: $as_of, $start and $end (microseconds
    since the epoch) and $currency (the contract's; NULL to measure no business amount). One
    row: the counts (units by status, and the measures that are counts or sums), the final
    units by (verdict, weight class) with their sorted ids, and the measures that are lists,
    each as a column. `case_cost_outcomes` are the outcomes whose units' episodes are listed as
    cases.

    Every episode row carries its unit's verdict, weight and final_at (per conversation, by
    window functions over the conversation's episodes, so no join is needed), and the unit's
    attributes are looked up by verdict in constant lists."""
    compiled = compile_plan(plan) if compiled is None else compiled
    window_seconds = plan.window_seconds
    case_costs = set(case_cost_outcomes)
    verdicts = compiled.verdicts

    def lookup(values: Sequence[object], index: str) -> str:
        # DuckDB lists count from 1; verdicts from 0.
        return f"[{', '.join(map(_literal, values))}][{index} + 1]"

    billable = [verdict.billable for verdict in verdicts]
    measured = [verdict.name != EXCLUDED for verdict in verdicts]
    matched = [verdict.name not in (EXCLUDED, NO_OUTCOME) for verdict in verdicts]
    case_cost = [
        verdict.name in case_costs and verdict.name not in (EXCLUDED, NO_OUTCOME)
        for verdict in verdicts
    ]
    units = unit_columns(plan, compiled, lookup)
    signed = "CASE WHEN b.kind = 'refund' THEN - b.amount ELSE b.amount END"
    # Per problem, each consumer reads the table again (columnar, cheap) rather than keeping
    # a million wide rows in memory; per conversation, the window functions run once.
    materialized = "MATERIALIZED" if plan.count == "per_conversation" else "NOT MATERIALIZED"
    return f"""
WITH episode_rows AS {materialized} (
    SELECT
        *,
        id = unit AS representative,
        {lookup(billable, "verdict")} AS own_billable,
        {lookup(billable, "unit_verdict")} AS billable,
        {lookup(measured, "unit_verdict")} AS measured,
        {lookup(matched, "unit_verdict")} AS matched,
        {lookup(case_cost, "unit_verdict")} AS case_cost,
        COALESCE(epoch_us(handoff_at) <= final_at, FALSE) AS taken_over,
        CASE
            WHEN unit_final_at > $as_of THEN {_PROVISIONAL}
            WHEN unit_final_at < $start THEN {_EARLIER}
            WHEN unit_final_at >= $end THEN {_LATER}
            ELSE {_FINAL}
        END AS status
    FROM (
        SELECT *,{units}
        FROM (
            SELECT *, {compiled.final_at} AS final_at,
                {compiled.weight_of("weight_class")} AS weight
            FROM (
                SELECT *, {compiled.verdict} AS verdict, {compiled.weight_class} AS weight_class
                FROM episodes
            )
        )
    )
),
members AS (
    SELECT * FROM episode_rows WHERE status = {_FINAL}
),
member_business AS (
    SELECT id, unit, billable, measured, customer, holdout_group,
        unnest(list_filter(business, lambda b: b.currency = $currency)) AS b
    FROM members
    WHERE len(business) > 0
)
SELECT
    (
        SELECT {{
            'provisional': count(*) FILTER (WHERE representative AND status = {_PROVISIONAL}),
            'earlier': count(*) FILTER (WHERE representative AND status = {_EARLIER}),
            'later': count(*) FILTER (WHERE representative AND status = {_LATER}),
            'episodes': count(*) FILTER (WHERE status = {_FINAL}),
            'model_cost': COALESCE(sum(model_cost) FILTER (WHERE status = {_FINAL}), 0),
            'model_cost_places':
                COALESCE(max(model_cost_places) FILTER (WHERE status = {_FINAL}), 0),
            'reviewed': count(*) FILTER (
                WHERE status = {_FINAL} AND matched AND review_passed IS NOT NULL),
            'passed': count(*) FILTER (WHERE status = {_FINAL} AND matched AND review_passed),
            'csat_total': COALESCE(sum(csat) FILTER (WHERE status = {_FINAL} AND measured), 0),
            'csat_answers': count(csat) FILTER (WHERE status = {_FINAL} AND measured),
            'handoffs': count(*) FILTER (WHERE status = {_FINAL} AND measured AND taken_over),
            'handoffs_with_context': count(*) FILTER (
                WHERE status = {_FINAL} AND measured AND taken_over AND context_passed),
            'ai_resolutions': count(*) FILTER (
                WHERE status = {_FINAL} AND measured AND NOT taken_over AND own_billable),
            'confirmed_resolutions': count(*) FILTER (
                WHERE status = {_FINAL} AND measured AND NOT taken_over AND own_billable
                    AND confirmed IS TRUE),
            'assumed_resolutions': count(*) FILTER (
                WHERE status = {_FINAL} AND measured AND NOT taken_over AND own_billable
                    AND confirmed IS NOT TRUE),
            'recontacts_outside_window': count(*) FILTER (
                WHERE status = {_FINAL} AND measured AND NOT taken_over AND own_billable
                    AND recontact_delay >= {window_seconds}),
            'recontacts_inside_window': count(*) FILTER (
                WHERE status = {_FINAL} AND measured AND NOT taken_over AND NOT own_billable
                    AND recontact_delay < {window_seconds}),
            'unresolved': count(*) FILTER (
                WHERE status = {_FINAL} AND measured AND NOT taken_over AND NOT own_billable
                    AND NOT COALESCE(recontact_delay < {window_seconds}, FALSE)),
            'resolved_units': count(*) FILTER (
                WHERE status = {_FINAL} AND representative AND billable
                    AND NOT unit_handed_off),
            'business_events_other_currency': COALESCE(sum(
                len(list_filter(business, lambda b: b.currency <> $currency))), 0)
        }}
        FROM episode_rows
        WHERE representative OR status = {_FINAL} OR len(business) > 0
    ) AS counts,
    (
        SELECT COALESCE(list({{
            'verdict': unit_verdict, 'class': unit_weight_class, 'ids': ids,
            'quantity': quantity
        }}), [])
        FROM (
            -- list_sort of a list is several times faster than list(id ORDER BY id).
            SELECT unit_verdict, unit_weight_class, list_sort(list(id)) AS ids,
                sum({compiled.weight_of("unit_weight_class")}) AS quantity
            FROM members WHERE representative GROUP BY unit_verdict, unit_weight_class
        )
    ) AS outcomes,
    (
        SELECT COALESCE(list({{'unit': unit, 'episodes': episodes}} ORDER BY unit), [])
        FROM (SELECT unit, list_sort(list(id)) AS episodes FROM members WHERE billable
              GROUP BY unit HAVING count(*) > 1)
        WHERE {_bool(plan.count == "per_conversation")}
    ) AS unit_episodes,
    (
        SELECT COALESCE(list_sort(list(id)), []) FROM members WHERE case_cost
    ) AS case_episodes,
    (
        SELECT count(*)
        FROM (SELECT DISTINCT customer, unnest(conversation_ids) FROM members)
    ) AS conversations,
    (
        SELECT COALESCE(list_sort(list(latency_ms_max)), [])
        FROM members WHERE measured AND model_calls <> 0
    ) AS latencies,
    (
        SELECT COALESCE(list({{
            'order': key, 'amount': amount, 'places': places, 'episodes': episodes
        }} ORDER BY key), [])
        FROM (
            SELECT COALESCE(b.reference, b.event) AS key, sum({signed}) AS amount,
                max(b.places) AS places, list_sort(list(DISTINCT id)) AS episodes
            FROM member_business WHERE billable GROUP BY key
        )
    ) AS orders,
    (
        -- Per holdout group, the customers whose net amount is a plain 0 (most of them: one
        -- list of names), and the others with their amounts. A customer's group is the one its
        -- last assignment names, as the reference reads it: `derive_episodes` gives it to
        -- every episode of the customer, so min() picks that one group, and stays
        -- deterministic where any_value() would not be.
        SELECT COALESCE(list({{
            'group': holdout_group, 'zero': zero, 'measured': measured
        }} ORDER BY holdout_group), [])
        FROM (
            SELECT holdout_group,
                COALESCE(list(customer) FILTER (WHERE amount = 0 AND places = 0), []) AS zero,
                COALESCE(list({{'customer': customer, 'amount': amount, 'places': places}})
                    FILTER (WHERE amount <> 0 OR places <> 0), []) AS measured
            FROM (
                SELECT m.customer, min(m.holdout_group) AS holdout_group,
                    COALESCE(sum(n.amount), 0) AS amount, COALESCE(max(n.places), 0) AS places
                FROM (SELECT DISTINCT customer, holdout_group FROM members
                      WHERE measured AND holdout_group IS NOT NULL) AS m
                LEFT JOIN (
                    SELECT customer, {signed} AS amount, b.places AS places
                    FROM member_business
                    WHERE measured AND holdout_group IS NOT NULL
                ) AS n USING (customer)
                GROUP BY m.customer
            )
            GROUP BY holdout_group
        )
    ) AS holdout
"""


# ---------------------------------------------------------------------------------------------
# Running it


def settle_with_duckdb(
    plan: Plan,
    table_path: str | os.PathLike[str],
    period: Period,
    as_of: datetime | None = None,
    *,
    tenant: str | None = None,
    link_horizon_seconds: int | None = None,
    currency: str | None = None,
    case_cost_outcomes: Collection[str] = (),
    connection: duckdb.DuckDBPyConnection | None = None,
) -> ClassifiedPeriod:
    """Classify the period's units under `plan` with one DuckDB query over the episode table
    at `table_path` (built by `build_episode_table`).

    `as_of` defaults to the period's end. The table must have been derived with the link
    horizon the settlement uses (`link_horizon_seconds`, by default the plan's window) and
    belong to `tenant` when given; otherwise SettlementError. `currency` is the contract's, for
    business amounts (None: none measured). `connection` is a DuckDB connection to use instead
    of opening the file (for callers that settle many plans from one table)."""
    as_of = period.end if as_of is None else as_of
    path = Path(table_path)
    own = connection is None
    if connection is None:
        connection = _connect(path)
    try:
        state = read_episode_table_state(path, connection)
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
        compiled = compile_plan(plan)
        query = settlement_query(plan, compiled, case_cost_outcomes=case_cost_outcomes)
        parameters = {
            "as_of": time_microseconds(as_of),
            "start": time_microseconds(period.start),
            "end": time_microseconds(period.end),
            "currency": currency,
        }
        try:
            cursor = connection.execute(query, parameters)
            names = [column[0] for column in cursor.description or ()]
            row = cursor.fetchone()
        except duckdb.Error as error:
            raise SettlementError(f"DuckDB could not settle from {path}: {error}") from error
    finally:
        if own:
            connection.close()
    assert row is not None
    return _classified(
        compiled,
        dict(zip(names, row, strict=True)),
        state.tenant,
        state.size,
        period,
        as_of,
        currency,
    )


def _classified(
    compiled: PlanSql,
    result: dict[str, Any],
    tenant: str,
    size: int,
    period: Period,
    as_of: datetime,
    currency: str | None,
) -> ClassifiedPeriod:
    # One group per (verdict, weight class), each with its ids sorted; a verdict whose units
    # have several weights is merged here.
    by_verdict: dict[int, list[tuple[list[str], Decimal, Decimal]]] = {}
    for group in result["outcomes"]:
        index = group["class"]
        weight = compiled.default_weight if index < 0 else compiled.weights[index]
        by_verdict.setdefault(group["verdict"], []).append(
            (group["ids"], weight, group["quantity"])
        )
    outcomes: list[ClassifiedOutcome] = []
    for code, groups in by_verdict.items():
        verdict = compiled.verdicts[code]
        if len(groups) == 1:
            [(units, weight, quantity)] = groups
            weights: tuple[Decimal, ...] = (weight,) * len(units)
        else:
            merged = sorted((unit, weight) for ids, weight, _ in groups for unit in ids)
            units = [unit for unit, _ in merged]
            weights = tuple(weight for _, weight in merged)
            quantity = sum((group_quantity for _, _, group_quantity in groups), Decimal(0))
        # DuckDB sorts text by its bytes, which for UTF-8 is Python's order too; checked here
        # because every invoice line lists its episodes in this order.
        if not all(map(operator.lt, units, itertools.islice(units, 1, None))):
            raise SettlementError(f"DuckDB returned the units of {verdict.name} out of order")
        total = Decimal(0)
        with decimal.localcontext(_EXACT):
            for weight in weights:
                total += weight
        # The weighted quantity is computed twice, by DuckDB and here from the plan's own
        # figures (which keep their written form); they must agree.
        if total != quantity:
            raise SettlementError(
                f"outcome {verdict.name}: DuckDB summed the weights to {quantity}, the plan's "
                f"weights give {total}"
            )
        outcomes.append(
            ClassifiedOutcome(
                name=verdict.name,
                billable=verdict.billable,
                gate=verdict.gate,
                count=len(units),
                quantity=total,
                units=tuple(units),
                weights=weights,
            )
        )
    outcomes.sort(key=lambda outcome: (outcome.name, outcome.billable, outcome.gate or ""))
    counts = result["counts"]
    measures = Measures(
        episodes=counts["episodes"],
        conversations=result["conversations"],
        model_cost=_as_written(counts["model_cost"], counts["model_cost_places"]),
        unit_episodes=tuple(
            (item["unit"], tuple(item["episodes"])) for item in result["unit_episodes"]
        ),
        reviewed=counts["reviewed"],
        passed=counts["passed"],
        orders=tuple(
            Order(
                order=item["order"],
                amount=_as_written(item["amount"], item["places"]),
                episodes=tuple(item["episodes"]),
            )
            for item in result["orders"]
        ),
        holdout=_holdout(result["holdout"]),
        case_episodes=tuple(result["case_episodes"]),
        resolved_units=counts["resolved_units"],
        latencies=tuple(result["latencies"]),
        csat_total=int(counts["csat_total"]),
        csat_answers=counts["csat_answers"],
        handoffs=counts["handoffs"],
        handoffs_with_context=counts["handoffs_with_context"],
        ai_resolutions=counts["ai_resolutions"],
        confirmed_resolutions=counts["confirmed_resolutions"],
        assumed_resolutions=counts["assumed_resolutions"],
        unresolved=counts["unresolved"],
        recontacts_inside_window=counts["recontacts_inside_window"],
        recontacts_outside_window=counts["recontacts_outside_window"],
        business_events_other_currency=(
            int(counts["business_events_other_currency"]) if currency is not None else 0
        ),
    )
    return ClassifiedPeriod(
        tenant=tenant,
        size=size,
        period=period.label,
        as_of=as_of,
        outcomes=tuple(outcomes),
        provisional=counts["provisional"],
        earlier_periods=counts["earlier"],
        later_periods=counts["later"],
        measures=measures,
    )


def settle_contract_with_duckdb(
    contract: Contract,
    table_path: str | os.PathLike[str],
    period: Period,
    *,
    as_of: datetime | None = None,
    prepaid_balance: Decimal | None = None,
    commitment_prior_subtotals: Sequence[Decimal] = (),
    connection: duckdb.DuckDBPyConnection | None = None,
) -> Settlement:
    """Settle `contract` for `period` from the episode table: the invoice and report that
    `raas.core.settle.settle` gives from the same ledger size, byte for byte."""
    check_contract_covers(contract, period)
    as_of = period.end if as_of is None else as_of
    plan = plan_of(contract)
    case_costs = {
        name: terms.case_cost
        for name, terms in contract.outcomes.items()
        if terms.case_cost is not None
    }
    classified = settle_with_duckdb(
        plan,
        table_path,
        period,
        as_of,
        tenant=contract.buyer,
        link_horizon_seconds=int(contract.window.total_seconds()),
        currency=contract.currency,
        case_cost_outcomes=case_costs,
        connection=connection,
    )
    return rate_classified(
        contract,
        plan,
        classified,
        period=period,
        prepaid_balance=prepaid_balance,
        commitment_prior_subtotals=commitment_prior_subtotals,
    )


def rate_classified(
    contract: Contract,
    plan: Plan,
    classified: ClassifiedPeriod,
    *,
    period: Period,
    prepaid_balance: Decimal | None = None,
    commitment_prior_subtotals: Sequence[Decimal] = (),
) -> Settlement:
    """The adapter to the reference's pure steps: the classified period as the reference's
    tally, then its usage and `rate`, and the vendor's report from the same figures."""
    measures = classified.measures
    rule_names = {rule.name for rule in plan.rules}
    tally = _Tally(not_billed={kind: 0 for kind in plan.not_billed_kinds()})
    report = SettlementReport(outcomes={rule.name: 0 for rule in plan.rules})
    for name, items in classified.billable_outcomes().items():
        tally.outcomes[name] = list(items)
    for key, count in classified.not_billed().items():
        tally.not_billed[key] = tally.not_billed.get(key, 0) + count
    for outcome in classified.outcomes:
        if outcome.name in rule_names:
            report.outcomes[outcome.name] += outcome.count
        terms = contract.outcomes.get(outcome.name)
        if outcome.name != EXCLUDED and terms is not None and terms.case_cost is not None:
            tally.cases += outcome.count
            tally.case_cost += terms.case_cost * outcome.count
    # Only the units of several episodes: `rate` expands a unit it does not find to itself, so
    # the invoice is the same as with every unit listed, without a million one-item tuples.
    tally.unit_episodes = dict(measures.unit_episodes)
    tally.reviewed, tally.passed = measures.reviewed, measures.passed
    tally.orders = {order.order: (order.amount, set(order.episodes)) for order in measures.orders}
    tally.holdout = {customer: (group, amount) for customer, group, amount in measures.holdout}
    tally.case_episodes = list(measures.case_episodes)
    tally.measured_units = sum(
        outcome.count for outcome in classified.outcomes if outcome.name != EXCLUDED
    )
    tally.resolved_units = measures.resolved_units
    tally.latencies = list(measures.latencies)
    tally.csat_total, tally.csat_answers = measures.csat_total, measures.csat_answers

    as_of = classified.as_of
    invoice = rate(
        contract,
        _usage(tally, prepaid_balance, commitment_prior_subtotals),
        not_billed=tally.not_billed,
        provisional=classified.provisional,
        period=period,
        as_of=as_of,
        ledger=LedgerPoint(tenant=classified.tenant, size=classified.size),
        unit_episodes=tally.unit_episodes or None,
    )
    report.conversations = measures.conversations
    report.episodes = measures.episodes
    report.units = classified.units
    report.billable = sum(outcome.count for outcome in classified.outcomes if outcome.billable)
    report.ai_resolutions = measures.ai_resolutions
    report.confirmed_resolutions = measures.confirmed_resolutions
    report.assumed_resolutions = measures.assumed_resolutions
    report.handoffs = measures.handoffs
    report.handoffs_with_context = measures.handoffs_with_context
    report.recontacts_inside_window = measures.recontacts_inside_window
    report.recontacts_outside_window = measures.recontacts_outside_window
    report.unresolved = measures.unresolved
    report.business_events_other_currency = measures.business_events_other_currency
    report.provisional = classified.provisional
    report.earlier_periods = classified.earlier_periods
    report.later_periods = classified.later_periods
    report.model_cost = measures.model_cost
    report.billed = invoice.total
    if report.ai_resolutions:
        report.model_cost_per_resolution = (report.model_cost / report.ai_resolutions).quantize(
            Decimal("0.0001")
        )
    report.margin = invoice.total - report.model_cost
    return Settlement(invoice=invoice, report=report)


_ZERO: Final = Decimal(0)


def _holdout(groups: list[dict[str, Any]]) -> tuple[tuple[str, str, Decimal], ...]:
    """(customer, group, net amount) for every measured holdout customer, sorted; a plain 0
    is one shared Decimal (most customers buy nothing in a month)."""
    found: list[tuple[str, str, Decimal]] = []
    for group in groups:
        name = group["group"]
        found += [(customer, name, _ZERO) for customer in group["zero"]]
        found += [
            (item["customer"], name, _as_written(item["amount"], item["places"]))
            for item in group["measured"]
        ]
    found.sort()
    return tuple(found)


def _as_written(value: Decimal, places: int) -> Decimal:
    """A DECIMAL(38, 12) sum given back with the decimal places the reference's Decimal sum
    has (the most of its terms', as Decimal addition keeps); exact, never rounded."""
    with decimal.localcontext(_EXACT):
        return Decimal(value).quantize(Decimal(1).scaleb(-places))


def _connect(path: Path) -> duckdb.DuckDBPyConnection:
    try:
        connection = duckdb.connect(str(path), read_only=True)
        # Set after connecting rather than as connection options: DuckDB refuses a second
        # connection to a file with options other than the first one's.
        connection.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT_DEFAULT}'")
        connection.execute(f"SET threads = {DUCKDB_THREADS_DEFAULT}")
    except duckdb.Error as error:
        raise StoreError(f"cannot open the episode table {path}: {error}") from error
    return connection


def _rule_sql(text: str, dialect: Dialect = "duckdb") -> str:
    return f"({to_sql(bind_rule(text), dialect)})"


def _decimal(value: Decimal) -> str:
    return f"CAST('{format(value, 'f')}' AS DECIMAL(38, 12))"


def _bool(value: bool) -> str:
    return "TRUE" if value else "FALSE"


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return _bool(value)
    assert isinstance(value, int)
    return str(value)
