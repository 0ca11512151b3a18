"""The contract rule language: what counts as an outcome, written as an expression over episode
features, parsed and checked here and evaluated in pure Python (the reference judge).

A rule such as `not handed_off and (confirmed or not recontact_within(72h))` is read by a
hand-written tokenizer and Pratt parser (never Python `eval`), checked against a feature schema,
and then either evaluated here or compiled to DuckDB or Spark SQL by `raas.core.expressions_sql`,
with the same meaning in all three places. Typical use:

    rule = bind("csat >= 3 or csat is null", {"csat": Type.INTEGER}, expected=Type.BOOL)
    matches(rule, {"csat": None})            # True
    judge_row = compile_python(rule)         # once; then judge_row(row) per episode

The language, as a buyer reads it
---------------------------------
Values: whole numbers (`3`), decimal numbers (`0.05`, exact, never floating point), text in
double quotes (`"refund"`, with the escapes `\\"`, `\\\\`, `\\n`, `\\t` and `\\uXXXX`), `true`,
`false`, `null` (unknown / missing), and durations written with one unit: `90s`, `15m`, `72h`,
`7d`. Feature names (`csat`, `handed_off`) stand for the episode's values.

Operators, from loosest to tightest binding:

    or                      either side true
    and                     both sides true
    not                     the opposite
    == != < <= > >=         comparisons (they do not chain: write a < b and b < c)
    is null, is not null    whether a value is missing
    in [..], not in [..]    whether a value is one of a written-out list
    + -                     addition, subtraction
    * /                     multiplication, division
    -                       minus sign

Missing values (null) follow SQL's three-valued logic exactly, because that is what the SQL
engines that settle at scale do:

- a comparison or calculation with a missing value is itself unknown (null);
- `and`, `or` and `not` treat unknown as "could be either": `false and null` is false,
  `true or null` is true, `true and null`, `false or null` and `not null` are unknown;
- `x in [..]` is unknown when x is missing, true when x equals an item, otherwise unknown if
  the list holds null and false if it does not; `not in` is its opposite (unknown stays unknown);
- `is null` and `is not null` are always true or false;
- a rule *matches* an episode only when it is true: unknown counts as no match. So
  `review_passed != false` does not match an episode that was never reviewed; write
  `coalesce(review_passed, true)` to let unreviewed episodes through.

Numbers: whole numbers are signed 64-bit. Decimal numbers are exact with 12 digits after the
point and at most 26 before it (SQL `DECIMAL(38, 12)`); a decimal feature with more places is
rounded to 12 places on reading. `+` and `-` are exact; `*` and `/` round their result to 12
places, half away from zero (`0.0000000000005` becomes `0.000000000001`). Dividing by zero gives
null, not an error, so that one bad episode cannot stop a settlement: `x / 0 > 1` is unknown and
does not match. A whole number divided by a whole number is a decimal number (`7 / 2` is 3.5).
A result out of range is an error, never a wrapped or rounded value; the SQL engines may report
an out-of-range error a little earlier than this module (a product above 10^14, say), but they
never give a different value.

Durations are whole seconds: they compare with durations only (`time_to_resolution < 10m`, not
`< 600`), add and subtract with durations, and multiply by whole numbers. Points in time
(timestamps) are aware datetimes compared as instants; there are no timestamp literals. Text
compares with `==`, `!=` and `in` only (no alphabetical order, whose meaning differs between
engines and collations); true/false compares with `==` and `!=` only.

The functions are in `FUNCTIONS`, each with a sentence a buyer can check; `least` and
`greatest` skip unknown values, as SQL engines do.
"""

from __future__ import annotations

import difflib
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import (
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
)
from enum import Enum
from typing import Any, Final, Literal, NoReturn, TypeAlias

from raas.errors import RaasError

__all__ = [
    "DECIMAL_INTEGER_DIGITS",
    "DECIMAL_PLACES",
    "DEPTH_MAX",
    "DURATION_UNITS",
    "FUNCTIONS",
    "INTEGER_MAX",
    "INTEGER_MIN",
    "KEYWORDS",
    "RULE_LENGTH_MAX",
    "Arithmetic",
    "Call",
    "Comparison",
    "Constant",
    "Evaluator",
    "Expression",
    "ExpressionError",
    "Feature",
    "Function",
    "InList",
    "IsNull",
    "Logical",
    "Negate",
    "Node",
    "Not",
    "Schema",
    "Span",
    "Type",
    "bind",
    "check",
    "compile_matcher",
    "compile_python",
    "evaluate",
    "matches",
    "parse",
]

# A rule is a line or a paragraph; these bounds keep a mistake or an attack from exhausting
# the parser's (recursive) stack or the engines' SQL parsers.
RULE_LENGTH_MAX: Final = 10_000
DEPTH_MAX: Final = 100

INTEGER_MIN: Final = -(2**63)
INTEGER_MAX: Final = 2**63 - 1
DECIMAL_PLACES: Final = 12
DECIMAL_INTEGER_DIGITS: Final = 26  # 38 digits in all, as SQL's DECIMAL(38, 12)
DURATION_UNITS: Final[Mapping[str, int]] = {"s": 1, "m": 60, "h": 3600, "d": 86400}

_QUANTUM: Final = Decimal(1).scaleb(-DECIMAL_PLACES)
_DECIMAL_BOUND: Final = Decimal(10) ** DECIMAL_INTEGER_DIGITS
# Wide enough that sums and products of two DECIMAL(38, 12) values are exact before the one
# rounding that the language defines; every decimal operation goes through this context, never
# through the thread's default one (28 digits, which would round silently).
_EXACT: Final = Context(
    prec=100, rounding=ROUND_HALF_UP, traps=[InvalidOperation, DivisionByZero, Overflow]
)
# Reading a decimal feature: 38 digits, so that quantizing a value with more than 26 digits
# before the point raises instead of rounding.
_STORED: Final = Context(
    prec=DECIMAL_PLACES + DECIMAL_INTEGER_DIGITS, rounding=ROUND_HALF_UP, traps=[InvalidOperation]
)


# ---------------------------------------------------------------------------------------------
# Errors


class ExpressionError(RaasError):
    """A rule is invalid, or cannot be evaluated: the rule's text, the 1-based column where the
    problem starts, and the reason (what was expected, what was found).

    `str()` shows the reason with the rule's line and a caret under the column; the contract
    loader prefixes the rule's name, file and line."""

    def __init__(self, rule: str, column: int, reason: str, length: int = 1):
        self.rule = rule
        self.column = column
        self.reason = reason
        self.length = max(1, length)
        super().__init__(self._render())

    def _render(self) -> str:
        offset = min(max(self.column - 1, 0), len(self.rule))
        line_start = self.rule.rfind("\n", 0, offset) + 1
        line_end = self.rule.find("\n", offset)
        if line_end == -1:
            line_end = len(self.rule)
        line = self.rule[line_start:line_end]
        within = offset - line_start
        # Tabs stay tabs under the caret so that it lines up in a terminal.
        padding = "".join("\t" if character == "\t" else " " for character in line[:within])
        width = max(1, min(self.length, len(line) - within))
        return f"column {self.column}: {self.reason}\n    {line}\n    {padding}{'^' * width}"


# ---------------------------------------------------------------------------------------------
# Types


