"""Rules compiled to SQL mean what the Python reference says they mean. What would break: an
invoice from DuckDB or Spark that differs from the reference judge's, because of an escaped
quote, a NULL in an IN list, a decimal divided in floating point or rounded twice, or an
integer literal that overflows at 32 bits."""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from raas.core.expressions import (
    DECIMAL_PLACES,
    Expression,
    ExpressionError,
    Type,
    bind,
    evaluate,
    parse,
)
from raas.core.expressions_sql import (
    DIALECTS,
    Dialect,
    column_type,
    quote_identifier,
    to_sql,
)

SCHEMA: dict[str, Type] = {
    "b1": Type.BOOL,
    "b2": Type.BOOL,
    "i1": Type.INTEGER,
    "i2": Type.INTEGER,
    "d1": Type.DECIMAL,
    "d2": Type.DECIMAL,
    "s1": Type.STRING,
    "s2": Type.STRING,
    "u1": Type.DURATION,
    "u2": Type.DURATION,
    "recontact_delay": Type.DURATION,
    "inactivity": Type.DURATION,
    "t1": Type.TIMESTAMP,
    "t2": Type.TIMESTAMP,
}
COLUMNS = list(SCHEMA)


# ---------------------------------------------------------------------------------------------
# The SQL text


@pytest.mark.parametrize(
    ("text", "duckdb_sql", "spark_sql"),
    [
        (
            "not b1 and (b2 or not recontact_within(72h))",
            '((NOT "b1") AND ("b2" OR (NOT COALESCE((CAST("recontact_delay" AS BIGINT) < '
            "CAST(259200 AS BIGINT)), FALSE))))",
            "((NOT `b1`) AND (`b2` OR (NOT COALESCE((CAST(`recontact_delay` AS BIGINT) < "
            "CAST(259200 AS BIGINT)), FALSE))))",
        ),
        (
            "i1 >= 3 or i1 is null",
            '((CAST("i1" AS BIGINT) >= CAST(3 AS BIGINT)) OR (CAST("i1" AS BIGINT) IS NULL))',
            "((CAST(`i1` AS BIGINT) >= CAST(3 AS BIGINT)) OR (CAST(`i1` AS BIGINT) IS NULL))",
        ),
        (
            'b1 != false and s1 not in ["refund", null]',
            "((\"b1\" <> FALSE) AND (\"s1\" NOT IN ('refund', NULL)))",
            "((`b1` <> FALSE) AND (`s1` NOT IN ('refund', NULL)))",
        ),
        (
            "d1 < 0.05",
            "(CAST(\"d1\" AS DECIMAL(38, 12)) < CAST('0.05' AS DECIMAL(38, 12)))",
            "(CAST(`d1` AS DECIMAL(38, 12)) < CAST('0.05' AS DECIMAL(38, 12)))",
        ),
        (
            "i1 == d1",
            '(CAST(CAST("i1" AS BIGINT) AS DECIMAL(38, 12)) = CAST("d1" AS DECIMAL(38, 12)))',
            "(CAST(CAST(`i1` AS BIGINT) AS DECIMAL(38, 12)) = CAST(`d1` AS DECIMAL(38, 12)))",
        ),
        (
            "i1 in [1, 2.5]",
            "(CAST(CAST(\"i1\" AS BIGINT) AS DECIMAL(38, 12)) IN (CAST(CAST(1 AS BIGINT) AS "
            "DECIMAL(38, 12)), CAST('2.5' AS DECIMAL(38, 12))))",
            "(CAST(CAST(`i1` AS BIGINT) AS DECIMAL(38, 12)) IN (CAST(CAST(1 AS BIGINT) AS "
            "DECIMAL(38, 12)), CAST('2.5' AS DECIMAL(38, 12))))",
        ),
        (
            "u1 < 10m",
            '(CAST("u1" AS BIGINT) < CAST(600 AS BIGINT))',
            "(CAST(`u1` AS BIGINT) < CAST(600 AS BIGINT))",
        ),
        (
            "d1 + -1.5",
            "(CAST(\"d1\" AS DECIMAL(38, 12)) + CAST('-1.5' AS DECIMAL(38, 12)))",
            "(CAST(CAST(`d1` AS DECIMAL(38, 12)) AS DECIMAL(37, 12)) + "
            "CAST(CAST('-1.5' AS DECIMAL(38, 12)) AS DECIMAL(37, 12)))",
        ),
        (
            "-(i1 - i2)",
            '(- (CAST("i1" AS BIGINT) - CAST("i2" AS BIGINT)))',
            "(- (CAST(`i1` AS BIGINT) - CAST(`i2` AS BIGINT)))",
        ),
        (
            "coalesce(i1, null, 0.5)",
            'COALESCE(CAST(CAST("i1" AS BIGINT) AS DECIMAL(38, 12)), CAST(NULL AS '
            "DECIMAL(38, 12)), CAST('0.5' AS DECIMAL(38, 12)))",
            "COALESCE(CAST(CAST(`i1` AS BIGINT) AS DECIMAL(38, 12)), CAST(NULL AS "
            "DECIMAL(38, 12)), CAST('0.5' AS DECIMAL(38, 12)))",
        ),
        ("greatest(t1, t2)", 'GREATEST("t1", "t2")', "GREATEST(`t1`, `t2`)"),
        ("inactive_for(3d)", 'COALESCE((CAST("inactivity" AS BIGINT) >= CAST(259200 AS BIGINT)), '
         "FALSE)", "COALESCE((CAST(`inactivity` AS BIGINT) >= CAST(259200 AS BIGINT)), FALSE)"),
    ],
)  # fmt: skip
def test_sql_text(text: str, duckdb_sql: str, spark_sql: str) -> None:
    rule = bind(text, SCHEMA)
    assert to_sql(rule, "duckdb") == duckdb_sql
    assert to_sql(rule, "spark") == spark_sql


