"""Rules compiled to SQL: the meaning `raas.core.expressions` gives a rule, as a DuckDB or
Spark SQL expression that the settlement engines evaluate over millions of episodes.

`to_sql(bind(rule, schema), "duckdb")` gives a boolean (or scalar) SQL expression over the
episode table's columns. How each part keeps the reference meaning:

- Columns are cast to the language's types: whole numbers and durations to BIGINT, decimals to
  DECIMAL(38, 12) (a wider column is rounded half away from zero, as the Python evaluator does
  on reading). Literals are typed the same way: `CAST(3 AS BIGINT)`,
  `CAST('0.05' AS DECIMAL(38, 12))`, durations as their seconds; so integer arithmetic is
  64-bit (never 32-bit literal arithmetic) and no comparison goes through DOUBLE.
- A whole number meets a decimal only after both are DECIMAL(38, 12): exact comparisons.
- `and`, `or`, `not`, comparisons, `is null` and `in (...)` are SQL's own, which is Kleene
  logic already, including `x IN (1, NULL)` being NULL when x is not 1.
- Decimal `*` and `/` round once, to 12 places, half away from zero. DuckDB multiplies
  DECIMAL(38, 12) values exactly into DECIMAL(38, 24) and its CAST rounds half away from zero;
  but it divides decimals in DOUBLE, and Spark's decimal rules drop digits when precision
  exceeds 38. So division (both engines) and multiplication (Spark) are computed on the values'
  unscaled integers (x * 10^12, whole), where every step is exact, with the rounding spelled
  out: round(n / d) = trunc((2n + sign(n)·sign(d)·|d|) / 2d). Spark's `/` is used only where the
  quotient is a whole number, and its additions take DECIMAL(37, 12) operands so that the sum
  keeps 12 places.
- Division by zero is NULL: the divisor goes through `NULLIF(divisor, 0)`.
- `recontact_within(72h)` is `COALESCE(recontact_delay < 259200, FALSE)`: never NULL.

Strings are escaped per dialect. Spark's parser reads backslash escapes in literals (unless
`spark.sql.parser.escapedStringLiterals` is set) and substitutes `${...}` variables in the SQL
text, so a quote, a backslash or a dollar sign is spelled `chr(39)`, `chr(92)`, `chr(36)` in a
`concat(...)`, which means the same under every setting.

Engine settings assumed: DuckDB's defaults; Spark with `spark.sql.ansi.enabled=true` (the
default since Spark 4.0), so that an overflow raises instead of wrapping or turning NULL. The
expressions are exact under either value of `spark.sql.decimalOperations.allowPrecisionLoss`.
Out of range, an engine may raise an error earlier than the Python evaluator (a decimal product
from 10^14, a dividend from about 8.5·10^13, a Spark sum from 10^25), but never returns a
different value.

The SQL grows with nested decimal division (each division repeats its operands' SQL a few
times); rules nest arithmetic rarely, and `DEPTH_MAX` bounds it.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Final, Literal, TypeAlias

from raas.core.expressions import (
    DECIMAL_PLACES,
    FUNCTIONS,
    Arithmetic,
    Call,
    Comparison,
    Constant,
    Expression,
    Feature,
    InList,
    IsNull,
    Logical,
    Negate,
    Node,
    Not,
    Type,
)

__all__ = ["DIALECTS", "Dialect", "column_type", "quote_identifier", "string_literal", "to_sql"]

Dialect: TypeAlias = Literal["duckdb", "spark"]
DIALECTS: Final[tuple[Dialect, ...]] = ("duckdb", "spark")

_DECIMAL: Final = f"DECIMAL(38, {DECIMAL_PLACES})"
# Spark: a sum of two DECIMAL(37, 12) is a DECIMAL(38, 12); of two DECIMAL(38, 12), it would be
# rounded to 11 places.
_SPARK_ADDEND: Final = f"DECIMAL(37, {DECIMAL_PLACES})"
_SCALE: Final = 10**DECIMAL_PLACES
_ZERO: Final = f"CAST(0 AS {_DECIMAL})"

_COMPARISON_SQL: Final = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def quote_identifier(name: str, dialect: Dialect) -> str:
    """`name` as a quoted SQL identifier: "name" in DuckDB, `name` in Spark."""
    if dialect == "spark":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def column_type(kind: Type, dialect: Dialect) -> str:
    """The SQL type a feature column of this type should have (what `to_sql` casts to)."""
    if kind in (Type.INTEGER, Type.DURATION):
        return "BIGINT"
    if kind is Type.DECIMAL:
        return _DECIMAL
    if kind is Type.BOOL:
        return "BOOLEAN"
    if kind is Type.STRING:
        return "STRING" if dialect == "spark" else "VARCHAR"
    if kind is Type.TIMESTAMP:
        return "TIMESTAMP" if dialect == "spark" else "TIMESTAMPTZ"
    raise ValueError(f"no column has the type {kind.value}")


def to_sql(
    expression: Expression,
    dialect: Dialect,
    column: Callable[[str], str] | None = None,
) -> str:
    """The rule as a SQL expression in `dialect`, with the same value on every row as
    `evaluate` gives (NULL where it gives None).

    `expression` must be bound to a schema (`bind`). `column(name)` gives the SQL that reads a
    feature, such as `lambda name: f't."{name}"'`; by default the quoted feature name."""
    if dialect not in DIALECTS:
        raise ValueError(f"expected a dialect among {', '.join(DIALECTS)}, found {dialect!r}")
    if expression.type is None:
        raise ValueError(
            "the expression is not bound to a feature schema; call bind(expression, schema) first"
        )
    return _SqlCompiler(dialect, column or (lambda name: quote_identifier(name, dialect))).sql(
        expression.root
    )


def string_literal(value: str, dialect: Dialect) -> str:
    """`value` as a SQL string literal in `dialect`, meaning the same under every setting."""
    if dialect == "duckdb":
        return "'" + value.replace("'", "''") + "'"
    pieces: list[str] = []
    run: list[str] = []
    for character in value:
        if character in "'\\$":
            if run:
                pieces.append("'" + "".join(run) + "'")
                run = []
            pieces.append(f"chr({ord(character)})")
        else:
            run.append(character)
    if run or not pieces:
        pieces.append("'" + "".join(run) + "'")
    return pieces[0] if len(pieces) == 1 else f"concat({', '.join(pieces)})"


def _decimal_text(value: Decimal) -> str:
    # Plain notation: '1E+3' would be read by both engines, but a reader should see 1000.
    return format(value, "f")


ColumnSql: TypeAlias = Callable[[str], str]


class _SqlCompiler:
    def __init__(self, dialect: Dialect, column: ColumnSql) -> None:
        self.dialect = dialect
        self.column = column

    def sql(self, node: Node) -> str:
        match node:
            case Constant():
                return self.constant(node)
            case Feature(name=name, type=kind):
                assert kind is not None
                return self.feature(name, kind)
            case Not(operand=operand):
                return f"(NOT {self.sql(operand)})"
            case Negate(operand=operand):
                return f"(- {self.sql(operand)})"
            case Logical(operator=word):
                parts = [self.sql(part) for part in _flatten(node, word)]
                return "(" + f" {word.upper()} ".join(parts) + ")"
            case Comparison(operator=symbol, left=left, right=right):
                common = _common_type(left, right)
                return (
                    f"({self.coerce(left, common)} {_COMPARISON_SQL[symbol]} "
                    f"{self.coerce(right, common)})"
                )
            case IsNull(operand=operand, negated=negated):
                return f"({self.sql(operand)} IS {'NOT ' if negated else ''}NULL)"
            case InList(operand=operand, items=items, negated=negated):
                common = operand.type
                for item in items:
                    common = _common_type_of(common, item.type)
                listed = ", ".join(self.coerce(item, common) for item in items)
                return (
                    f"({self.coerce(operand, common)} {'NOT IN' if negated else 'IN'} ({listed}))"
                )
            case Arithmetic():
                return self.arithmetic(node)
            case Call():
                return self.call(node)
        raise AssertionError(node)  # pragma: no cover - every node kind is matched above

    def constant(self, node: Constant) -> str:
        value = node.value
        if value is None:
            return "NULL"
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        if isinstance(value, Decimal):
            return f"CAST('{_decimal_text(value)}' AS {_DECIMAL})"
        if isinstance(value, int):
            return f"CAST({value} AS BIGINT)"
        return string_literal(value, self.dialect)

    def feature(self, name: str, kind: Type) -> str:
        column = self.column(name)
        if kind in (Type.INTEGER, Type.DURATION, Type.DECIMAL):
            return f"CAST({column} AS {column_type(kind, self.dialect)})"
        return column

    def coerce(self, node: Node, target: Type | None) -> str:
        """The node's SQL, cast to `target` where the language converts implicitly (a whole
        number among decimals) and where a bare NULL would leave the SQL type open."""
        if node.type is Type.NULL and target in (Type.INTEGER, Type.DURATION, Type.DECIMAL):
            return f"CAST(NULL AS {column_type(target, self.dialect)})"
        text = self.sql(node)
        if target is Type.DECIMAL and node.type is Type.INTEGER:
            return f"CAST({text} AS {_DECIMAL})"
        return text

    def arithmetic(self, node: Arithmetic) -> str:
        symbol = node.operator
        result = node.type
        assert result is not None
        if result is not Type.DECIMAL:
            # Whole numbers and durations: BIGINT arithmetic, an error on overflow.
            left = self.coerce(node.left, result)
            right = self.coerce(node.right, result)
            return f"({left} {symbol} {right})"
        left = self.coerce(node.left, Type.DECIMAL)
        right = self.coerce(node.right, Type.DECIMAL)
        if symbol == "/":
            divisor = f"NULLIF({right}, {_ZERO})"
            if self.dialect == "duckdb":
                return _duckdb_divide(left, divisor)
            return _spark_divide(left, divisor)
        if self.dialect == "duckdb":
            if symbol == "*":
                return f"CAST(({left} * {right}) AS {_DECIMAL})"
            return f"({left} {symbol} {right})"
        if symbol == "*":
            return _spark_multiply(left, right)
        return f"(CAST({left} AS {_SPARK_ADDEND}) {symbol} CAST({right} AS {_SPARK_ADDEND}))"

    def call(self, node: Call) -> str:
        function = FUNCTIONS[node.function]
        result = node.type
        arguments = [self.coerce(argument, result) for argument in node.arguments]

        def column(name: str) -> str:
            return self.feature(name, function.features[name])

        return function.sql(arguments, column)


def _flatten(node: Node, word: str) -> list[Node]:
    if isinstance(node, Logical) and node.operator == word:
        return [*_flatten(node.left, word), *_flatten(node.right, word)]
    return [node]


def _common_type_of(left: Type | None, right: Type | None) -> Type | None:
    if left is None or left is Type.NULL:
        return right
    if right is None or right is Type.NULL or left is right:
        return left
    return Type.DECIMAL  # the checker admits only whole numbers with decimals here


def _common_type(left: Node, right: Node) -> Type | None:
    return _common_type_of(left.type, right.type)


# ---------------------------------------------------------------------------------------------
# Exact decimal multiplication and division on unscaled integers; `left` and `right` are SQL of
# type DECIMAL(38, 12) (or NULL).


def _duckdb_divide(left: str, right: str) -> str:
    numerator = f"(CAST(({left} * {_SCALE}) AS HUGEINT) * CAST({_SCALE} AS HUGEINT))"
    denominator = f"CAST(({right} * {_SCALE}) AS HUGEINT)"
    # DuckDB's // on integers truncates toward zero; adding half the divisor away from zero
    # first makes it round half away from zero.
    quotient = (
        f"(((2 * {numerator}) + ((sign({numerator}) * sign({denominator})) * {denominator}))"
        f" // (2 * {denominator}))"
    )
    return (
        f"(CAST({quotient} AS DECIMAL(38, 0)) * "
        f"CAST('{_decimal_text(Decimal(1).scaleb(-DECIMAL_PLACES))}' AS "
        f"DECIMAL({DECIMAL_PLACES}, {DECIMAL_PLACES})))"
    )


_SPARK_SCALE: Final = f"CAST({_SCALE} AS DECIMAL(13, 0))"


def _spark_unscaled(value: str) -> str:
    # value * 10^12 is a whole number; Spark types the product DECIMAL(38, 6), exact for it.
    return f"CAST(({value} * {_SPARK_SCALE}) AS DECIMAL(38, 0))"


def _spark_truncated_quotient(dividend: str, divisor: str) -> str:
    # Spark rounds `/` on decimals to at least 6 places; (a - a % b) / b is a whole number, so
    # that rounding never applies. % keeps the dividend's sign, as the truncation needs.
    return f"CAST((({dividend} - ({dividend} % {divisor})) / {divisor}) AS DECIMAL(38, 0))"


def _spark_rescaled(quotient: str) -> str:
    # quotient / 10^12 with quotient DECIMAL(26, 0) is typed DECIMAL(38, 12): exact.
    return f"(CAST({quotient} AS DECIMAL(26, 0)) / {_SPARK_SCALE})"


def _spark_divide(left: str, right: str) -> str:
    numerator = f"({_spark_unscaled(left)} * {_SPARK_SCALE})"
    denominator = _spark_unscaled(right)
    # Spark's sign() is a DOUBLE; the sign of the rounding step is chosen with CASE instead.
    dividend = (
        f"((2 * {numerator}) + CASE WHEN ({numerator} < 0) = ({denominator} < 0) "
        f"THEN {denominator} ELSE (- {denominator}) END)"
    )
    divisor = f"(2 * {denominator})"
    return _spark_rescaled(_spark_truncated_quotient(dividend, divisor))


def _spark_multiply(left: str, right: str) -> str:
    product = f"({_spark_unscaled(left)} * {_spark_unscaled(right)})"  # a * b * 10^24, whole
    dividend = (
        f"((2 * {product}) + CASE WHEN {product} < 0 THEN (- {_SPARK_SCALE}) "
        f"ELSE {_SPARK_SCALE} END)"
    )
    divisor = f"CAST({2 * _SCALE} AS DECIMAL(13, 0))"
    return _spark_rescaled(_spark_truncated_quotient(dividend, divisor))
