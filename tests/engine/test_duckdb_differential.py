"""DuckDB and Spark settle exactly as the reference does: for random workloads (several
customers, random handoffs, confirmations, recontacts inside and outside the window, CSAT,
reviews, orders, holdouts) and random plans (typed rules over every feature, exclusions, gates,
difficulty weights, both counting modes), the classified outcomes of a period are equal: names,
billing, episode ids, weights, quantities and the provisional/earlier/later counts; DuckDB and
Spark also agree on every measure pricing reads. What would break: an invoice that differs
between engines because of NULL handling in a rule, a gate applied to the wrong rule, an
off-by-one-microsecond window edge, or a weight read from a non-text feature."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from engine_reference import reference_period
from engine_workloads import TENANT, reference_episodes, workloads
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raas.core.episodes import Episode
from raas.core.events import Event
from raas.core.expressions import Type
from raas.core.features import FEATURES, episode_features
from raas.core.periods import Period, month_period
from raas.core.plan import CompiledPlan, Gate, OutcomeRule, Plan
from raas.engine.duckdb_engine import settle_with_duckdb
from raas.engine.episode_table import build_episode_table
from raas.engine.spark_engine import settle_with_spark
from raas.ledger.store import MemoryLedger

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

HORIZON = timedelta(hours=72)
HORIZON_SECONDS = 72 * 3600
NOVEMBER_BERLIN = month_period("Europe/Berlin", 2026, 11)
TABLES = itertools.count()


# ---------------------------------------------------------------------------------------------
# Plans: random well-typed rules over FEATURES from a small grammar


def names_of(kind: Type) -> list[str]:
    return [name for name, feature_kind in FEATURES.items() if feature_kind is kind]


OPERATORS = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
EQUALITY = st.sampled_from(["==", "!="])
DURATIONS = st.sampled_from(["0s", "59s", "1m", "4m", "10m", "1h", "71h", "72h", "3d"])
STRINGS = st.sampled_from(
    ['"refund"', '"billing"', '"chat"', '"email"', '"small"', '"large,small"', '"control"']
)


def combine(template: str, *parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(*parts).map(lambda drawn: template.format(*drawn))


def atoms() -> st.SearchStrategy[str]:
    integer = st.sampled_from(names_of(Type.INTEGER))
    duration = st.sampled_from(names_of(Type.DURATION))
    decimal = st.sampled_from(names_of(Type.DECIMAL))
    string = st.sampled_from(names_of(Type.STRING))
    every = st.sampled_from(list(FEATURES))
    return st.one_of(
        st.sampled_from(names_of(Type.BOOL)),
        combine(
            "({} {} {})",
            st.sampled_from(names_of(Type.BOOL)),
            EQUALITY,
            st.sampled_from(["true", "false"]),
        ),
        combine("({} {} {})", integer, OPERATORS, st.integers(-1, 300).map(str)),
        combine("({} + {} {} {})", integer, integer, OPERATORS, st.integers(0, 300).map(str)),
        combine("({} {} {})", duration, OPERATORS, DURATIONS),
        combine("({} - {} {} {})", duration, duration, OPERATORS, DURATIONS),
        combine("({} {} {})", decimal, OPERATORS, st.sampled_from(["0.01", "0.0035", "0.1", "0"])),
        combine("({} * {} {} 0.02)", decimal, integer, OPERATORS),
        combine("({} / {} {} 0.01)", decimal, integer, OPERATORS),
        combine("({} {} {})", string, EQUALITY, STRINGS),
        combine(
            "({} {} [{}, {}])",
            string,
            st.sampled_from(["in", "not in"]),
            STRINGS,
            st.one_of(STRINGS, st.just("null")),
        ),
        combine("({} {})", every, st.sampled_from(["is null", "is not null"])),
        combine("recontact_within({})", DURATIONS),
        combine(
            "coalesce({}, {})",
            st.sampled_from(names_of(Type.BOOL)),
            st.sampled_from(["true", "false"]),
        ),
        combine("(coalesce({}, 0) {} 3)", st.just("csat"), OPERATORS),
        combine("(least({}, {}) {} {})", duration, duration, OPERATORS, DURATIONS),
        combine("(greatest({}, 0s) {} {})", duration, OPERATORS, DURATIONS),
        combine("(started_at {} resolution_at)", OPERATORS),
    )


RULES = st.recursive(
    atoms(),
    lambda children: st.one_of(
        combine("({} and {})", children, children),
        combine("({} or {})", children, children),
        combine("(not {})", children),
    ),
    max_leaves=5,
)
WEIGHT_VALUES = st.sampled_from([Decimal("1.5"), Decimal("2"), Decimal("0.25"), Decimal("0")])


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    names = draw(
        st.lists(
            st.sampled_from(["resolved", "handoff", "reopened", "qualified"]),
            min_size=1,
            max_size=4,
            unique=True,
        )
    )
    rules = tuple(
        OutcomeRule(
            name=name,
            when=draw(RULES),
            billable=draw(st.booleans()),
            final_at=draw(st.sampled_from([None, None, "handoff_at", "started_at", "csat"])),
        )
        for name in names
    )
    gates = tuple(
        Gate(name=f"gate{index}", require=draw(RULES)) for index in range(draw(st.integers(0, 2)))
    )
    weight_feature = draw(st.sampled_from([None, "intent", "channel", "tiers", "csat", "nothing"]))
    weights = draw(
        st.dictionaries(
            st.sampled_from(["refund", "billing", "chat", "voice", "small", "4"]),
            WEIGHT_VALUES,
            max_size=3,
        )
    )
    return Plan(
        rules=rules,
        window_seconds=draw(st.sampled_from([3600, 86_400, 259_200, 259_201])),
        count=draw(st.sampled_from(["per_problem", "per_conversation"])),
        exclude=draw(st.one_of(st.none(), RULES)),
        gates=gates,
        weight_feature=weight_feature,
        weights=weights,
        default_weight=draw(st.sampled_from([Decimal(1), Decimal("0.5")])),
    )


@st.composite
def periods(draw: st.DrawFn, episodes: list[Episode], plan: Plan) -> tuple[Period, datetime]:
    """November in Berlin, or a period whose edges sit exactly on (or a microsecond beside)
    some episode's final_at; as_of likewise."""
    compiled = CompiledPlan(plan)
    moments = []
    for episode in episodes:
        row = episode_features(episode)
        verdict = compiled.classify(row)
        moments.append(compiled.final_at(verdict.outcome, row, episode.last_activity_at))
    nudge = st.sampled_from([timedelta(0), timedelta(microseconds=1), timedelta(microseconds=-1)])

    def edge() -> datetime:
        return draw(st.sampled_from(moments)) + draw(nudge)

    if draw(st.booleans()):
        period = NOVEMBER_BERLIN
    else:
        start, end = sorted([edge(), edge()])
        period = Period(label="edge", time_zone="UTC", start=start, end=end)
    as_of = draw(st.sampled_from([period.end, period.end + timedelta(days=5)]))
    if draw(st.booleans()):
        as_of = edge()
    return period, as_of


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("differential")


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), events=workloads())
def test_duckdb_classifies_every_period_as_the_reference(
    data: st.DataObject, events: list[Event], directory: Path
) -> None:
    ledger = MemoryLedger()
    ledger.append(events)
    table = directory / f"episodes-{next(TABLES)}.duckdb"
    built = build_episode_table(ledger, TENANT, None, table, link_horizon=HORIZON)
    episodes = reference_episodes(events, HORIZON)
    assert built.state.episodes == len(episodes)
    for _ in range(3):
        plan = data.draw(plans(), label="plan")
        period, as_of = data.draw(periods(episodes, plan), label="period")
        expected = reference_period(plan, episodes, period=period, as_of=as_of)
        found = settle_with_duckdb(plan, table, period, as_of, link_horizon_seconds=HORIZON_SECONDS)
        assert found.outcomes == expected.outcomes
        assert (found.provisional, found.earlier_periods, found.later_periods) == (
            expected.provisional,
            expected.earlier_periods,
            expected.later_periods,
        )
        units = (
            len(episodes)
            if plan.count == "per_problem"
            else len({(episode.customer, episode.conversations[0]) for episode in episodes})
        )
        assert found.units + found.provisional + found.earlier_periods + found.later_periods == (
            units
        )


@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), events=workloads())
def test_spark_classifies_every_period_as_duckdb_and_the_reference(
    data: st.DataObject, events: list[Event], directory: Path, spark: SparkSession
) -> None:
    """Few examples (Spark spends about a second on any query): each one plan and period, the
    whole classified period (outcomes and every measure pricing reads) equal on both engines."""
    ledger = MemoryLedger()
    ledger.append(events)
    table = directory / f"episodes-{next(TABLES)}.duckdb"
    build_episode_table(ledger, TENANT, None, table, link_horizon=HORIZON)
    episodes = reference_episodes(events, HORIZON)
    plan = data.draw(plans(), label="plan")
    period, as_of = data.draw(periods(episodes, plan), label="period")
    expected = reference_period(plan, episodes, period=period, as_of=as_of)
    options = {"link_horizon_seconds": HORIZON_SECONDS, "currency": "USD"}
    on_duckdb = settle_with_duckdb(plan, table, period, as_of, **options)
    on_spark = settle_with_spark(plan, table, period, as_of, session=spark, **options)
    assert on_spark.outcomes == expected.outcomes
    assert on_spark == on_duckdb