@pytest.mark.parametrize(
    ("value", "duckdb_sql", "spark_sql"),
    [
        ("refund", "'refund'", "'refund'"),
        ("", "''", "''"),
        ("it's", "'it''s'", "concat('it', chr(39), 's')"),
        ("'", "''''", "chr(39)"),
        ("a\\nb", "'a\\nb'", "concat('a', chr(92), 'nb')"),
        ("${user}", "'${user}'", "concat(chr(36), '{user}')"),
        ('say "hi"\n\t', "'say \"hi\"\n\t'", "'say \"hi\"\n\t'"),
        ("héllo ✓", "'héllo ✓'", "'héllo ✓'"),
    ],
)
def test_strings_are_escaped_per_dialect(value: str, duckdb_sql: str, spark_sql: str) -> None:
    rule = bind(f"s1 == {rule_string(value)}", SCHEMA)
    assert to_sql(rule, "duckdb") == f'("s1" = {duckdb_sql})'
    assert to_sql(rule, "spark") == f"(`s1` = {spark_sql})"


def test_identifiers_are_quoted_and_columns_can_be_mapped() -> None:
    assert quote_identifier('we"ird', "duckdb") == '"we""ird"'
    assert quote_identifier("we`ird", "spark") == "`we``ird`"
    rule = bind("b1 and i1 > 2", SCHEMA)
    assert to_sql(rule, "duckdb", column=lambda name: f'e."{name}"') == (
        '(e."b1" AND (CAST(e."i1" AS BIGINT) > CAST(2 AS BIGINT)))'
    )


def test_column_types() -> None:
    assert column_type(Type.DECIMAL, "spark") == "DECIMAL(38, 12)"
    assert column_type(Type.DURATION, "duckdb") == "BIGINT"
    assert column_type(Type.STRING, "spark") == "STRING"
    assert column_type(Type.TIMESTAMP, "duckdb") == "TIMESTAMPTZ"
    with pytest.raises(ValueError, match="null"):
        column_type(Type.NULL, "duckdb")


def test_to_sql_refuses_unbound_rules_and_unknown_dialects() -> None:
    with pytest.raises(ValueError, match="bind"):
        to_sql(parse("true"), "duckdb")
    with pytest.raises(ValueError, match="expected a dialect among duckdb, spark"):
        to_sql(bind("true", SCHEMA), "postgres")  # type: ignore[arg-type]


def test_no_sql_comment_can_appear() -> None:
    # `--` starts a comment in both dialects; double minus signs must stay apart.
    for text in ["i1 - -i2", "- -i1", "d1 - -0.5", "-(-(i1))", "i1 - -3"]:
        for dialect in DIALECTS:
            assert "--" not in to_sql(bind(text, SCHEMA), dialect), (text, dialect)


# ---------------------------------------------------------------------------------------------
# DuckDB against the reference


def rule_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\t", "\\t") + '"'