class Type(Enum):
    """The type of a feature or of an expression's value."""

    BOOL = "bool"
    INTEGER = "integer"
    DECIMAL = "decimal"
    STRING = "string"
    DURATION = "duration"  # whole seconds
    TIMESTAMP = "timestamp"  # an aware datetime, compared as an instant
    NULL = "null"  # the type of the literal `null` only

    @property
    def words(self) -> str:
        """The type as a buyer says it, for error messages."""
        return _TYPE_WORDS[self]


_TYPE_WORDS: Final = {
    Type.BOOL: "true or false",
    Type.INTEGER: "a whole number",
    Type.DECIMAL: "a decimal number",
    Type.STRING: "text",
    Type.DURATION: "a duration",
    Type.TIMESTAMP: "a point in time",
    Type.NULL: "null",
}

Schema: TypeAlias = Mapping[str, Type]
_NUMERIC: Final = frozenset({Type.INTEGER, Type.DECIMAL})
_ORDERED: Final = frozenset({Type.INTEGER, Type.DECIMAL, Type.DURATION, Type.TIMESTAMP})


def _common(left: Type, right: Type) -> Type | None:
    """The type two values are compared or combined in, or None when they cannot be."""
    if left is Type.NULL:
        return right
    if right is Type.NULL or left is right:
        return left
    if left in _NUMERIC and right in _NUMERIC:
        return Type.DECIMAL
    return None


# ---------------------------------------------------------------------------------------------
# Syntax tree: plain frozen data; `type` is None until `bind` has checked the node.


@dataclass(frozen=True, slots=True)
class Span:
    """Where a node sits in the rule's text: 0-based offsets, `end` excluded."""

    start: int
    end: int

    @property
    def column(self) -> int:
        """The 1-based column of the node's first character."""
        return self.start + 1


ConstantValue: TypeAlias = bool | int | Decimal | str | None


@dataclass(frozen=True, slots=True)
class Constant:
    """A literal: `kind` tells an integer from a duration (both hold an int)."""

    value: ConstantValue
    kind: Type
    span: Span
    type: Type | None = None


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    span: Span
    type: Type | None = None


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node
    span: Span
    type: Type | None = None


@dataclass(frozen=True, slots=True)
class Negate:
    operand: Node
    span: Span
    type: Type | None = None


@dataclass(frozen=True, slots=True)
class Logical:
    operator: Literal["and", "or"]
    left: Node
    right: Node
    span: Span
    type: Type | None = None


ComparisonOperator: TypeAlias = Literal["==", "!=", "<", "<=", ">", ">="]


@dataclass(frozen=True, slots=True)
class Comparison:
    operator: ComparisonOperator
    left: Node
    right: Node
    span: Span
    type: Type | None = None


ArithmeticOperator: TypeAlias = Literal["+", "-", "*", "/"]


@dataclass(frozen=True, slots=True)
class Arithmetic:
    operator: ArithmeticOperator
    left: Node
    right: Node
    span: Span
    type: Type | None = None


@dataclass(frozen=True, slots=True)
class IsNull:
    operand: Node
    negated: bool  # `is not null`
    span: Span
    type: Type | None = None


@dataclass(frozen=True, slots=True)
class InList:
    operand: Node
    items: tuple[Constant, ...]
    negated: bool  # `not in`
    span: Span
    type: Type | None = None


@dataclass(frozen=True, slots=True)
class Call:
    function: str
    arguments: tuple[Node, ...]
    span: Span
    name_span: Span
    type: Type | None = None


Node: TypeAlias = (
    Constant | Feature | Not | Negate | Logical | Comparison | Arithmetic | IsNull | InList | Call
)
Evaluator: TypeAlias = Callable[[Mapping[str, object]], object]


@dataclass(frozen=True, slots=True)
class Expression:
    """A parsed rule: its text (for error messages) and its syntax tree. After `bind`, every
    node carries its type and the expression can be evaluated or compiled to SQL."""

    text: str
    root: Node
    # The compiled evaluator, built on first use by `evaluate` and `matches`.
    _evaluator: Evaluator | None = field(
        default=None, init=False, repr=False, compare=False, hash=False
    )

    @property
    def type(self) -> Type | None:
        """The type of the rule's value; None until bound to a schema."""
        return self.root.type

    @property
    def features(self) -> frozenset[str]:
        """The features the rule reads, including those read by its functions."""
        names: set[str] = set()
        for node in _walk(self.root):
            if isinstance(node, Feature):
                names.add(node.name)
            elif isinstance(node, Call) and node.function in FUNCTIONS:
                names.update(FUNCTIONS[node.function].features)
        return frozenset(names)

    def __str__(self) -> str:
        return self.text


def _children(node: Node) -> tuple[Node, ...]:
    match node:
        case Not(operand=operand) | Negate(operand=operand) | IsNull(operand=operand):
            return (operand,)
        case Logical(left=left, right=right) | Comparison(left=left, right=right):
            return (left, right)
        case Arithmetic(left=left, right=right):
            return (left, right)
        case InList(operand=operand, items=items):
            return (operand, *items)
        case Call(arguments=arguments):
            return arguments
        case _:
            return ()


def _walk(root: Node) -> Iterator[Node]:
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(_children(node))


# ---------------------------------------------------------------------------------------------
# Tokenizer

