"""The rule language in pure Python: syntax, types and the reference meaning. What would break: a
rule parsed with the wrong precedence (`a or b and c` billing the wrong episodes), an error that
points at the wrong column, an unknown value counted as a match, or a decimal rounded twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from raas.core.expressions import (
    DEPTH_MAX,
    FUNCTIONS,
    INTEGER_MAX,
    INTEGER_MIN,
    RULE_LENGTH_MAX,
    Arithmetic,
    Call,
    Comparison,
    Constant,
    Expression,
    ExpressionError,
    Feature,
    InList,
    IsNull,
    Logical,
    Negate,
    Node,
    Not,
    Span,
    Type,
    bind,
    check,
    compile_matcher,
    compile_python,
    evaluate,
    matches,
    parse,
)
from raas.errors import RaasError

SCHEMA: dict[str, Type] = {
    "handed_off": Type.BOOL,
    "confirmed": Type.BOOL,
    "context_passed": Type.BOOL,
    "review_passed": Type.BOOL,
    "csat": Type.INTEGER,
    "model_calls": Type.INTEGER,
    "model_cost": Type.DECIMAL,
    "amount": Type.DECIMAL,
    "intent": Type.STRING,
    "difficulty": Type.STRING,
    "recontact_delay": Type.DURATION,
    "inactivity": Type.DURATION,
    "time_to_resolution": Type.DURATION,
    "started_at": Type.TIMESTAMP,
    "confirmed_at": Type.TIMESTAMP,
}


def row(**values: object) -> dict[str, object]:
    """Every feature unknown, except those given."""
    result: dict[str, object] = dict.fromkeys(SCHEMA)
    result.update(values)
    return result


def value(text: str, **values: object) -> object:
    return evaluate(bind(text, SCHEMA), row(**values))


def shape(node: Node) -> str:
    """The tree fully parenthesized, to read precedence off."""
    match node:
        case Constant(value=None):
            return "null"
        case Constant(value=bool() as truth):
            return "true" if truth else "false"
        case Constant(value=str() as text):
            return f'"{text}"'
        case Constant(value=number, kind=Type.DURATION):
            return f"{number}s"
        case Constant(value=number):
            return str(number)
        case Feature(name=name):
            return name
        case Not(operand=operand):
            return f"(not {shape(operand)})"
        case Negate(operand=operand):
            return f"(- {shape(operand)})"
        case Logical(operator=word, left=left, right=right):
            return f"({shape(left)} {word} {shape(right)})"
        case Comparison(operator=word, left=left, right=right):
            return f"({shape(left)} {word} {shape(right)})"
        case Arithmetic(operator=word, left=left, right=right):
            return f"({shape(left)} {word} {shape(right)})"
        case IsNull(operand=operand, negated=negated):
            return f"({shape(operand)} is {'not ' if negated else ''}null)"
        case InList(operand=operand, items=items, negated=negated):
            listed = ", ".join(shape(item) for item in items)
            return f"({shape(operand)} {'not in' if negated else 'in'} [{listed}])"
        case Call(function=function, arguments=arguments):
            return f"{function}({', '.join(shape(argument) for argument in arguments)})"
    raise AssertionError(node)


# ---------------------------------------------------------------------------------------------
# Syntax


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a or b and c", "(a or (b and c))"),
        ("a and b or c", "((a and b) or c)"),
        ("a or b or c", "((a or b) or c)"),
        ("not a and b", "((not a) and b)"),
        ("not a or not b", "((not a) or (not b))"),
        ("not not a", "(not (not a))"),
        ("not a == b", "(not (a == b))"),
        ("a == b and c != d", "((a == b) and (c != d))"),
        ("a + b < c * d", "((a + b) < (c * d))"),
        ("a + b * c", "(a + (b * c))"),
        ("a * b + c", "((a * b) + c)"),
        ("a - b - c", "((a - b) - c)"),
        ("a / b / c", "((a / b) / c)"),
        ("a - b * c / d", "(a - ((b * c) / d))"),
        ("-a * b", "((- a) * b)"),
        ("- a - b", "((- a) - b)"),
        ("a - -b", "(a - (- b))"),
        ("-3 * 2", "(-3 * 2)"),
        ("- -3", "3"),
        ("-(3)", "-3"),
        ("-1.50", "-1.50"),
        ("-72h", "-259200s"),
        ("(a or b) and c", "((a or b) and c)"),
        ("a is null or b", "((a is null) or b)"),
        ("a + 1 is not null", "((a + 1) is not null)"),
        ("not a is null", "(not (a is null))"),
        ('a in ["x", "y"] and b', '((a in ["x", "y"]) and b)'),
        ("a not in [1, -2, 3.5, null] or b", "((a not in [1, -2, 3.5, null]) or b)"),
        ("not a in [true]", "(not (a in [true]))"),
        ("a * 2 in [4]", "((a * 2) in [4])"),
        ("f()", "f()"),
        ("coalesce(a, b + 1)", "coalesce(a, (b + 1))"),
        ("coalesce(a or b, c)", "coalesce((a or b), c)"),
        ("x == (not y)", "(x == (not y))"),
        ("90s + 15m + 72h + 7d", "(((90s + 900s) + 259200s) + 604800s)"),
        ('"tab\\t quote\\" backslash\\\\ \\u00e9"', '"tab\t quote" backslash\\ é"'),
        ("a\n  and\tb", "(a and b)"),
    ],
)
def test_precedence_and_associativity(text: str, expected: str) -> None:
    assert shape(parse(text).root) == expected


def test_literal_values_and_kinds() -> None:
    decimal = parse("0.050").root
    assert isinstance(decimal, Constant)
    assert decimal.value == Decimal("0.050") and isinstance(decimal.value, Decimal)
    assert decimal.kind is Type.DECIMAL
    integer = parse("9223372036854775807").root
    assert isinstance(integer, Constant) and integer.value == INTEGER_MAX
    assert integer.kind is Type.INTEGER
    duration = parse("15m").root
    assert isinstance(duration, Constant) and (duration.value, duration.kind) == (
        900,
        Type.DURATION,
    )
    assert parse("true").root == Constant(True, Type.BOOL, Span(0, 4))
    assert parse("null").root == Constant(None, Type.NULL, Span(0, 4))


def test_spans_cover_each_node() -> None:
    text = "csat >= 3 or csat is null"
    root = parse(text).root
    assert isinstance(root, Logical)
    assert root.span == Span(0, len(text))
    assert isinstance(root.left, Comparison)
    assert root.left.span == Span(0, 9)
    assert root.left.right.span == Span(8, 9)
    assert isinstance(root.right, IsNull)
    assert root.right.span == Span(13, 25)
    assert root.right.operand.span == Span(13, 17)
    assert root.right.operand.span.column == 14


def test_spans_of_parentheses_calls_lists_and_signs() -> None:
    text = '(a or b) and recontact_within(72h) and x not in ["p", -1]'
    root = parse(text).root
    assert isinstance(root, Logical) and isinstance(root.left, Logical)
    parenthesized = root.left.left
    assert parenthesized.span == Span(0, 8)
    call = root.left.right
    assert isinstance(call, Call)
    assert call.span == Span(13, 34)
    assert call.name_span == Span(13, 29)
    assert call.arguments[0].span == Span(30, 33)
    listed = root.right
    assert isinstance(listed, InList)
    assert listed.span == Span(39, len(text))
    assert listed.items[1].span == Span(54, 56)  # the minus sign belongs to the item
    assert text[54:56] == "-1"


PARSE_ERRORS = [
    # (text, column, a fragment of the reason)
    ("", 1, "expected a value, a feature or (, found the end of the rule"),
    ("csat +", 7, "expected a value, a feature or (, found the end of the rule"),
    ("not", 4, "found the end of the rule"),
    ("-", 2, "found the end of the rule"),
    ("(csat + 1", 10, "expected ) to close the ( at column 1, found the end of the rule"),
    ("(a or (b)", 10, "to close the ( at column 1"),
    ("a )", 3, "expected an operator or the end of the rule, found ')'"),
    ("a b", 3, "expected an operator or the end of the rule, found 'b'"),
    ('a "x"', 3, 'found the text "x"'),
    ("a < b < c", 7, "comparisons do not chain"),
    ("a == b != c", 8, "comparisons do not chain"),
    ("a < b is null", 7, "comparisons do not chain"),
    ("a in [1] in [true]", 10, "comparisons do not chain"),
    ("x = 3", 3, "to compare, write =="),
    ("a <> b", 3, "write != (not <>)"),
    ("a && b", 3, "write and"),
    ("a || b", 3, "write or"),
    ("a & b", 3, "write and"),
    ("!a", 1, "write not"),
    ("a % 2", 3, "no remainder operator"),
    ("a # b", 3, "expected an operator, a value or a feature, found '#'"),
    ("a ≥ b", 3, "found '≥'"),
    ("intent == 'refund'", 11, "double quotes"),
    ("AND", 1, "expected the keyword 'and' in lowercase, found 'AND'"),
    ("a Or b", 3, "expected the keyword 'or' in lowercase, found 'Or'"),
    ("x is NULL", 6, "expected the keyword 'null' in lowercase"),
    ("a is 3", 6, "expected null after 'is' (write is null or is not null), found '3'"),
    ("a is not true", 10, "expected null after 'is not'"),
    ("a == not b", 6, "put the negated condition in parentheses"),
    ("a + not b", 5, "put the negated condition in parentheses"),
    ("- not a", 3, "put the negated condition in parentheses"),
    ("[1, 2]", 1, "a list can only follow in"),
    ("intent in []", 12, "expected at least one item in the list, found ]"),
    ("intent in x", 11, "expected a list in brackets after in"),
    ("intent in (1, 2)", 11, "expected a list in brackets after in"),
    ("intent in [a]", 12, "expected a list item written out"),
    ("intent in [1,]", 14, "expected a list item written out"),
    ("intent in [-x]", 13, "expected a list item written out"),
    ('intent in [-"s"]', 13, "expected a list item written out"),
    ("intent in [1 + 2]", 14, "expected , or ] to close the [ at column 11, found '+'"),
    ('intent in ["a" "b"]', 16, "expected , or ] to close the [ at column 11"),
    ('intent in ["a"', 15, "expected , or ] to close the [ at column 11, found the end"),
    ("coalesce(a b)", 12, "expected , or ) in the call of coalesce, found 'b'"),
    ("coalesce(a,", 12, "expected a value, a feature or ("),
    ('"abc', 1, 'expected a closing " for the text that starts here, found the end of the rule'),
    ('"abc\n"', 1, "found the end of the line"),
    ('"a\\qb"', 3, 'expected one of the escapes \\" \\\\ \\n \\t \\uXXXX, found \\q'),
    ('"a\\', 3, "found \\ at the end of the rule"),
    ('"\\u12"', 2, "expected four hexadecimal digits after \\u"),
    ('"\\u0000"', 2, "expected a printable character, found \\u0000"),
    ('"\\ud800"', 2, "expected a printable character"),
    ('"a\x01"', 3, "found the control character 0x0001"),
    ("72hours", 3, "expected a duration unit after '72': s (seconds), m (minutes), h (hours)"),
    ("3x", 2, "found 'x'"),
    ("1h30m", 1, "expected a duration with one unit, found '1h30m'"),
    ("1.5h", 1, "expected a whole number of hours, found '1.5h'"),
    ("1.", 1, "expected a digit after the decimal point in '1.'"),
    ("1.e3", 1, "expected a digit after the decimal point"),
    ("007", 1, "expected a number without leading zeros, found '007'"),
    ("9223372036854775808", 1, "expected a whole number up to 9223372036854775807"),
    ("99999999999999999999d", 1, "expected a duration below 2^63 seconds"),
    ("0.0000000000001", 1, "expected at most 12 digits after the decimal point, found 13"),
    ("1" + "0" * 26 + ".5", 1, "expected at most 26 digits before the decimal point, found 27"),
    ("a and\n  b $", 11, "found '$'"),
]


@pytest.mark.parametrize(("text", "column", "reason"), PARSE_ERRORS)
def test_syntax_errors_point_at_the_column(text: str, column: int, reason: str) -> None:
    with pytest.raises(ExpressionError) as raised:
        parse(text)
    error = raised.value
    assert (error.column, error.rule) == (column, text)
    assert reason in error.reason


def test_expression_error_is_a_raas_error_with_a_caret() -> None:
    with pytest.raises(RaasError) as raised:
        parse("csat >= 3 or")
    assert str(raised.value) == (
        "column 13: expected a value, a feature or (, found the end of the rule\n"
        "    csat >= 3 or\n"
        "                ^"
    )


def test_caret_underlines_the_node_on_its_own_line() -> None:
    text = "confirmed\n\tand csat"
    with pytest.raises(ExpressionError) as raised:
        bind(text, SCHEMA)
    error = raised.value
    assert (error.column, error.length) == (16, 4)
    assert str(error).splitlines()[1:] == ["    \tand csat", "    \t    ^^^^"]


def test_rules_that_are_too_long_or_too_deep() -> None:
    with pytest.raises(ExpressionError) as raised:
        parse("a" * (RULE_LENGTH_MAX + 1))
    assert raised.value.column == RULE_LENGTH_MAX + 1
    with pytest.raises(ExpressionError, match="levels deep") as raised:
        parse("(" * (DEPTH_MAX + 5) + "a" + ")" * (DEPTH_MAX + 5))
    assert raised.value.column == DEPTH_MAX + 1
    chain = " + ".join(["a"] * (DEPTH_MAX + 5))
    with pytest.raises(ExpressionError, match="levels deep"):
        parse(chain)
    parse(" + ".join(["a"] * (DEPTH_MAX - 1)))  # just within the bound


# ---------------------------------------------------------------------------------------------
# Types


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("not handed_off and (confirmed or not recontact_within(72h))", Type.BOOL),
        ("handed_off and context_passed", Type.BOOL),
        ("csat >= 3 or csat is null", Type.BOOL),
        ('intent in ["refund", "cancel"] and difficulty == "hard"', Type.BOOL),
        ("review_passed != false", Type.BOOL),
        ("model_cost < 0.05", Type.BOOL),
        ("time_to_resolution < 10m", Type.BOOL),
        ("inactive_for(72h)", Type.BOOL),
        ("started_at < confirmed_at", Type.BOOL),
        ("csat == 4.0", Type.BOOL),
        ("csat in [1, 2.5]", Type.BOOL),
        ("csat + 1", Type.INTEGER),
        ("csat * model_calls - 3", Type.INTEGER),
        ("csat / 2", Type.DECIMAL),
        ("csat + 0.5", Type.DECIMAL),
        ("model_cost * model_calls", Type.DECIMAL),
        ("-model_cost", Type.DECIMAL),
        ("time_to_resolution + 10m", Type.DURATION),
        ("2 * time_to_resolution", Type.DURATION),
        ("time_to_resolution * model_calls", Type.DURATION),
        ("abs(csat)", Type.INTEGER),
        ("abs(-1.5)", Type.DECIMAL),
        ("coalesce(csat, 0)", Type.INTEGER),
        ("coalesce(csat, 0.5)", Type.DECIMAL),
        ("coalesce(null, intent)", Type.STRING),
        ("coalesce(null, null)", Type.NULL),
        ("least(csat, model_cost, 3)", Type.DECIMAL),
        ("greatest(started_at, confirmed_at)", Type.TIMESTAMP),
        ("greatest(recontact_delay, 1h)", Type.DURATION),
        ("null", Type.NULL),
        ("null and confirmed", Type.BOOL),
        ("not null", Type.BOOL),
        ("csat + null", Type.INTEGER),
    ],
)
def test_types(text: str, expected: Type) -> None:
    assert check(text, SCHEMA) is expected
    bound = bind(text, SCHEMA)
    assert bound.type is expected
    assert all(node.type is not None for node in _nodes(bound.root))


def _nodes(node: Node) -> list[Node]:
    from raas.core.expressions import _walk

    return list(_walk(node))


CHECK_ERRORS = [
    # (text, column, a fragment of the reason)
    ("csat and confirmed", 1, "expected true or false on the left of 'and', found csat (a whole"),
    ("confirmed or csat", 14, "expected true or false on the right of 'or', found csat"),
    ("not intent", 5, "expected true or false after 'not', found intent (text)"),
    ("csatt > 3", 1, "found the unknown name 'csatt' (did you mean 'csat'?)"),
    ("handof", 1, "(did you mean 'handed_off'?)"),
    ("zzz", 1, "expected a feature of the episode, found the unknown name 'zzz'"),
    ('csat == "high"', 1, 'found csat (a whole number) and "high" (text)'),
    ("confirmed == 1", 1, "expected values of the same kind on both sides of '=='"),
    ("csat == null", 9, "a comparison with null is never true; to test for a missing value write "
     "csat is null"),
    ("null != csat", 1, "write csat is not null"),
    ("time_to_resolution < 600", 1, "write durations with a unit, such as 10m or 72h"),
    ("model_cost > 1h", 1, "write durations with a unit"),
    ('intent < "a"', 1, "found text, which can only be compared with == and != (or in)"),
    ("confirmed < handed_off", 1, "found true or false, which can only be compared with =="),
    ("started_at == 1", 1, "found started_at (a point in time) and 1 (a whole number)"),
    ("csat + confirmed", 8, "on the right of '+', found confirmed (true or false)"),
    ("intent * 2", 1, "on the left of '*', found intent (text)"),
    ("started_at - confirmed_at", 1, "on the left of '-', found started_at (a point in time)"),
    ("-intent", 2, "after the minus sign, found intent (text)"),
    ("time_to_resolution + 5", 1, "a duration adds only to a duration"),
    ("5 - time_to_resolution", 1, "a duration subtracts only from a duration"),
    ("time_to_resolution * 1.5", 1, "a duration multiplies only by a whole number"),
    ("time_to_resolution * time_to_resolution", 1, "a duration multiplies only by a whole"),
    ("time_to_resolution / 2", 1, "durations cannot be divided"),
    ('intent in ["a", 3]', 17, "expected list items comparable with intent (text), found 3"),
    ("csat in [1, true]", 13, "found true (true or false)"),
    ("recontact_within(csat)", 18, "expected a duration written out, such as 72h, as the "
     "argument of recontact_within, found csat (a whole number)"),
    ("recontact_within(time_to_resolution)", 18, "expected a duration written out"),
    ("recontact_within(-1h)", 18, "expected a duration of zero or more, found -1h"),
    ("recontact_within(72h, 1h)", 1, "expected exactly one argument, as in "
     "recontact_within(duration), found 2"),
    ("inactive_for()", 1, "expected exactly one argument"),
    ("abs(1, 2)", 1, "expected exactly one argument"),
    ("coalesce(csat)", 1, "expected two or more arguments, as in coalesce(a, b, ...), found 1"),
    ("least(csat)", 1, "expected two or more arguments"),
    ("coalesce(csat, intent)", 16, "expected arguments of coalesce of one kind, found intent "
     "(text) after a whole number"),
    ("least(intent, difficulty)", 1, "expected numbers, durations or points in time as the "
     "arguments of least, found text"),
    ("greatest(confirmed, handed_off)", 1, "found true or false"),
    ("abs(intent)", 5, "as the argument of abs, found intent (text)"),
    ("no_recontact_within(72h)", 1, "found the unknown function 'no_recontact_within'; write "
     "not recontact_within(72h)"),
    ("recontact_withn(72h)", 1, "found the unknown function 'recontact_withn' (did you mean "
     "recontact_within?)"),
    ("sum(csat)", 1, "expected one of the functions recontact_within, inactive_for, coalesce"),
    ("csat(1)", 1, "expected a function, found the feature 'csat' followed by ("),
    ("recontact_within", 1, "found the function 'recontact_within' without arguments; write it "
     "as recontact_within(duration)"),
    ("confirmed and (csat", 20, "expected ) to close the ( at column 15"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "column", "reason"), CHECK_ERRORS)
def test_type_errors_point_at_the_column(text: str, column: int, reason: str) -> None:
    with pytest.raises(ExpressionError) as raised:
        check(text, SCHEMA)
    error = raised.value
    assert (error.column, error.rule) == (column, text)
    assert reason in error.reason


def test_a_condition_must_be_true_or_false() -> None:
    with pytest.raises(ExpressionError) as raised:
        check("csat + 1", SCHEMA, expected=Type.BOOL)
    assert raised.value.column == 1
    assert raised.value.length == len("csat + 1")
    assert raised.value.reason == (
        "expected a rule that is true or false, found csat + 1 (a whole number)"
    )
    assert check("csat > 1", SCHEMA, expected=Type.BOOL) is Type.BOOL
    with pytest.raises(ExpressionError, match="found null"):
        check("null", SCHEMA, expected=Type.BOOL)


def test_functions_need_their_features_in_the_schema() -> None:
    without = {name: kind for name, kind in SCHEMA.items() if name != "recontact_delay"}
    with pytest.raises(ExpressionError) as raised:
        check("confirmed or recontact_within(72h)", without)
    assert raised.value.column == 14
    assert raised.value.reason == (
        "recontact_within reads the feature 'recontact_delay' (a duration), which the feature "
        "schema does not have"
    )
    wrong = {**SCHEMA, "inactivity": Type.INTEGER}
    with pytest.raises(ExpressionError, match="reads the feature 'inactivity' as a duration, but"):
        check("inactive_for(72h)", wrong)


def test_bind_accepts_a_parsed_expression_and_keeps_the_text() -> None:
    parsed = parse("csat >= 3")
    assert parsed.type is None
    bound = bind(parsed, SCHEMA)
    assert bound.text == "csat >= 3" == str(bound)
    assert bound.type is Type.BOOL
    assert bound == bind("csat >= 3", SCHEMA)


def test_features_read_by_a_rule_include_those_of_its_functions() -> None:
    bound = bind("not handed_off and (confirmed or not recontact_within(72h))", SCHEMA)
    assert bound.features == {"handed_off", "confirmed", "recontact_delay"}


def test_every_function_is_documented() -> None:
    assert set(FUNCTIONS) == {
        "recontact_within", "inactive_for", "coalesce", "abs", "least", "greatest"
    }  # fmt: skip
    for name, function in FUNCTIONS.items():
        assert function.name == name
        assert function.signature.startswith(f"{name}(")
        assert len(function.description) > 40


# ---------------------------------------------------------------------------------------------
# Meaning: SQL's three-valued logic


TRUTH = [True, False, None]


@pytest.mark.parametrize("left", TRUTH)
@pytest.mark.parametrize("right", TRUTH)
def test_kleene_and_or(left: bool | None, right: bool | None) -> None:
    expected_and = False if False in (left, right) else None if None in (left, right) else True
    expected_or = True if True in (left, right) else None if None in (left, right) else False
    values = {"confirmed": left, "handed_off": right}
    assert value("confirmed and handed_off", **values) is expected_and
    assert value("confirmed or handed_off", **values) is expected_or


@pytest.mark.parametrize(("operand", "expected"), [(True, False), (False, True), (None, None)])
def test_kleene_not(operand: bool | None, expected: bool | None) -> None:
    assert value("not confirmed", confirmed=operand) is expected


def test_a_rule_matches_only_when_true() -> None:
    rule = bind("review_passed != false", SCHEMA)
    assert matches(rule, row(review_passed=True))
    assert not matches(rule, row(review_passed=False))
    assert not matches(rule, row(review_passed=None))  # never reviewed: unknown, no match
    assert matches(bind("coalesce(review_passed, true)", SCHEMA), row())
    matcher = compile_matcher(rule)
    assert [matcher(row(review_passed=v)) for v in TRUTH] == [True, False, False]


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("csat >= 3", {}, None),
        ("csat >= 3", {"csat": 3}, True),
        ("csat == csat", {}, None),
        ("csat != 3", {}, None),
        ("intent == difficulty", {"intent": "a"}, None),
        ("csat + 1", {}, None),
        ("-csat", {}, None),
        ("model_cost * 2", {}, None),
        ("csat is null", {}, True),
        ("csat is null", {"csat": 0}, False),
        ("csat is not null", {}, False),
        ("csat + 1 is null", {}, True),
        ("(csat > 1) is null", {}, True),
        ("csat >= 3 or csat is null", {}, True),
        ("csat >= 3 or csat is null", {"csat": 2}, False),
        ("csat in [1, 2]", {}, None),
        ("csat in [1, 2]", {"csat": 2}, True),
        ("csat in [1, 2]", {"csat": 3}, False),
        ("csat in [1, null]", {"csat": 1}, True),
        ("csat in [1, null]", {"csat": 3}, None),
        ("csat not in [1, 2]", {"csat": 3}, True),
        ("csat not in [1, 2]", {"csat": 2}, False),
        ("csat not in [1, null]", {"csat": 3}, None),
        ("csat not in [1, null]", {"csat": 1}, False),
        ("csat not in [1]", {}, None),
        ("csat in [2.0]", {"csat": 2}, True),
        ("model_cost in [1, 0.05]", {"model_cost": Decimal("0.0500")}, True),
        ("confirmed in [true]", {"confirmed": False}, False),
        ("coalesce(csat, 0)", {}, 0),
        ("coalesce(csat, 0)", {"csat": 4}, 4),
        ("coalesce(null, csat)", {}, None),
        ("least(csat, model_calls)", {"csat": 4}, 4),
        ("least(csat, model_calls)", {"csat": 4, "model_calls": 2}, 2),
        ("greatest(csat, model_calls)", {}, None),
        ("abs(csat)", {}, None),
        ("abs(csat)", {"csat": -3}, 3),
        ("abs(time_to_resolution)", {"time_to_resolution": -60}, 60),
        ("csat / 0", {"csat": 3}, None),
        ("model_cost / 0.0", {"model_cost": Decimal(1)}, None),
        ("csat / model_calls > 1", {"csat": 3, "model_calls": 0}, None),
        ("csat / model_calls", {"csat": 0, "model_calls": 7}, Decimal(0)),
        ("recontact_within(72h)", {}, False),
        ("recontact_within(72h)", {"recontact_delay": 3600}, True),
        ("recontact_within(72h)", {"recontact_delay": 72 * 3600 - 1}, True),
        ("recontact_within(72h)", {"recontact_delay": 72 * 3600}, False),  # half-open window
        ("recontact_within(0s)", {"recontact_delay": 0}, False),
        ("inactive_for(72h)", {}, False),
        ("inactive_for(72h)", {"inactivity": 72 * 3600}, True),
        ("inactive_for(72h)", {"inactivity": 72 * 3600 - 1}, False),
        ("time_to_resolution < 10m", {"time_to_resolution": 599}, True),
        ("time_to_resolution < 10m", {"time_to_resolution": 600}, False),
        ("time_to_resolution + 1m * 2", {"time_to_resolution": 30}, 150),
    ],
)
def test_null_semantics_and_functions(
    text: str, values: dict[str, object], expected: object
) -> None:
    result = value(text, **values)
    assert result == expected
    assert type(result) is type(expected)


def test_examples_of_the_brief_on_an_episode() -> None:
    episode = row(
        handed_off=False,
        confirmed=None,
        recontact_delay=None,
        context_passed=None,
        csat=None,
        intent="refund",
        difficulty="hard",
        review_passed=None,
        model_cost=Decimal("0.0412"),
        time_to_resolution=540,
    )
    expected = {
        "not handed_off and (confirmed or not recontact_within(72h))": True,
        "handed_off and context_passed": False,
        "csat >= 3 or csat is null": True,
        'intent in ["refund", "cancel"] and difficulty == "hard"': True,
        "review_passed != false": False,
        "model_cost < 0.05": True,
        "time_to_resolution < 10m": True,
    }
    for text, outcome in expected.items():
        assert matches(bind(text, SCHEMA, expected=Type.BOOL), episode) is outcome, text


# ---------------------------------------------------------------------------------------------
# Numbers


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("0.1 + 0.2 == 0.3", {}, True),
        ("7 / 2", {}, Decimal("3.5")),
        ("-7 / 2", {}, Decimal("-3.5")),
        ("1 / 3", {}, Decimal("0.333333333333")),
        ("2 / 3", {}, Decimal("0.666666666667")),
        ("-2 / 3", {}, Decimal("-0.666666666667")),
        ("2 / -3", {}, Decimal("-0.666666666667")),
        ("0.000000000001 / 2", {}, Decimal("0.000000000001")),  # a tie: away from zero
        ("-0.000000000001 / 2", {}, Decimal("-0.000000000001")),
        ("0.000000000001 / 3", {}, Decimal(0)),
        ("0.000001 * 0.0000005", {}, Decimal("0.000000000001")),  # a tie: away from zero
        ("-0.000001 * 0.0000005", {}, Decimal("-0.000000000001")),
        ("0.000001 * 0.0000004999", {}, Decimal(0)),
        ("0.000001 * 0.0000005001", {}, Decimal("0.000000000001")),
        ("1.5 * 2", {}, Decimal("3")),
        ("model_cost / model_calls", {"model_cost": Decimal("1"), "model_calls": 3},
         Decimal("0.333333333333")),
        ("model_cost", {"model_cost": Decimal("0.0000000000005")}, Decimal("0.000000000001")),
        ("model_cost", {"model_cost": Decimal("-0.0000000000015")}, Decimal("-0.000000000002")),
        ("model_cost", {"model_cost": 3}, Decimal(3)),
        ("amount * 0.02", {"amount": Decimal("25.00")}, Decimal("0.5")),
        ("99999999999999999999999999.999999999999 + 0", {},
         Decimal("99999999999999999999999999.999999999999")),
        ("12345678901234567890.5 * 2", {}, Decimal("24691357802469135781")),
    ],
)  # fmt: skip
def test_decimal_arithmetic_is_exact_with_one_rounding(
    text: str, values: dict[str, object], expected: Decimal
) -> None:
    result = value(text, **values)
    assert isinstance(result, (Decimal, bool))
    assert result == expected


def test_decimal_places_of_results() -> None:
    result = value("1 / 3")
    assert isinstance(result, Decimal)
    assert result.as_tuple().exponent == -12


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("csat * model_calls", {"csat": 2**32, "model_calls": 2**31}),
        ("csat + model_calls", {"csat": INTEGER_MAX, "model_calls": 1}),
        ("csat - model_calls", {"csat": INTEGER_MIN, "model_calls": 1}),
        ("-csat", {"csat": INTEGER_MIN}),
        ("abs(csat)", {"csat": INTEGER_MIN}),
        ("time_to_resolution * 2", {"time_to_resolution": INTEGER_MAX}),
        ("amount + amount", {"amount": Decimal("60000000000000000000000000")}),
        ("amount * amount", {"amount": Decimal("10000000000000")}),
        ("amount / 0.000000000001", {"amount": Decimal("100000000000000")}),
    ],
)
def test_out_of_range_is_an_error_not_a_wrapped_value(text: str, values: dict[str, object]) -> None:
    with pytest.raises(ExpressionError, match="expected a result") as raised:
        value(text, **values)
    assert raised.value.column == 1


# ---------------------------------------------------------------------------------------------
# Rows


@pytest.mark.parametrize(
    ("feature", "bad"),
    [
        ("confirmed", 1),
        ("confirmed", "true"),
        ("csat", True),
        ("csat", 3.0),
        ("csat", "3"),
        ("csat", 2**63),
        ("model_cost", 0.05),
        ("model_cost", Decimal("NaN")),
        ("model_cost", Decimal("Infinity")),
        ("intent", b"refund"),
        ("time_to_resolution", timedelta(minutes=5)),
        ("started_at", datetime(2026, 11, 1)),  # naive: which instant?
        ("started_at", "2026-11-01T00:00:00Z"),
    ],
)
def test_row_values_of_the_wrong_type_are_refused(feature: str, bad: object) -> None:
    rule = bind(f"{feature} is null", SCHEMA)
    with pytest.raises(ExpressionError) as raised:
        evaluate(rule, row(**{feature: bad}))
    assert raised.value.column == 1
    assert raised.value.reason.startswith(f"expected the feature {feature!r} to hold")


def test_a_missing_feature_is_refused_at_its_column() -> None:
    with pytest.raises(ExpressionError) as raised:
        evaluate(bind("confirmed or csat > 3", SCHEMA), {"confirmed": False})
    assert raised.value.column == 14
    assert raised.value.reason == "expected the row to hold the feature 'csat', found none"
    with pytest.raises(ExpressionError) as raised:
        evaluate(bind("recontact_within(1h)", SCHEMA), {})
    assert raised.value.column == 1
    assert "'recontact_delay'" in raised.value.reason


def test_a_decimal_beyond_38_digits_is_refused() -> None:
    with pytest.raises(ExpressionError, match="below 10\\^26"):
        value("amount > 0", amount=Decimal("1e26"))


def test_timestamps_compare_as_instants() -> None:
    berlin = timezone(timedelta(hours=1))
    early = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    same_instant = datetime(2026, 11, 1, 10, 0, tzinfo=berlin)
    later = datetime(2026, 11, 1, 9, 0, 0, 1, tzinfo=UTC)
    assert value("started_at == confirmed_at", started_at=early, confirmed_at=same_instant)
    assert value("started_at < confirmed_at", started_at=early, confirmed_at=later)
    assert value("greatest(started_at, confirmed_at)", started_at=early, confirmed_at=later) == (
        later
    )
    assert value("least(started_at, confirmed_at)", confirmed_at=later) == later


# ---------------------------------------------------------------------------------------------
# API edges


def test_an_unbound_expression_cannot_be_evaluated() -> None:
    with pytest.raises(ValueError, match="bind"):
        evaluate(parse("true"), {})
    with pytest.raises(ValueError, match="bind"):
        compile_python(parse("true"))


def test_matching_needs_a_true_or_false_rule() -> None:
    with pytest.raises(ExpressionError, match="expected a rule that is true or false"):
        matches(bind("csat + 1", SCHEMA), row())
    with pytest.raises(ExpressionError, match="expected a rule that is true or false"):
        compile_matcher(bind("csat + 1", SCHEMA))
    assert matches(bind("null", SCHEMA), row()) is False


def test_evaluate_compiles_once_per_expression() -> None:
    rule = bind("csat > 3", SCHEMA)
    assert evaluate(rule, row(csat=4)) is True
    compiled = rule._evaluator
    assert compiled is not None
    assert evaluate(rule, row(csat=1)) is False
    assert rule._evaluator is compiled


def test_expressions_are_plain_frozen_data() -> None:
    rule = bind("csat > 3", SCHEMA)
    assert hash(rule) == hash(bind("csat > 3", SCHEMA))
    with pytest.raises(AttributeError):
        rule.text = "x"  # type: ignore[misc]
    assert isinstance(rule, Expression)