@pytest.fixture(scope="module")
def duck() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    columns = ", ".join(
        f"{quote_identifier(name, 'duckdb')} {column_type(kind, 'duckdb')}"
        for name, kind in SCHEMA.items()
    )
    connection.execute(f"CREATE TABLE episodes (row_number INTEGER, {columns})")
    yield connection
    connection.close()


def duckdb_values(
    connection: duckdb.DuckDBPyConnection, sql: str, rows: Sequence[Mapping[str, object]]
) -> list[object]:
    connection.execute("DELETE FROM episodes")
    placeholders = ", ".join("?" for _ in range(len(COLUMNS) + 1))
    connection.executemany(
        f"INSERT INTO episodes VALUES ({placeholders})",
        [[number, *(row[name] for name in COLUMNS)] for number, row in enumerate(rows)],
    )
    result = connection.execute(f"SELECT ({sql}) FROM episodes ORDER BY row_number").fetchall()
    return [value for (value,) in result]


def blank(**values: object) -> dict[str, object]:
    row: dict[str, object] = dict.fromkeys(SCHEMA)
    row.update(values)
    return row


def same(python_value: object, sql_value: object, kind: Type) -> bool:
    if python_value is None or sql_value is None:
        return python_value is None and sql_value is None
    if kind is Type.BOOL:
        return type(python_value) is bool and type(sql_value) is bool and python_value is sql_value
    if kind in (Type.INTEGER, Type.DURATION):
        return type(python_value) is int and type(sql_value) is int and python_value == sql_value
    if kind is Type.DECIMAL:
        return isinstance(sql_value, Decimal) and python_value == sql_value
    return python_value == sql_value


TRUTH = [True, False, None]


def test_duckdb_kleene_truth_tables(duck: duckdb.DuckDBPyConnection) -> None:
    rows = [blank(b1=left, b2=right) for left in TRUTH for right in TRUTH]
    for text in ["b1 and b2", "b1 or b2", "not b1", "b1 == b2", "b1 != b2", "b1 is null"]:
        rule = bind(text, SCHEMA)
        assert duckdb_values(duck, to_sql(rule, "duckdb"), rows) == [
            evaluate(rule, row) for row in rows
        ], text


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("i1 in [1, null]", {"i1": 1}),
        ("i1 in [1, null]", {"i1": 2}),
        ("i1 not in [1, null]", {"i1": 2}),
        ("i1 not in [1, null]", {"i1": 1}),
        ("i1 in [1, 2]", {}),
        ("i1 / i2", {"i1": 3, "i2": 0}),
        ("d1 / d2 > 1", {"d1": Decimal(1), "d2": Decimal(0)}),
        ("0.000000000001 / 2", {}),
        ("-0.000000000001 / 2", {}),
        ("2 / -3", {}),
        ("-7 / 2", {}),
        ("d1 / d2", {"d1": Decimal("-1"), "d2": Decimal("-0.000000000003")}),
        ("d1 * d2", {"d1": Decimal("0.000001"), "d2": Decimal("0.0000005")}),
        ("d1 * d2", {"d1": Decimal("-0.000001"), "d2": Decimal("0.0000005")}),
        ("d1 * d2", {"d1": Decimal("0.000001"), "d2": Decimal("0.0000004999")}),
        ("d1 * i1", {"d1": Decimal("1234567.891234567891"), "i1": 1000}),
        ("d1 + d2", {"d1": Decimal("0.1"), "d2": Decimal("0.2")}),
        ("i1 * i2", {"i1": 100000, "i2": 100000}),  # past 32 bits
        ("d1", {"d1": Decimal("0.0000000000005")}),
        ("least(i1, i2)", {"i1": 3}),
        ("greatest(d1, i1)", {"d1": Decimal("2.5"), "i1": 2}),
        ("coalesce(d1, i1)", {"i1": 2}),
        ("abs(d1)", {"d1": Decimal("-2.5")}),
        ("recontact_within(72h)", {"recontact_delay": 259200}),
        ("recontact_within(72h)", {"recontact_delay": 259199}),
        ("recontact_within(72h)", {}),
        ("inactive_for(72h)", {"inactivity": 259200}),
        ("u1 * 2 + 1h", {"u1": 60}),
        ("t1 < t2", {"t1": datetime(2026, 1, 1, tzinfo=UTC), "t2": datetime(2026, 1, 1, 1,
                                                                           tzinfo=timezone(timedelta(hours=2)))}),
    ],
)  # fmt: skip
def test_duckdb_edge_cases(
    duck: duckdb.DuckDBPyConnection, text: str, values: dict[str, object]
) -> None:
    rule = bind(text, SCHEMA)
    row = blank(**values)
    assert rule.type is not None
    (sql_value,) = duckdb_values(duck, to_sql(rule, "duckdb"), [row])
    python_value = evaluate(rule, row)
    assert same(python_value, sql_value, rule.type), (python_value, sql_value)