_TokenKind: TypeAlias = Literal[
    "integer", "decimal", "string", "duration", "name", "keyword", "symbol", "end"
]
KEYWORDS: Final = frozenset({"and", "or", "not", "in", "is", "null", "true", "false"})
_SYMBOLS: Final = ("==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "(", ")", "[", "]", ",")
# Operators from other languages, refused with the word this language uses instead.
_FOREIGN: Final = {
    "<>": "to compare, write != (not <>)",
    "&&": "write and (not &&)",
    "||": "write or (not ||)",
    "=": "to compare, write == (a single = is not an operator)",
    "!": "write not (not !)",
    "&": "write and (not &)",
    "|": "write or (not |)",
    "%": "there is no remainder operator",
    "'": 'text is written in double quotes, such as "refund"',
}
_ESCAPES: Final = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: _TokenKind
    text: str
    start: int
    end: int
    value: ConstantValue = None


def _fail(text: str, start: int, end: int, reason: str) -> NoReturn:
    raise ExpressionError(text, start + 1, reason, end - start)


def _is_name_start(character: str) -> bool:
    return character == "_" or ("a" <= character <= "z") or ("A" <= character <= "Z")


def _is_name_part(character: str) -> bool:
    return _is_name_start(character) or ("0" <= character <= "9")


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    length = len(text)
    while position < length:
        character = text[position]
        if character in " \t\r\n":
            position += 1
            continue
        start = position
        if "0" <= character <= "9":
            token = _number(text, start)
        elif _is_name_start(character):
            while position < length and _is_name_part(text[position]):
                position += 1
            word = text[start:position]
            if word in KEYWORDS:
                token = _Token("keyword", word, start, position)
            elif word.lower() in KEYWORDS:
                _fail(
                    text,
                    start,
                    position,
                    f"expected the keyword {word.lower()!r} in lowercase, found {word!r}",
                )
            else:
                token = _Token("name", word, start, position)
        elif character == '"':
            token = _string(text, start)
        else:
            token = _symbol(text, start)
        tokens.append(token)
        position = token.end
    tokens.append(_Token("end", "", length, length))
    return tokens


def _number(text: str, start: int) -> _Token:
    position = start
    length = len(text)
    while position < length and "0" <= text[position] <= "9":
        position += 1
    whole = text[start:position]
    places = ""
    if position < length and text[position] == ".":
        if position + 1 >= length or not "0" <= text[position + 1] <= "9":
            _fail(
                text,
                start,
                position + 1,
                f"expected a digit after the decimal point in {text[start : position + 1]!r}, "
                "such as 0.5",
            )
        position += 1
        fraction_start = position
        while position < length and "0" <= text[position] <= "9":
            position += 1
        places = text[fraction_start:position]
    if len(whole) > 1 and whole.startswith("0"):
        _fail(
            text,
            start,
            position,
            f"expected a number without leading zeros, found {text[start:position]!r}",
        )
    unit_start = position
    while position < length and _is_name_start(text[position]):
        position += 1
    unit = text[unit_start:position]
    if unit and unit not in DURATION_UNITS:
        while position < length and _is_name_part(text[position]):
            position += 1
        _fail(
            text,
            unit_start,
            position,
            f"expected a duration unit after {text[start:unit_start]!r}: s (seconds), "
            f"m (minutes), h (hours) or d (days), found {text[unit_start:position]!r}",
        )
    source = text[start:position]
    if unit:
        if places:
            _fail(
                text,
                start,
                position,
                f"expected a whole number of {_UNIT_WORDS[unit]}, found {source!r}; write "
                f"a smaller unit, such as 90m for 1.5h",
            )
        if position < length and "0" <= text[position] <= "9":
            while position < length and _is_name_part(text[position]):
                position += 1
            source = text[start:position]
            _fail(
                text,
                start,
                position,
                f"expected a duration with one unit, found {source!r}; "
                "write the total in one unit, such as 90m for 1h30m",
            )
        seconds = int(whole) * DURATION_UNITS[unit]
        if seconds > INTEGER_MAX:
            _fail(text, start, position, f"expected a duration below 2^63 seconds, found {source}")
        return _Token("duration", source, start, position, seconds)
    if places:
        if len(places) > DECIMAL_PLACES:
            _fail(
                text,
                start,
                position,
                f"expected at most {DECIMAL_PLACES} digits after the decimal point, "
                f"found {len(places)} in {source}",
            )
        if len(whole.lstrip("0")) > DECIMAL_INTEGER_DIGITS:
            _fail(
                text,
                start,
                position,
                f"expected at most {DECIMAL_INTEGER_DIGITS} digits before the decimal point, "
                f"found {len(whole)}",
            )
        return _Token("decimal", source, start, position, Decimal(source))
    value = int(whole)
    if value > INTEGER_MAX:
        _fail(
            text,
            start,
            position,
            f"expected a whole number up to {INTEGER_MAX}, found {source}; write a decimal "
            "number (with a point) for larger values",
        )
    return _Token("integer", source, start, position, value)


_UNIT_WORDS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _string(text: str, start: int) -> _Token:
    position = start + 1
    length = len(text)
    pieces: list[str] = []
    while True:
        if position >= length or text[position] == "\n":
            _fail(
                text,
                start,
                start + 1,
                'expected a closing " for the text that starts here, found the end of the '
                + ("line" if position < length else "rule"),
            )
        character = text[position]
        if character == '"':
            position += 1
            break
        if character == "\\":
            escape = text[position + 1 : position + 2]
            if escape in _ESCAPES:
                pieces.append(_ESCAPES[escape])
                position += 2
                continue
            if escape == "u":
                digits = text[position + 2 : position + 6]
                if len(digits) == 4 and all(c in "0123456789abcdefABCDEF" for c in digits):
                    code = int(digits, 16)
                    if code == 0 or 0xD800 <= code <= 0xDFFF:
                        _fail(
                            text,
                            position,
                            position + 6,
                            f"expected a printable character, found \\u{digits}",
                        )
                    pieces.append(chr(code))
                    position += 6
                    continue
                _fail(
                    text,
                    position,
                    position + 2,
                    "expected four hexadecimal digits after \\u, such as \\u00e9",
                )
            _fail(
                text,
                position,
                position + 2,
                'expected one of the escapes \\" \\\\ \\n \\t \\uXXXX, '
                f"found \\{escape or ' at the end of the rule'}",
            )
        if ord(character) < 0x20 and character != "\t":
            _fail(
                text,
                position,
                position + 1,
                f"expected printable text, found the control character {ord(character):#06x}",
            )
        pieces.append(character)
        position += 1
    return _Token("string", text[start:position], start, position, "".join(pieces))


def _symbol(text: str, start: int) -> _Token:
    two = text[start : start + 2]
    one = text[start]
    if two in _FOREIGN:
        _fail(text, start, start + 2, _FOREIGN[two])
    for symbol in _SYMBOLS:
        if text.startswith(symbol, start):
            return _Token("symbol", symbol, start, start + len(symbol))
    if one in _FOREIGN:
        _fail(text, start, start + 1, _FOREIGN[one])
    _fail(text, start, start + 1, f"expected an operator, a value or a feature, found {one!r}")


# ---------------------------------------------------------------------------------------------
# Parser: Pratt (top-down operator precedence); binding powers from loosest to tightest.

_OR: Final = 10
_AND: Final = 20
_NOT: Final = 30
_COMPARISON: Final = 40
_ADDITIVE: Final = 50
_MULTIPLICATIVE: Final = 60
_UNARY: Final = 70

_COMPARISON_OPERATORS: Final = frozenset({"==", "!=", "<", "<=", ">", ">="})


def parse(text: str) -> Expression:
    """The syntax tree of a rule; raises `ExpressionError` at the first syntax error. The tree
    is not yet checked: `bind` checks it against a feature schema."""
    if len(text) > RULE_LENGTH_MAX:
        _fail(
            text,
            RULE_LENGTH_MAX,
            RULE_LENGTH_MAX + 1,
            f"expected a rule of at most {RULE_LENGTH_MAX} characters, found {len(text)}",
        )
    parser = _Parser(text)
    root = parser.expression(0)
    token = parser.peek()
    if token.kind != "end":
        _fail(
            text,
            token.start,
            token.end,
            f"expected an operator or the end of the rule, found {_describe(token)}",
        )
    _check_depth(text, root)
    return Expression(text, root)


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "the end of the rule"
    return repr(token.text) if token.kind != "string" else f"the text {token.text}"


def _check_depth(text: str, root: Node) -> None:
    # The parser's own recursion is bounded by nesting; a long chain such as a + b + c + ...
    # builds a deep tree in a loop, which the (recursive) checker and compilers must not meet.
    stack: list[tuple[Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > DEPTH_MAX:
            _fail(
                text,
                node.span.start,
                node.span.end,
                f"expected a rule nested at most {DEPTH_MAX} levels deep; split it, or "
                "use `in [...]` instead of a long chain of `or`",
            )
        stack.extend((child, depth + 1) for child in _children(node))


def _span(first: Node | _Token | Span, last: Node | _Token | Span) -> Span:
    start = first.start if isinstance(first, (_Token, Span)) else first.span.start
    end = last.end if isinstance(last, (_Token, Span)) else last.span.end
    return Span(start, end)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.position = 0
        self.depth = 0

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.position + ahead, len(self.tokens) - 1)]

    def advance(self) -> _Token:
        token = self.peek()
        self.position = min(self.position + 1, len(self.tokens) - 1)
        return token

    def fail(self, token: _Token, reason: str) -> NoReturn:
        _fail(self.text, token.start, max(token.end, token.start + 1), reason)

    def is_symbol(self, token: _Token, symbol: str) -> bool:
        return token.kind == "symbol" and token.text == symbol

    def is_keyword(self, token: _Token, keyword: str) -> bool:
        return token.kind == "keyword" and token.text == keyword

    def infix_power(self, token: _Token) -> int | None:
        if token.kind == "keyword":
            if token.text == "or":
                return _OR
            if token.text == "and":
                return _AND
            if token.text in ("is", "in"):
                return _COMPARISON
            if token.text == "not" and self.is_keyword(self.peek(1), "in"):
                return _COMPARISON
            return None
        if token.kind == "symbol":
            if token.text in _COMPARISON_OPERATORS:
                return _COMPARISON
            if token.text in ("+", "-"):
                return _ADDITIVE
            if token.text in ("*", "/"):
                return _MULTIPLICATIVE
        return None

    def expression(self, minimum_power: int) -> Node:
        self.depth += 1
        if self.depth > DEPTH_MAX:
            self.fail(
                self.peek(), f"expected a rule nested at most {DEPTH_MAX} levels deep, found more"
            )
        left = self.prefix(minimum_power)
        compared = False
        while True:
            token = self.peek()
            power = self.infix_power(token)
            if power is None or power <= minimum_power:
                break
            if power == _COMPARISON:
                if compared:
                    self.fail(
                        token,
                        f"expected and/or between comparisons, found {_describe(token)}: "
                        "comparisons do not chain; write a < b and b < c",
                    )
                compared = True
            left = self.infix(left, token, power)
        self.depth -= 1
        return left

    def prefix(self, minimum_power: int) -> Node:
        token = self.advance()
        if token.kind == "keyword":
            if token.text == "not":
                if minimum_power > _NOT:
                    self.fail(
                        token,
                        "expected a value here, found 'not'; put the negated condition in "
                        "parentheses, such as a == (not b)",
                    )
                operand = self.expression(_NOT)
                return Not(operand, _span(token, operand))
            if token.text in ("true", "false"):
                return Constant(token.text == "true", Type.BOOL, _span(token, token))
            if token.text == "null":
                return Constant(None, Type.NULL, _span(token, token))
            self.fail(token, f"expected a value, a feature or (, found {_describe(token)}")
        if token.kind in ("integer", "decimal", "duration", "string"):
            return Constant(token.value, _TOKEN_TYPES[token.kind], _span(token, token))
        if token.kind == "name":
            if self.is_symbol(self.peek(), "("):
                return self.call(token)
            return Feature(token.text, _span(token, token))
        if self.is_symbol(token, "-"):
            operand = self.expression(_UNARY)
            if isinstance(operand, Constant) and operand.kind in (
                Type.INTEGER,
                Type.DECIMAL,
                Type.DURATION,
            ):
                # Folded so that -3 in a list is a constant, and so that SQL sees a literal.
                return Constant(_negated(operand.value), operand.kind, _span(token, operand))
            return Negate(operand, _span(token, operand))
        if self.is_symbol(token, "("):
            inner = self.expression(0)
            closing = self.advance()
            if not self.is_symbol(closing, ")"):
                self.fail(
                    closing,
                    f"expected ) to close the ( at column {token.start + 1}, "
                    f"found {_describe(closing)}",
                )
            return replace(inner, span=_span(token, closing))
        if self.is_symbol(token, "["):
            self.fail(
                token,
                "expected a value, found a list; a list can only follow in, such as "
                'intent in ["refund", "cancel"]',
            )
        self.fail(token, f"expected a value, a feature or (, found {_describe(token)}")

    def infix(self, left: Node, token: _Token, power: int) -> Node:
        self.advance()
        if token.kind == "keyword":
            if token.text in ("or", "and"):
                right = self.expression(power)
                keyword: Literal["and", "or"] = "or" if token.text == "or" else "and"
                return Logical(keyword, left, right, _span(left, right))
            if token.text == "is":
                negated = self.is_keyword(self.peek(), "not")
                if negated:
                    self.advance()
                null = self.advance()
                if not self.is_keyword(null, "null"):
                    self.fail(
                        null,
                        f"expected null after 'is{' not' if negated else ''}' "
                        f"(write is null or is not null), found {_describe(null)}",
                    )
                return IsNull(left, negated, _span(left, null))
            negated = token.text == "not"
            if negated:
                self.advance()  # the `in` after `not`
            items, closing = self.list_items()
            return InList(left, items, negated, _span(left, closing))
        right = self.expression(power)
        if token.text in _COMPARISON_OPERATORS:
            return Comparison(_as_comparison(token.text), left, right, _span(left, right))
        return Arithmetic(_as_arithmetic(token.text), left, right, _span(left, right))

    def list_items(self) -> tuple[tuple[Constant, ...], _Token]:
        opening = self.advance()
        if not self.is_symbol(opening, "["):
            self.fail(
                opening,
                'expected a list in brackets after in, such as ["refund", "cancel"], '
                f"found {_describe(opening)}",
            )
        if self.is_symbol(self.peek(), "]"):
            self.fail(self.peek(), "expected at least one item in the list, found ]")
        items: list[Constant] = []
        while True:
            items.append(self.list_item())
            separator = self.advance()
            if self.is_symbol(separator, "]"):
                return tuple(items), separator
            if not self.is_symbol(separator, ","):
                self.fail(
                    separator,
                    f"expected , or ] to close the [ at column {opening.start + 1}, "
                    f"found {_describe(separator)}",
                )

    def list_item(self) -> Constant:
        token = self.advance()
        sign: _Token | None = None
        if self.is_symbol(token, "-"):
            sign, token = token, self.advance()
        if token.kind in ("integer", "decimal", "duration") or (
            sign is None and token.kind == "string"
        ):
            kind = _TOKEN_TYPES[token.kind]
            value = _negated(token.value) if sign is not None else token.value
            return Constant(value, kind, _span(sign or token, token))
        if sign is None and token.kind == "keyword" and token.text in ("true", "false", "null"):
            if token.text == "null":
                return Constant(None, Type.NULL, _span(token, token))
            return Constant(token.text == "true", Type.BOOL, _span(token, token))
        self.fail(
            token,
            "expected a list item written out: a number, text in double quotes, a duration, "
            f"true, false or null, found {_describe(token)}",
        )

    def call(self, name: _Token) -> Call:
        self.advance()  # (
        arguments: list[Node] = []
        if not self.is_symbol(self.peek(), ")"):
            while True:
                arguments.append(self.expression(0))
                separator = self.peek()
                if self.is_symbol(separator, ","):
                    self.advance()
                    continue
                if self.is_symbol(separator, ")"):
                    break
                self.fail(
                    separator,
                    f"expected , or ) in the call of {name.text}, found {_describe(separator)}",
                )
        closing = self.advance()
        return Call(name.text, tuple(arguments), _span(name, closing), _span(name, name))


_TOKEN_TYPES: Final = {
    "integer": Type.INTEGER,
    "decimal": Type.DECIMAL,
    "duration": Type.DURATION,
    "string": Type.STRING,
}


def _negated(value: ConstantValue) -> ConstantValue:
    if isinstance(value, Decimal):
        return value.copy_negate()
    assert isinstance(value, int) and not isinstance(value, bool)
    return -value


def _as_comparison(symbol: str) -> ComparisonOperator:
    for candidate in ("==", "!=", "<", "<=", ">", ">="):
        if candidate == symbol:
            return candidate
    raise AssertionError(symbol)


def _as_arithmetic(symbol: str) -> ArithmeticOperator:
    for candidate in ("+", "-", "*", "/"):
        if candidate == symbol:
            return candidate
    raise AssertionError(symbol)


# ---------------------------------------------------------------------------------------------
# Functions


FunctionKind: TypeAlias = Literal["window", "first_known", "extreme", "absolute"]
FeatureReader: TypeAlias = Callable[[str], Evaluator]
ColumnReader: TypeAlias = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class Function:
    """One function of the rule language.

    `kind` fixes the argument rules the checker applies: "window" takes one duration written
    out (such as 72h) and gives true or false; "first_known" (coalesce) takes two or more values
    of one type; "extreme" (least, greatest) takes two or more numbers, durations or points in
    time; "absolute" takes one number or duration. `features` are the features the function
    reads besides its arguments, which the schema must provide with these types.

    `python` builds the evaluator from the arguments' evaluators (converted to the result type
    when it is decimal) and a reader of features; `sql` writes the SQL from the arguments' SQL
    (already cast to the result type) and a function giving each feature's SQL column."""

    name: str
    signature: str
    description: str  # in words a buyer can check
    kind: FunctionKind
    python: Callable[[Sequence[Evaluator], FeatureReader], Evaluator]
    sql: Callable[[Sequence[str], ColumnReader], str]
    features: Mapping[str, Type] = field(default_factory=dict)


def _recontact_within(arguments: Sequence[Evaluator], feature: FeatureReader) -> Evaluator:
    window = arguments[0]({})
    delay = feature("recontact_delay")

    def recontact_within(row: Mapping[str, object]) -> object:
        value = delay(row)
        return value is not None and value < window  # type: ignore[operator]

    return recontact_within


def _inactive_for(arguments: Sequence[Evaluator], feature: FeatureReader) -> Evaluator:
    window = arguments[0]({})
    inactivity = feature("inactivity")

    def inactive_for(row: Mapping[str, object]) -> object:
        value = inactivity(row)
        return value is not None and value >= window  # type: ignore[operator]

    return inactive_for


def _coalesce(arguments: Sequence[Evaluator], feature: FeatureReader) -> Evaluator:
    def coalesce(row: Mapping[str, object]) -> object:
        for argument in arguments:
            value = argument(row)
            if value is not None:
                return value
        return None

    return coalesce


def _extreme(pick: Callable[[list[object]], object]) -> Callable[..., Evaluator]:
    def build(arguments: Sequence[Evaluator], feature: FeatureReader) -> Evaluator:
        def extreme(row: Mapping[str, object]) -> object:
            known = [value for argument in arguments if (value := argument(row)) is not None]
            return pick(known) if known else None

        return extreme

    return build


def _absolute(arguments: Sequence[Evaluator], feature: FeatureReader) -> Evaluator:
    (argument,) = arguments

    def absolute(row: Mapping[str, object]) -> object:
        value = argument(row)
        if value is None:
            return None
        if isinstance(value, Decimal):
            return _EXACT.abs(value)
        assert isinstance(value, int)
        return abs(value)  # range checked by the compiler's wrapper

    return absolute


def _minimum(values: list[object]) -> object:
    return min(values)  # type: ignore[type-var]


def _maximum(values: list[object]) -> object:
    return max(values)  # type: ignore[type-var]


FUNCTIONS: Final[Mapping[str, Function]] = {
    function.name: function
    for function in (
        Function(
            name="recontact_within",
            signature="recontact_within(duration) -> bool",
            description=(
                "The customer came back about the same problem less than the given time after "
                "the AI's last answer (feature recontact_delay). False when the customer did not "
                "come back, or came back later, or when the AI never answered. The duration is "
                "written out, such as 72h; a return at exactly 72h is not within 72h."
            ),
            kind="window",
            python=_recontact_within,
            sql=lambda arguments, column: (
                f"COALESCE(({column('recontact_delay')} < {arguments[0]}), FALSE)"
            ),
            features={"recontact_delay": Type.DURATION},
        ),
        Function(
            name="inactive_for",
            signature="inactive_for(duration) -> bool",
            description=(
                "After the AI's last answer, the customer stayed silent for at least the given "
                "time: the time to their next activity on the problem, or to the end of "
                "observation if there was none (feature inactivity). False when the AI never "
                "answered. The duration is written out, such as 72h."
            ),
            kind="window",
            python=_inactive_for,
            sql=lambda arguments, column: (
                f"COALESCE(({column('inactivity')} >= {arguments[0]}), FALSE)"
            ),
            features={"inactivity": Type.DURATION},
        ),
        Function(
            name="coalesce",
            signature="coalesce(a, b, ...) -> the arguments' type",
            description=(
                "The first of its arguments that is known: coalesce(csat, 0) is the CSAT score, "
                "or 0 when the customer gave none."
            ),
            kind="first_known",
            python=_coalesce,
            sql=lambda arguments, column: f"COALESCE({', '.join(arguments)})",
        ),
        Function(
            name="abs",
            signature="abs(number or duration) -> the same type",
            description="The value without its sign: abs(-3) is 3. Unknown when x is unknown.",
            kind="absolute",
            python=_absolute,
            sql=lambda arguments, column: f"abs({arguments[0]})",
        ),
        Function(
            name="least",
            signature="least(a, b, ...) -> the arguments' type",
            description=(
                "The smallest of the known arguments (numbers, durations or points in time); "
                "unknown arguments are skipped, and the result is unknown only when all are."
            ),
            kind="extreme",
            python=_extreme(_minimum),
            sql=lambda arguments, column: f"LEAST({', '.join(arguments)})",
        ),
        Function(
            name="greatest",
            signature="greatest(a, b, ...) -> the arguments' type",
            description=(
                "The largest of the known arguments (numbers, durations or points in time); "
                "unknown arguments are skipped, and the result is unknown only when all are."
            ),
            kind="extreme",
            python=_extreme(_maximum),
            sql=lambda arguments, column: f"GREATEST({', '.join(arguments)})",
        ),
    )
}


# ---------------------------------------------------------------------------------------------
# Checker


def check(expression: Expression | str, schema: Schema, *, expected: Type | None = None) -> Type:
    """The type of a rule's value under `schema`; raises `ExpressionError` for an unknown
    feature or function, or operands of the wrong type. With `expected`, the rule's value must
    have that type (an outcome condition must be `Type.BOOL`)."""
    bound = bind(expression, schema, expected=expected)
    assert bound.type is not None
    return bound.type


def bind(
    expression: Expression | str, schema: Schema, *, expected: Type | None = None
) -> Expression:
    """The rule checked against `schema`, with a type on every node: what `evaluate`,
    `compile_python` and `to_sql` take. Parses `expression` first when it is text."""
    parsed = parse(expression) if isinstance(expression, str) else expression
    checker = _Checker(parsed.text, schema)
    root = checker.check(parsed.root)
    assert root.type is not None
    if expected is not None and root.type is not expected:
        checker.fail(
            root,
            f"expected a rule that is {expected.words}, found {checker.found(root, root.type)}",
        )
    return Expression(parsed.text, root)


class _Checker:
    def __init__(self, text: str, schema: Schema) -> None:
        self.text = text
        self.schema = schema

    def fail(self, node: Node | Span, reason: str) -> NoReturn:
        span = node if isinstance(node, Span) else node.span
        _fail(self.text, span.start, span.end, reason)

    def source(self, node: Node) -> str:
        text = " ".join(self.text[node.span.start : node.span.end].split())
        return text if len(text) <= 40 else text[:37] + "..."

    def found(self, node: Node, kind: Type) -> str:
        return f"{self.source(node)} ({kind.words})"

    def check(self, node: Node) -> Node:
        match node:
            case Constant(kind=kind):
                return replace(node, type=kind)
            case Feature(name=name):
                return replace(node, type=self.feature(node, name))
            case Not(operand=operand):
                checked = self.check(operand)
                self.require(checked, {Type.BOOL}, "after 'not'")
                return replace(node, operand=checked, type=Type.BOOL)
            case Negate(operand=operand):
                checked = self.check(operand)
                operand_type = self.require(
                    checked, {Type.INTEGER, Type.DECIMAL, Type.DURATION}, "after the minus sign"
                )
                return replace(node, operand=checked, type=operand_type or Type.INTEGER)
            case Logical(operator=word, left=left, right=right):
                checked_left, checked_right = self.check(left), self.check(right)
                self.require(checked_left, {Type.BOOL}, f"on the left of '{word}'")
                self.require(checked_right, {Type.BOOL}, f"on the right of '{word}'")
                return replace(node, left=checked_left, right=checked_right, type=Type.BOOL)
            case Comparison():
                return self.comparison(node)
            case Arithmetic():
                return self.arithmetic(node)
            case IsNull(operand=operand):
                return replace(node, operand=self.check(operand), type=Type.BOOL)
            case InList():
                return self.in_list(node)
            case Call():
                return self.call(node)
        raise AssertionError(node)  # pragma: no cover - every node kind is matched above

    def require(self, node: Node, allowed: set[Type], where: str) -> Type | None:
        """The node's type when it is one of `allowed`, None for the literal null."""
        kind = node.type
        assert kind is not None
        if kind is Type.NULL:
            return None
        if kind not in allowed:
            words = " or ".join(sorted(allowed_type.words for allowed_type in allowed))
            self.fail(node, f"expected {words} {where}, found {self.found(node, kind)}")
        return kind

    def feature(self, node: Feature, name: str) -> Type:
        kind = self.schema.get(name)
        if kind is not None:
            return kind
        if name in FUNCTIONS:
            self.fail(
                node,
                f"expected a feature, found the function {name!r} without arguments; "
                f"write it as {FUNCTIONS[name].signature.split(' ->')[0]}",
            )
        hint = difflib.get_close_matches(name, list(self.schema), n=1, cutoff=0.6)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        self.fail(
            node, f"expected a feature of the episode, found the unknown name {name!r}{suggestion}"
        )

    def comparison(self, node: Comparison) -> Node:
        left, right = self.check(node.left), self.check(node.right)
        for side, other in ((left, right), (right, left)):
            if isinstance(side, Constant) and side.kind is Type.NULL:
                test = "is null" if node.operator == "==" else "is not null"
                self.fail(
                    side,
                    f"expected a value to compare with, found null: a comparison with null is "
                    f"never true; to test for a missing value write {self.source(other)} {test}",
                )
        assert left.type is not None and right.type is not None
        common = _common(left.type, right.type)
        if common is None:
            hint = ""
            if {left.type, right.type} & {Type.DURATION} and {left.type, right.type} & _NUMERIC:
                hint = "; write durations with a unit, such as 10m or 72h"
            self.fail(
                node,
                f"expected values of the same kind on both sides of '{node.operator}', found "
                f"{self.found(left, left.type)} and {self.found(right, right.type)}{hint}",
            )
        if node.operator not in ("==", "!=") and common not in _ORDERED | {Type.NULL}:
            self.fail(
                node,
                f"expected numbers, durations or points in time on both sides of "
                f"'{node.operator}', found {common.words}, which can only be compared with "
                "== and != (or in)",
            )
        return replace(node, left=left, right=right, type=Type.BOOL)

    def arithmetic(self, node: Arithmetic) -> Node:
        symbol = node.operator
        left, right = self.check(node.left), self.check(node.right)
        allowed = {Type.INTEGER, Type.DECIMAL, Type.DURATION}
        left_type = self.require(left, allowed, f"on the left of '{symbol}'")
        right_type = self.require(right, allowed, f"on the right of '{symbol}'")
        # A null literal takes the type of the other side.
        left_type = left_type or right_type or Type.INTEGER
        right_type = right_type or left_type
        durations = (left_type is Type.DURATION) + (right_type is Type.DURATION)
        result: Type | None
        if durations == 0:
            result = Type.DECIMAL if symbol == "/" else _common(left_type, right_type)
        elif symbol in ("+", "-"):
            result = Type.DURATION if durations == 2 else None
        elif symbol == "*":
            other = right_type if left_type is Type.DURATION else left_type
            result = Type.DURATION if durations == 1 and other is Type.INTEGER else None
        else:
            result = None
        if result is None:
            rules = {
                "+": "a duration adds only to a duration",
                "-": "a duration subtracts only from a duration",
                "*": "a duration multiplies only by a whole number",
                "/": "durations cannot be divided; compare them instead",
            }
            self.fail(
                node,
                f"expected operands that '{symbol}' can combine ({rules[symbol]}), found "
                f"{self.found(left, left_type)} and {self.found(right, right_type)}",
            )
        return replace(node, left=left, right=right, type=result)

    def in_list(self, node: InList) -> Node:
        operand = self.check(node.operand)
        assert operand.type is not None
        common = operand.type
        items: list[Constant] = []
        for item in node.items:
            typed = replace(item, type=item.kind)
            joined = _common(common, item.kind)
            if joined is None:
                self.fail(
                    item,
                    f"expected list items comparable with {self.found(operand, common)}, "
                    f"found {self.found(typed, item.kind)}",
                )
            common = joined
            items.append(typed)
        return replace(node, operand=operand, items=tuple(items), type=Type.BOOL)

    def call(self, node: Call) -> Node:
        function = FUNCTIONS.get(node.function)
        if function is None:
            if node.function in self.schema:
                self.fail(
                    node.name_span,
                    f"expected a function, found the feature {node.function!r} followed by (",
                )
            hint = difflib.get_close_matches(node.function, list(FUNCTIONS), n=1, cutoff=0.6)
            suggestion = f" (did you mean {hint[0]}?)" if hint else ""
            for prefix in ("no_", "not_"):
                positive = node.function.removeprefix(prefix)
                if positive != node.function and positive in FUNCTIONS:
                    call = self.text[node.name_span.end : node.span.end]
                    suggestion = f"; write not {positive}{call}"
            self.fail(
                node.name_span,
                f"expected one of the functions {', '.join(FUNCTIONS)}, "
                f"found the unknown function {node.function!r}{suggestion}",
            )
        for name, kind in function.features.items():
            provided = self.schema.get(name)
            if provided is None:
                self.fail(
                    node.name_span,
                    f"{function.name} reads the feature {name!r} ({kind.words}), which the "
                    "feature schema does not have",
                )
            if provided is not kind:
                self.fail(
                    node.name_span,
                    f"{function.name} reads the feature {name!r} as {kind.words}, but the "
                    f"feature schema has it as {provided.words}",
                )
        arguments = tuple(self.check(argument) for argument in node.arguments)
        count = len(arguments)
        usage = function.signature.split(" ->")[0]
        if function.kind in ("window", "absolute") and count != 1:
            self.fail(node, f"expected exactly one argument, as in {usage}, found {count}")
        if function.kind in ("first_known", "extreme") and count < 2:
            self.fail(node, f"expected two or more arguments, as in {usage}, found {count}")
        result: Type | None
        if function.kind == "window":
            (argument,) = arguments
            if not (isinstance(argument, Constant) and argument.kind is Type.DURATION):
                self.fail(
                    argument,
                    f"expected a duration written out, such as 72h, as the argument of "
                    f"{function.name}, found {self.found(argument, argument.type or Type.NULL)}",
                )
            if isinstance(argument.value, int) and argument.value < 0:
                self.fail(
                    argument, f"expected a duration of zero or more, found {self.source(argument)}"
                )
            result = Type.BOOL
        elif function.kind == "absolute":
            result = self.require(
                arguments[0],
                {Type.INTEGER, Type.DECIMAL, Type.DURATION},
                f"as the argument of {function.name}",
            )
            result = result or Type.INTEGER
        else:
            result = Type.NULL
            for argument in arguments:
                assert argument.type is not None
                joined = _common(result, argument.type)
                if joined is None:
                    self.fail(
                        argument,
                        f"expected arguments of {function.name} of one kind, found "
                        f"{self.found(argument, argument.type)} after {result.words}",
                    )
                result = joined
            if function.kind == "extreme" and result not in _ORDERED | {Type.NULL}:
                self.fail(
                    node,
                    f"expected numbers, durations or points in time as the arguments of "
                    f"{function.name}, found {result.words}",
                )
        return replace(node, arguments=arguments, type=result)


# ---------------------------------------------------------------------------------------------
# Evaluation in Python: the reference. The tree is compiled once into nested closures, so that
# judging a row costs a few function calls and no tree walk.


def compile_python(expression: Expression) -> Evaluator:
    """A function from a row (feature name -> value) to the rule's value: bool, int (integers
    and durations in seconds), Decimal, str, an aware datetime, or None for unknown.

    Row values must have the feature's type: bool; int; Decimal or int for a decimal (rounded
    to 12 places); str; int seconds for a duration; an aware datetime for a timestamp; or None.
    A missing feature or a value of another type raises `ExpressionError` at the feature."""
    _require_bound(expression)
    return _PythonCompiler(expression.text).compile(expression.root)


def compile_matcher(expression: Expression) -> Callable[[Mapping[str, object]], bool]:
    """A function from a row to whether the rule matches it: true, not false or unknown."""
    if expression.type not in (Type.BOOL, Type.NULL):
        _require_bound(expression)
        _fail(
            expression.text,
            expression.root.span.start,
            expression.root.span.end,
            f"expected a rule that is true or false, found {_words(expression.type)}",
        )
    evaluator = compile_python(expression)

    def matcher(row: Mapping[str, object]) -> bool:
        return evaluator(row) is True

    return matcher


def evaluate(expression: Expression, row: Mapping[str, object]) -> object:
    """The rule's value on one row (see `compile_python`); compiles once per expression."""
    evaluator = expression._evaluator
    if evaluator is None:
        evaluator = compile_python(expression)
        object.__setattr__(expression, "_evaluator", evaluator)
    return evaluator(row)


def matches(expression: Expression, row: Mapping[str, object]) -> bool:
    """Whether the rule is true on the row: unknown (null) is no match."""
    if expression.type not in (Type.BOOL, Type.NULL):
        compile_matcher(expression)  # raises the error that says why
    return evaluate(expression, row) is True


def _words(kind: Type | None) -> str:
    return "an unchecked rule" if kind is None else kind.words


def _require_bound(expression: Expression) -> None:
    if expression.type is None:
        raise ValueError(
            "the expression is not bound to a feature schema; call bind(expression, schema) first"
        )


class _PythonCompiler:
    def __init__(self, text: str) -> None:
        self.text = text

    def error(self, node: Node, reason: str) -> ExpressionError:
        return ExpressionError(self.text, node.span.column, reason, node.span.end - node.span.start)

    def compile(self, node: Node) -> Evaluator:
        match node:
            case Constant(value=value):
                return _constant(value)
            case Feature(name=name, type=kind):
                assert kind is not None
                return self.feature(node, name, kind)
            case Not(operand=operand):
                return _not(self.compile(operand))
            case Negate(operand=operand, type=kind):
                return self.negate(node, self.compile(operand), kind)
            case Logical(operator=word):
                operands = tuple(self.compile(part) for part in _flatten(node, word))
                return _all(operands) if word == "and" else _any(operands)
            case Comparison(operator=symbol, left=left, right=right):
                if isinstance(right, Constant) and right.value is not None:
                    return _compare_constant(_COMPARE[symbol], self.compile(left), right.value)
                return _compare(_COMPARE[symbol], self.compile(left), self.compile(right))
            case Arithmetic():
                return self.arithmetic(node)
            case IsNull(operand=operand, negated=negated):
                return _is_null(self.compile(operand), negated)
            case InList(operand=operand, items=items, negated=negated):
                return _in_list(self.compile(operand), items, negated)
            case Call():
                return self.call(node)
        raise AssertionError(node)  # pragma: no cover - every node kind is matched above

    def feature(self, node: Node, name: str, kind: Type) -> Evaluator:
        error = self.error

        def missing() -> ExpressionError:
            return error(node, f"expected the row to hold the feature {name!r}, found none")

        def wrong(value: object) -> ExpressionError:
            return error(
                node,
                f"expected the feature {name!r} to hold {kind.words} or null, found "
                f"{type(value).__name__} {value!r}",
            )

        if kind is Type.BOOL:

            def read_bool(row: Mapping[str, object]) -> object:
                try:
                    value = row[name]
                except KeyError:
                    raise missing() from None
                if value is None or value is True or value is False:
                    return value
                raise wrong(value)

            return read_bool

        if kind in (Type.INTEGER, Type.DURATION):

            def read_integer(row: Mapping[str, object]) -> object:
                try:
                    value = row[name]
                except KeyError:
                    raise missing() from None
                if value is None or (type(value) is int and INTEGER_MIN <= value <= INTEGER_MAX):
                    return value
                raise wrong(value)

            return read_integer

        if kind is Type.DECIMAL:

            def read_decimal(row: Mapping[str, object]) -> object:
                try:
                    value = row[name]
                except KeyError:
                    raise missing() from None
                if value is None:
                    return None
                if type(value) is int:
                    value = Decimal(value)
                if type(value) is Decimal and value.is_finite():
                    try:
                        # As the SQL engines' CAST to DECIMAL(38, 12): half away from zero.
                        return value.quantize(_QUANTUM, context=_STORED)
                    except InvalidOperation:
                        raise error(
                            node,
                            f"expected the feature {name!r} to hold a decimal number below "
                            f"10^{DECIMAL_INTEGER_DIGITS} in magnitude, found {value}",
                        ) from None
                raise wrong(value)

            return read_decimal

        if kind is Type.STRING:

            def read_string(row: Mapping[str, object]) -> object:
                try:
                    value = row[name]
                except KeyError:
                    raise missing() from None
                if value is None or type(value) is str:
                    return value
                raise wrong(value)

            return read_string

        def read_timestamp(row: Mapping[str, object]) -> object:
            try:
                value = row[name]
            except KeyError:
                raise missing() from None
            if value is None or (isinstance(value, datetime) and value.utcoffset() is not None):
                return value
            raise wrong(value)

        return read_timestamp

    def negate(self, node: Node, operand: Evaluator, kind: Type | None) -> Evaluator:
        if kind is Type.DECIMAL:

            def negate_decimal(row: Mapping[str, object]) -> object:
                value = operand(row)
                return None if value is None else _EXACT.minus(value)  # type: ignore[arg-type]

            return negate_decimal
        out_of_range = self.out_of_range(node)

        def negate_integer(row: Mapping[str, object]) -> object:
            value = operand(row)
            if value is None:
                return None
            result = -value  # type: ignore[operator]
            if INTEGER_MIN <= result <= INTEGER_MAX:
                return result
            raise out_of_range(result)

        return negate_integer

    def out_of_range(self, node: Node) -> Callable[[object], ExpressionError]:
        def error(value: object) -> ExpressionError:
            if isinstance(value, Decimal):
                limit = f"below 10^{DECIMAL_INTEGER_DIGITS} in magnitude"
            else:
                limit = f"from {INTEGER_MIN} to {INTEGER_MAX}"
            return self.error(node, f"expected a result {limit}, found {value}")

        return error

    def arithmetic(self, node: Arithmetic) -> Evaluator:
        left, right = self.compile(node.left), self.compile(node.right)
        out_of_range = self.out_of_range(node)
        symbol = node.operator
        if symbol == "/":
            divide = _divide

            def division(row: Mapping[str, object]) -> object:
                a = left(row)
                if a is None:
                    return None
                b = right(row)
                if b is None:
                    return None
                result = divide(a, b)  # type: ignore[arg-type]
                if result is None or -_DECIMAL_BOUND < result < _DECIMAL_BOUND:
                    return result
                raise out_of_range(result)

            return division
        if node.type is Type.DECIMAL:
            operation: Callable[[Decimal | int, Decimal | int], Decimal] = {
                "+": _EXACT.add,
                "-": _EXACT.subtract,
                "*": _multiply,
            }[symbol]

            def decimal(row: Mapping[str, object]) -> object:
                a = left(row)
                if a is None:
                    return None
                b = right(row)
                if b is None:
                    return None
                result = operation(a, b)  # type: ignore[arg-type]
                if -_DECIMAL_BOUND < result < _DECIMAL_BOUND:
                    return result
                raise out_of_range(result)

            return decimal
        integer_operation = {"+": operator.add, "-": operator.sub, "*": operator.mul}[symbol]

        def integer(row: Mapping[str, object]) -> object:
            a = left(row)
            if a is None:
                return None
            b = right(row)
            if b is None:
                return None
            result = integer_operation(a, b)
            if INTEGER_MIN <= result <= INTEGER_MAX:
                return result
            raise out_of_range(result)

        return integer

    def call(self, node: Call) -> Evaluator:
        function = FUNCTIONS[node.function]
        arguments = [self.compile(argument) for argument in node.arguments]
        if node.type is Type.DECIMAL:
            arguments = [
                _to_decimal(evaluator) if argument.type is Type.INTEGER else evaluator
                for evaluator, argument in zip(arguments, node.arguments, strict=True)
            ]

        def feature(name: str) -> Evaluator:
            return self.feature(node, name, function.features[name])

        evaluator = function.python(arguments, feature)
        if function.kind != "absolute" or node.type is Type.DECIMAL:
            return evaluator
        out_of_range = self.out_of_range(node)

        def in_range(row: Mapping[str, object]) -> object:
            value = evaluator(row)
            if value is None or value <= INTEGER_MAX:  # type: ignore[operator]
                return value
            raise out_of_range(value)

        return in_range


def _flatten(node: Node, word: str) -> Iterator[Node]:
    # a and b and c evaluates as one n-ary conjunction: fewer calls per row, same logic.
    if isinstance(node, Logical) and node.operator == word:
        yield from _flatten(node.left, word)
        yield from _flatten(node.right, word)
    else:
        yield node


def _constant(value: object) -> Evaluator:
    def constant(row: Mapping[str, object]) -> object:
        return value

    return constant


def _to_decimal(evaluator: Evaluator) -> Evaluator:
    def to_decimal(row: Mapping[str, object]) -> object:
        value = evaluator(row)
        return None if value is None else Decimal(value)  # type: ignore[arg-type]

    return to_decimal


def _not(operand: Evaluator) -> Evaluator:
    def negation(row: Mapping[str, object]) -> object:
        value = operand(row)
        return None if value is None else not value

    return negation


def _all(operands: tuple[Evaluator, ...]) -> Evaluator:
    def conjunction(row: Mapping[str, object]) -> object:
        # Kleene: false wins, then unknown, then true.
        unknown = False
        for operand in operands:
            value = operand(row)
            if value is False:
                return False
            if value is None:
                unknown = True
        return None if unknown else True

    return conjunction


def _any(operands: tuple[Evaluator, ...]) -> Evaluator:
    def disjunction(row: Mapping[str, object]) -> object:
        # Kleene: true wins, then unknown, then false.
        unknown = False
        for operand in operands:
            value = operand(row)
            if value is True:
                return True
            if value is None:
                unknown = True
        return None if unknown else False

    return disjunction


_COMPARE: Final[Mapping[str, Callable[[Any, Any], object]]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _compare(
    comparison: Callable[[object, object], object], left: Evaluator, right: Evaluator
) -> Evaluator:
    # int and Decimal compare exactly in Python, as they do in SQL once cast to DECIMAL(38, 12).
    def compare(row: Mapping[str, object]) -> object:
        a = left(row)
        if a is None:
            return None
        b = right(row)
        if b is None:
            return None
        return comparison(a, b)

    return compare


def _compare_constant(
    comparison: Callable[[object, object], object], left: Evaluator, constant: object
) -> Evaluator:
    # The common `feature < literal`: one call fewer per row than `_compare`.
    def compare_constant(row: Mapping[str, object]) -> object:
        a = left(row)
        return None if a is None else comparison(a, constant)

    return compare_constant


def _is_null(operand: Evaluator, negated: bool) -> Evaluator:
    if negated:

        def is_not_null(row: Mapping[str, object]) -> object:
            return operand(row) is not None

        return is_not_null

    def is_null(row: Mapping[str, object]) -> object:
        return operand(row) is None

    return is_null


def _in_list(operand: Evaluator, items: tuple[Constant, ...], negated: bool) -> Evaluator:
    # Decimal and int hash alike when equal (hash(Decimal("2.0")) == hash(2)), so one set
    # serves a list that mixes them.
    known = frozenset(item.value for item in items if item.value is not None)
    holds_null = any(item.value is None for item in items)
    found: object = not negated
    # Not equal to any item: unknown when an item is unknown (it might have been equal).
    not_found: object = None if holds_null else negated

    def in_list(row: Mapping[str, object]) -> object:
        value = operand(row)
        if value is None:
            return None
        return found if value in known else not_found

    return in_list


def _multiply(a: Decimal | int, b: Decimal | int) -> Decimal:
    return _EXACT.multiply(a, b).quantize(_QUANTUM, context=_EXACT)


def _divide(a: Decimal | int, b: Decimal | int) -> Decimal | None:
    """a / b rounded to 12 places, half away from zero; None when b is zero.

    Computed on integers so that there is exactly one rounding: both operands have at most 12
    places, so a * 10^24 and b * 10^12 are whole numbers whose quotient is the result * 10^12."""
    if not b:
        return None
    numerator = int(_EXACT.scaleb(Decimal(a), 2 * DECIMAL_PLACES))
    denominator = int(_EXACT.scaleb(Decimal(b), DECIMAL_PLACES))
    quotient, remainder = divmod(abs(numerator), abs(denominator))
    if 2 * remainder >= abs(denominator):
        quotient += 1
    if (numerator < 0) != (denominator < 0):
        quotient = -quotient
    return _EXACT.scaleb(Decimal(quotient), -DECIMAL_PLACES)