@pytest.mark.parametrize(
    "value",
    ["refund", "", "it's", "''", "a\\b", "\\", "${user}", 'say "hi"', "line\nbreak\ttab", "✓"],
)
def test_duckdb_string_escapes_round_trip(duck: duckdb.DuckDBPyConnection, value: str) -> None:
    rule = bind(f"s1 == {rule_string(value)}", SCHEMA)
    assert duckdb_values(
        duck, to_sql(rule, "duckdb"), [blank(s1=value), blank(s1=value + "x")]
    ) == [
        True,
        False,
    ]


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("i1 * i2", {"i1": 2**32, "i2": 2**31}),
        ("i1 + i2", {"i1": 2**63 - 1, "i2": 1}),
        ("abs(i1)", {"i1": -(2**63)}),
        ("d1 + d2", {"d1": Decimal("6e25"), "d2": Decimal("6e25")}),
        ("d1 * d2", {"d1": Decimal("1e13"), "d2": Decimal("1e13")}),
    ],
)
def test_duckdb_and_python_both_refuse_out_of_range(
    duck: duckdb.DuckDBPyConnection, text: str, values: dict[str, object]
) -> None:
    rule = bind(text, SCHEMA)
    row = blank(**values)
    with pytest.raises(ExpressionError, match="expected a result"):
        evaluate(rule, row)
    with pytest.raises(duckdb.OutOfRangeException):
        duckdb_values(duck, to_sql(rule, "duckdb"), [row])


# Random well-typed rules over the schema, written as text (so the parser is exercised too),
# every compound in parentheses; depth bounds the size of the SQL and the magnitude of values.

STRINGS = ["refund", "cancel", "", "it's", 'say "hi"', "back\\slash", "${x}", "ünï ✓"]
WINDOWS = ["0s", "90s", "15m", "1h", "24h", "72h", "7d"]


def decimals(places: int, bound: int) -> st.SearchStrategy[Decimal]:
    return st.decimals(
        min_value=-bound, max_value=bound, places=places, allow_nan=False, allow_infinity=False
    )


def decimal_literal(value: Decimal) -> str:
    text = format(value, "f")
    return text if "." in text else text + ".0"


def literals(kind: Type) -> st.SearchStrategy[str]:
    if kind is Type.BOOL:
        return st.sampled_from(["true", "false"])
    if kind is Type.INTEGER:
        return st.integers(-100, 100).map(str)
    if kind is Type.DECIMAL:
        return st.one_of(decimals(2, 100), decimals(DECIMAL_PLACES, 2)).map(decimal_literal)
    if kind is Type.STRING:
        return st.sampled_from(STRINGS).map(rule_string)
    if kind is Type.DURATION:
        return st.sampled_from(WINDOWS)
    return st.nothing()


FEATURES = {
    kind: [name for name, feature_kind in SCHEMA.items() if feature_kind is kind] for kind in Type
}


def combine(template: str, *parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(*parts).map(lambda drawn: template.format(*drawn))


@functools.cache
def expressions(kind: Type, depth: int) -> st.SearchStrategy[str]:
    leaves: list[st.SearchStrategy[str]] = [st.sampled_from(FEATURES[kind]), literals(kind)]
    if depth == 0:
        return st.one_of(leaves)

    def sub(sub_kind: Type) -> st.SearchStrategy[str]:
        return expressions(sub_kind, depth - 1)

    numeric = st.one_of(sub(Type.INTEGER), sub(Type.DECIMAL))
    compound: list[st.SearchStrategy[str]] = []
    if kind is Type.BOOL:
        ordered = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
        equality = st.sampled_from(["==", "!="])
        compound += [
            combine("({} {} {})", sub(Type.BOOL), st.sampled_from(["and", "or"]), sub(Type.BOOL)),
            combine("(not {})", sub(Type.BOOL)),
            combine("({} {} {})", numeric, ordered, numeric),
            combine("({} {} {})", sub(Type.DECIMAL), ordered, numeric),
            combine("({} {} {})", sub(Type.DURATION), ordered, sub(Type.DURATION)),
            combine("({} {} {})", sub(Type.TIMESTAMP), ordered, sub(Type.TIMESTAMP)),
            combine("({} {} {})", sub(Type.STRING), equality, sub(Type.STRING)),
            combine("({} {} {})", sub(Type.BOOL), equality, sub(Type.BOOL)),
            combine(
                "({} {})",
                st.one_of([sub(k) for k in SCHEMA.values()]),
                st.sampled_from(["is null", "is not null"]),
            ),
            combine("({} {} [{}])", numeric, st.sampled_from(["in", "not in"]), items(
                st.one_of(literals(Type.INTEGER), literals(Type.DECIMAL)))),
            combine("({} {} [{}])", sub(Type.STRING), st.sampled_from(["in", "not in"]),
                    items(literals(Type.STRING))),
            combine("({} {} [{}])", sub(Type.DURATION), st.sampled_from(["in", "not in"]),
                    items(literals(Type.DURATION))),
            combine("recontact_within({})", st.sampled_from(WINDOWS)),
            combine("inactive_for({})", st.sampled_from(WINDOWS)),
            combine("coalesce({}, {})", sub(Type.BOOL), sub(Type.BOOL)),
        ]  # fmt: skip
    elif kind is Type.INTEGER:
        integer = sub(Type.INTEGER)
        compound += [
            combine("({} {} {})", integer, st.sampled_from(["+", "-", "*"]), integer),
            combine("(- {})", integer),
            combine("abs({})", integer),
            combine("coalesce({}, {})", integer, integer),
            combine("{}({}, {})", st.sampled_from(["least", "greatest"]), integer, integer),
        ]
    elif kind is Type.DECIMAL:
        decimal = sub(Type.DECIMAL)
        # Multiplication and division are where the engines differ most; weighted up.
        operator = st.sampled_from(["+", "-", "*", "*", "/", "/"])
        compound += [
            combine("({} {} {})", decimal, operator, numeric),
            combine("({} {} {})", numeric, operator, decimal),
            combine("({} {} {})", decimal, operator, decimal),
            combine("({} / {})", sub(Type.INTEGER), sub(Type.INTEGER)),
            combine("(- {})", decimal),
            combine("abs({})", decimal),
            combine("coalesce({}, {})", decimal, numeric),
            combine("{}({}, {}, {})", st.sampled_from(["least", "greatest"]), decimal, numeric,
                    numeric),
        ]  # fmt: skip
    elif kind is Type.DURATION:
        duration = sub(Type.DURATION)
        compound += [
            combine("({} {} {})", duration, st.sampled_from(["+", "-"]), duration),
            combine("({} * {})", duration, sub(Type.INTEGER)),
            combine("({} * {})", sub(Type.INTEGER), duration),
            combine("(- {})", duration),
            combine("abs({})", duration),
            combine("{}({}, {})", st.sampled_from(["least", "greatest", "coalesce"]), duration,
                    duration),
        ]  # fmt: skip
    elif kind is Type.STRING:
        compound.append(combine("coalesce({}, {})", sub(Type.STRING), sub(Type.STRING)))
    elif kind is Type.TIMESTAMP:
        compound.append(
            combine(
                "{}({}, {})",
                st.sampled_from(["least", "greatest", "coalesce"]),
                sub(Type.TIMESTAMP),
                sub(Type.TIMESTAMP),
            )
        )
    return st.one_of(*leaves, *compound)


def items(item: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(st.one_of(item, st.just("null")), min_size=1, max_size=4).map(", ".join)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


ROW_VALUES: dict[Type, st.SearchStrategy[Any]] = {
    Type.BOOL: st.booleans(),
    Type.INTEGER: st.integers(-100, 100),
    Type.DECIMAL: st.one_of(decimals(2, 1000), decimals(DECIMAL_PLACES, 10)),
    Type.STRING: st.sampled_from(STRINGS),
    Type.DURATION: st.one_of(st.integers(0, 400_000), st.sampled_from([259_200, 86_400, 0])),
    Type.TIMESTAMP: st.datetimes(
        min_value=datetime(2026, 1, 1),
        max_value=datetime(2026, 1, 3),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=2))]),
    ),
}

ROWS = st.lists(
    st.fixed_dictionaries({name: maybe(ROW_VALUES[kind]) for name, kind in SCHEMA.items()}),
    min_size=1,
    max_size=8,
)
RULES = st.sampled_from([Type.BOOL] * 3 + [Type.DECIMAL] * 3 + list(ROW_VALUES)).flatmap(
    lambda kind: expressions(kind, 3)
)


def reference(rule: Expression, rows: Sequence[Mapping[str, object]]) -> list[object]:
    try:
        return [evaluate(rule, row) for row in rows]
    except ExpressionError:
        # Out of range: an error in the reference, which an engine may report too or (if it
        # skips the branch) not; either way no value to compare.
        reject()


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(text=RULES, rows=ROWS)
def test_duckdb_agrees_with_the_reference(
    duck: duckdb.DuckDBPyConnection, text: str, rows: list[dict[str, object]]
) -> None:
    rule = bind(text, SCHEMA)
    assert rule.type is not None
    expected = reference(rule, rows)
    try:
        found = duckdb_values(duck, to_sql(rule, "duckdb"), rows)
    except (duckdb.OutOfRangeException, duckdb.ConversionException):
        reject()
    for row, python_value, sql_value in zip(rows, expected, found, strict=True):
        assert same(python_value, sql_value, rule.type), (text, row, python_value, sql_value)


# ---------------------------------------------------------------------------------------------
# Spark against the reference (only where pyspark is installed)

HAVE_PYSPARK = importlib.util.find_spec("pyspark") is not None


def spark_values(session: Any, sql: str, rows: Sequence[Mapping[str, object]]) -> list[object]:
    columns = ", ".join(
        f"{quote_identifier(name, 'spark')} {column_type(kind, 'spark')}"
        for name, kind in SCHEMA.items()
    )
    frame = session.createDataFrame(
        [(number, *(row[name] for name in COLUMNS)) for number, row in enumerate(rows)],
        schema=f"row_number INT, {columns}",
    )
    frame.createOrReplaceTempView("episodes")
    result = session.sql(f"SELECT ({sql}) AS v FROM episodes ORDER BY row_number").collect()
    # PySpark gives an instant as a naive datetime in this process's local time.
    return [
        record["v"].astimezone(UTC) if isinstance(record["v"], datetime) else record["v"]
        for record in result
    ]


@pytest.mark.skipif(not HAVE_PYSPARK, reason="pyspark is not installed in this environment")
@settings(
    # Spark spends about a second on any query: few examples (DuckDB runs many above).
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(text=RULES, rows=ROWS)
def test_spark_agrees_with_the_reference(spark: Any, text: str, rows: list[dict[str, Any]]) -> None:
    rule = bind(text, SCHEMA)
    assert rule.type is not None
    expected = reference(rule, rows)
    try:
        found = spark_values(spark, to_sql(rule, "spark"), rows)
    except Exception as error:
        if "ARITHMETIC_OVERFLOW" in str(error) or "NUMERIC_VALUE_OUT_OF_RANGE" in str(error):
            reject()
        raise
    for row, python_value, sql_value in zip(rows, expected, found, strict=True):
        assert same(python_value, sql_value, rule.type), (text, row, python_value, sql_value)


@pytest.mark.skipif(not HAVE_PYSPARK, reason="pyspark is not installed in this environment")
@pytest.mark.parametrize("dialect", ["spark"])
def test_spark_edge_cases(spark: Any, dialect: Dialect) -> None:
    cases = [
        ("0.000000000001 / 2", blank()),
        ("-7 / 2", blank()),
        ("d1 * d2", blank(d1=Decimal("0.000001"), d2=Decimal("0.0000005"))),
        ("d1 * d2", blank(d1=Decimal("-0.000001"), d2=Decimal("0.0000005"))),
        ("d1 + d2", blank(d1=Decimal("0.000000000001"), d2=Decimal("12345678901234"))),
        ("d1 / d2", blank(d1=Decimal(1), d2=Decimal(0))),
        ("s1 == " + rule_string("it's \\ ${x}"), blank(s1="it's \\ ${x}")),
        ("i1 in [1, null]", blank(i1=2)),
    ]
    for text, row in cases:
        rule = bind(text, SCHEMA)
        assert rule.type is not None
        (sql_value,) = spark_values(spark, to_sql(rule, dialect), [row])
        assert same(evaluate(rule, row), sql_value, rule.type), text
