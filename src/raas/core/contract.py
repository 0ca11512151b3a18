"""Contracts: the versioned, effective-dated agreement between a vendor and a buyer.

A contract is a YAML file that a buyer's finance lead can read. This module holds its typed form
and its loader: YAML -> JSON Schema (`contract.schema.json`) -> `Contract`, refusing a bad file
with the file, the line and the field.

How the loader reads a file, and why:

1. PyYAML composes the node tree (SafeLoader), which keeps the line of every key and value.
2. The tree becomes plain data by this module's own scalar constructors: a number is a `Decimal`
   built from its source text (never a float), a `2026-11-01` is a `date`, and a scalar whose
   YAML 1.1 reading would surprise a reader (octal `072`, `1_000`, `1:30`, `.nan`, a time of day)
   stays the text it was written as, so that the schema refuses it by name.
3. JSON Schema checks shape, types and ranges; then the checks a schema cannot express run
   (IANA time zone, ISO 4217 currency, dates in order, sign of a price).
4. Every failure found in steps 1 to 3 becomes a `ContractError`; the first in document order is
   raised. A missing field comes at the end of the mapping that should hold it.
5. msgspec converts the valid data to `Contract`.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

import jsonschema
import msgspec
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from raas.core.money import ROUNDING_MODES, Rounding, is_known_currency
from raas.core.periods import is_known_time_zone, start_of_day
from raas.errors import ContractError

__all__ = [
    "CONTRACT_BYTES_MAX",
    "DOCUMENT_FIELD",
    "NESTING_DEPTH_MAX",
    "PRICE_EXCLUSIVE_MAX",
    "PRICE_PLACES_MAX",
    "RECONTACT_WINDOW_HOURS_MAX",
    "AiResolutionRule",
    "Contract",
    "HandoffRule",
    "Outcomes",
    "Rounding",
    "contract_errors",
    "contract_schema",
    "load_contract",
    "parse_contract",
]

# A contract is a page of text; anything much larger is a mistake or an attack on the parser.
CONTRACT_BYTES_MAX: Final = 1_048_576
RECONTACT_WINDOW_HOURS_MAX: Final = 8760  # one year
# Bounds on a unit price: far beyond any real one, and small enough that no amount computed
# from it needs an unbounded decimal context.
PRICE_EXCLUSIVE_MAX: Final = Decimal(10) ** 12
PRICE_PLACES_MAX: Final = 12
# A contract nests three levels deep; a limit keeps PyYAML's recursive composer off the stack's end.
NESTING_DEPTH_MAX: Final = 32
# The `field` of an error that belongs to the file as a whole (YAML syntax, an empty file).
DOCUMENT_FIELD: Final = "(document)"

_CONTRACT_ID_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9-]*")


def _check_price(price: Decimal, field: str) -> None:
    if isinstance(price, float) or not isinstance(price, Decimal):
        raise TypeError(f"{field} must be a Decimal, found {type(price).__name__} {price!r}")
    if not price.is_finite() or price.is_signed():
        raise ValueError(f"{field} must be a finite, non-negative Decimal, found {price}")
    if price >= PRICE_EXCLUSIVE_MAX or _decimal_places(price) > PRICE_PLACES_MAX:
        raise ValueError(
            f"{field} must be below 10^12 with at most {PRICE_PLACES_MAX} decimal places, "
            f"found {price}"
        )


def _decimal_places(amount: Decimal) -> int:
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int), "only finite amounts have decimal places"
    return max(-exponent, 0)


class AiResolutionRule(msgspec.Struct, frozen=True, kw_only=True):
    """Billable when no human took the episode over and the customer confirmed, or did not
    come back about the same intent within `recontact_window_hours` of the AI's last answer.

    `price` is per resolved problem, in the contract's currency; it may be finer than the
    currency's minor unit (0.0125 USD): rounding happens per invoice line, not per unit.
    """

    price: Decimal
    recontact_window_hours: int = 72

    def __post_init__(self) -> None:
        _check_price(self.price, "outcomes.ai_resolution.price")
        hours = self.recontact_window_hours
        if isinstance(hours, bool) or not 1 <= hours <= RECONTACT_WINDOW_HOURS_MAX:
            raise ValueError(
                f"outcomes.ai_resolution.recontact_window_hours must be 1.."
                f"{RECONTACT_WINDOW_HOURS_MAX}, found {hours!r}"
            )


class HandoffRule(msgspec.Struct, frozen=True, kw_only=True):
    """An episode a human took over; free unless the contract prices it."""

    price: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        _check_price(self.price, "outcomes.handoff.price")


class Outcomes(msgspec.Struct, frozen=True, kw_only=True):
    """The outcomes the contract names, each with the rule that makes an episode one."""

    ai_resolution: AiResolutionRule
    handoff: HandoffRule = HandoffRule()


class Contract(msgspec.Struct, frozen=True, kw_only=True):
    """One version of a contract, valid by construction.

    Dates are days in `time_zone`. `effective_from` is the first day this version applies;
    `effective_until`, when given, is the first day it no longer applies (excluded), so that a
    version ending on D and the next one starting on D leave neither gap nor overlap.
    """

    contract: str
    version: int
    effective_from: date
    vendor: str
    buyer: str
    currency: str
    time_zone: str
    outcomes: Outcomes
    effective_until: date | None = None
    period: Literal["month"] = "month"
    count: Literal["per_problem"] = "per_problem"
    rounding: Rounding = "half_even"

    def __post_init__(self) -> None:
        # The loader reports these with file and line; this second check guards contracts built
        # in code, so that no invalid Contract exists anywhere.
        if not _CONTRACT_ID_PATTERN.fullmatch(self.contract):
            raise ValueError(f"contract id {self.contract!r} must match ^[a-z0-9][a-z0-9-]*$")
        if isinstance(self.version, bool) or self.version < 1:
            raise ValueError(f"version must be an integer >= 1, found {self.version!r}")
        if not is_known_currency(self.currency):
            raise ValueError(f"currency {self.currency!r} is not a known ISO 4217 code")
        if not is_known_time_zone(self.time_zone):
            raise ValueError(f"time_zone {self.time_zone!r} is not an IANA time zone")
        if self.effective_until is not None and self.effective_until <= self.effective_from:
            raise ValueError(
                f"effective_until {self.effective_until} must be after "
                f"effective_from {self.effective_from}"
            )
        if self.rounding not in ROUNDING_MODES:
            raise ValueError(f"rounding {self.rounding!r} is not one of {list(ROUNDING_MODES)}")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def effective_from_utc(self) -> datetime:
        """First instant of `effective_from` in the contract's zone, as an aware UTC datetime."""
        return start_of_day(self.effective_from, self.time_zone)

    def effective_until_utc(self) -> datetime | None:
        """First instant at which this version no longer applies (UTC), or None if open-ended."""
        if self.effective_until is None:
            return None
        return start_of_day(self.effective_until, self.time_zone)

    def is_effective_at(self, instant: datetime) -> bool:
        """True when this version applies at `instant` (an aware datetime)."""
        until = self.effective_until_utc()
        return self.effective_from_utc() <= instant and (until is None or instant < until)


# ---------------------------------------------------------------------------------------------
# Reading YAML with positions


@dataclass(frozen=True)
class _Place:
    """Where one value sits in the file: the key that names it (absent for the document) and
    the value's own node."""

    key: ScalarNode | None
    value: Node


_Path = tuple[str, ...]


@dataclass(frozen=True, order=True)
class _Finding:
    """One error with the position that orders it among the others: 0-based line and column,
    then a rank. A mapping's missing fields are found where the mapping ends, which is where
    the next token starts: they rank first there, in the order the schema requires them."""

    order_line: int
    order_column: int
    order_rank: int
    field: str
    reason: str
    line: int | None = dataclass_field(default=None, compare=False)  # 1-based, as reported


class _TooDeep(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


class _ContractLoader(yaml.SafeLoader):
    """SafeLoader that remembers which key it is composing, to name the field of a YAML error,
    and that refuses nesting deeper than any contract needs (PyYAML composes recursively)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.key_path: list[str] = []
        self.depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self.depth += 1
        if self.depth > NESTING_DEPTH_MAX:
            event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in the stubs
            raise _TooDeep(event.start_mark.line + 1)
        # PyYAML passes the key node when composing a mapping's value, the position when
        # composing a list item, and None when composing a key.
        if isinstance(parent, MappingNode) and isinstance(index, ScalarNode):
            step: str | None = str(index.value)
        elif isinstance(parent, SequenceNode) and isinstance(index, int):
            step = str(index)
        else:
            step = None
        if step is not None:
            self.key_path.append(step)
        node: Node | None = super().compose_node(parent, index)
        # Popped only on success: after a syntax error the path names where it happened.
        if step is not None:
            self.key_path.pop()
        self.depth -= 1
        return node


_TAG = "tag:yaml.org,2002:"
_PLAIN_INTEGER: Final = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_PLAIN_DECIMAL: Final = re.compile(r"[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?")
_PLAIN_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _construct_integer(text: str) -> int | str:
    # YAML 1.1 reads 072 as octal 58 and 1:30 as 90; a contract says what it means or fails.
    return int(text) if _PLAIN_INTEGER.fullmatch(text) else text


def _construct_decimal(text: str) -> Decimal | str:
    # From the source text, so 0.99 is exactly Decimal("0.99"); .nan and .inf stay text.
    if not _PLAIN_DECIMAL.fullmatch(text):
        return text
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid literals
        return text


def _construct_date(text: str) -> date | str:
    # A time of day, or a date that does not exist (2026-02-30), stays text for the schema.
    if not _PLAIN_DATE.fullmatch(text):
        return text
    try:
        return date.fromisoformat(text)
    except ValueError:
        return text


def _construct_boolean(text: str) -> bool:
    return text.lower() in {"yes", "true", "on"}


_SCALAR_CONSTRUCTORS: Final[dict[str, Callable[[str], object]]] = {
    _TAG + "str": lambda text: text,
    _TAG + "int": _construct_integer,
    _TAG + "float": _construct_decimal,
    _TAG + "timestamp": _construct_date,
    _TAG + "bool": _construct_boolean,
    _TAG + "null": lambda text: None,
}


_RANK_AT_NODE: Final = 1 << 16  # after any missing field found at the same position


def _finding_at(node: Node, field: str, reason: str) -> _Finding:
    mark = node.start_mark
    return _Finding(mark.line, mark.column, _RANK_AT_NODE, field, reason, mark.line + 1)


class _Reader:
    """Turns a composed node tree into plain data, keeping the place of every value."""

    def __init__(self) -> None:
        self.places: dict[_Path, _Place] = {}
        self.findings: list[_Finding] = []
        self.refused: list[_Path] = []  # values left out of the data, each with its finding
        self._seen: set[int] = set()

    def read(self, node: Node, path: _Path, key: ScalarNode | None) -> Any:
        self.places[path] = _Place(key, node)
        field = _dotted(path)
        if id(node) in self._seen:
            # An alias: a value stated elsewhere. Refused so that every figure is read where it
            # stands, and so that an alias bomb or a recursive alias cannot blow up the reader.
            # The node is the anchored one, so the key is what points at the alias's line.
            reason = "expected a value written out, found an alias (*name)"
            self.findings.append(_finding_at(key or node, field, reason))
            self.refused.append(path)
            return None
        self._seen.add(id(node))
        if isinstance(node, MappingNode):
            return self._read_mapping(node, path)
        if isinstance(node, SequenceNode):
            if node.tag != _TAG + "seq":
                self.findings.append(_finding_at(node, field, _unsupported_tag(node)))
            return [
                self.read(item, (*path, str(index)), None) for index, item in enumerate(node.value)
            ]
        constructor = _SCALAR_CONSTRUCTORS.get(node.tag)
        if constructor is None:
            self.findings.append(_finding_at(node, field, _unsupported_tag(node)))
            return node.value
        return constructor(node.value)

    def _read_mapping(self, node: MappingNode, path: _Path) -> dict[str, Any]:
        if node.tag != _TAG + "map":
            self.findings.append(_finding_at(node, _dotted(path), _unsupported_tag(node)))
        data: dict[str, Any] = {}
        first_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag not in (
                _TAG + "str",
                _TAG + "merge",
            ):
                found = _describe(key_node)
                self.findings.append(
                    _finding_at(key_node, _dotted(path), f"expected a field name, found {found}")
                )
                continue
            name = key_node.value
            child_path = (*path, name)
            if key_node.tag == _TAG + "merge":
                self.findings.append(
                    _finding_at(
                        key_node,
                        _dotted(child_path),
                        "expected fields written out, found a merge key (<<)",
                    )
                )
                continue
            if name in data:
                self.findings.append(
                    _finding_at(
                        key_node,
                        _dotted(child_path),
                        f"expected each field once, found a second {name!r} "
                        f"(the first is on line {first_lines[name]})",
                    )
                )
                continue
            first_lines[name] = key_node.start_mark.line + 1
            data[name] = self.read(value_node, child_path, key_node)
        return data


def _unsupported_tag(node: Node) -> str:
    return f"expected a plain value, found the YAML tag {node.tag}"


def _dotted(path: _Path) -> str:
    return ".".join(path) if path else DOCUMENT_FIELD


def _describe(node: Node) -> str:
    """What a node holds, in words, quoting its source text: "number -0.5", "text 'abc'"."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    assert isinstance(node, ScalarNode)
    text = node.value
    if node.tag == _TAG + "null":
        return "nothing (null)" if text in ("", "~") else f"null {text!r}"
    kind = {
        _TAG + "int": "number",
        _TAG + "float": "number",
        _TAG + "bool": "boolean",
        # 2026-02-30 looks like a date to YAML, but it is none.
        _TAG + "timestamp": "date" if isinstance(_construct_date(text), date) else "text",
    }.get(node.tag, "text")
    if kind != "text" and node.style is None:
        return f"{kind} {text}"
    return f"text {text!r}"


# ---------------------------------------------------------------------------------------------
# Schema


@cache
def _schema() -> dict[str, Any]:
    text = resources.files("raas.core").joinpath("contract.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def contract_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of contract files, as shipped in the package (a copy:
    changing it changes nothing the loader does)."""
    return copy.deepcopy(_schema())


@cache
def _validator() -> Any:
    schema = _schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def _schema_view(value: Any) -> Any:
    # JSON has no dates: the schema sees them as the ISO text and checks them with format "date".
    if isinstance(value, dict):
        return {key: _schema_view(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_schema_view(item) for item in value]
    if isinstance(value, date):
        return value.isoformat()
    return value


_TYPE_WORDS: Final = {
    "object": "a mapping",
    "array": "a list",
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "nothing",
}


def _resolve(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    # Only local references into $defs are used in the contract schema.
    reference = schema.get("$ref")
    if isinstance(reference, str) and reference.startswith("#/$defs/"):
        resolved: Mapping[str, Any] = _schema()["$defs"][reference.removeprefix("#/$defs/")]
        return resolved
    return schema


def _expected(schema: Mapping[str, Any]) -> str:
    schema = _resolve(schema)
    description = schema.get("description")
    if isinstance(description, str):
        return description
    if "enum" in schema:
        return "one of " + ", ".join(repr(item) for item in schema["enum"])
    kinds = schema.get("type", [])
    kinds = [kinds] if isinstance(kinds, str) else kinds
    return " or ".join(_TYPE_WORDS.get(kind, kind) for kind in kinds) or "a valid value"


def _schema_findings(
    error: jsonschema.ValidationError, places: Mapping[_Path, _Place]
) -> Iterator[_Finding]:
    path: _Path = tuple(str(part) for part in error.absolute_path)
    place = places.get(path)
    if place is None:  # pragma: no cover - every instance path was read from the tree
        yield _Finding(0, 0, _RANK_AT_NODE, _dotted(path), error.message)
        return
    keyword = error.validator
    if keyword == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        for name in error.instance:
            if name in allowed:
                continue
            child = places[(*path, name)]
            assert child.key is not None
            hint = difflib.get_close_matches(name, allowed, n=1, cutoff=0.8)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            reason = (
                f"expected one of the fields {', '.join(allowed)}, "
                f"found the unknown field {name!r}{suggestion}"
            )
            yield _finding_at(child.key, _dotted((*path, name)), reason)
        return
    if keyword == "required":
        end = place.value.end_mark
        # Reported on the key that opens the mapping; a top-level field has no such line.
        line = place.key.start_mark.line + 1 if place.key is not None else None
        for rank, name in enumerate(error.validator_value):
            if name in error.instance:
                continue
            expected = _expected(error.schema.get("properties", {}).get(name, {}))
            reason = f"required field is missing; expected {expected}"
            yield _Finding(end.line, end.column, rank, _dotted((*path, name)), reason, line)
        return
    reason = f"expected {_expected(error.schema)}, found {_describe(place.value)}"
    yield _finding_at(place.value, _dotted(path), reason)


def _semantic_findings(
    data: Mapping[str, Any], places: Mapping[_Path, _Place]
) -> Iterator[_Finding]:
    """The checks JSON Schema cannot express; each runs only on a value of the right type, so it
    never repeats a type error that the schema already reported."""

    def at(path: _Path, reason: str) -> _Finding:
        return _finding_at(places[path].value, _dotted(path), reason)

    time_zone = data.get("time_zone")
    if isinstance(time_zone, str) and time_zone and not is_known_time_zone(time_zone):
        yield at(
            ("time_zone",),
            f"expected an IANA time zone such as Europe/Berlin or America/New_York, "
            f"found {time_zone!r}",
        )
    currency = data.get("currency")
    well_formed = isinstance(currency, str) and re.fullmatch("[A-Z]{3}", currency) is not None
    if well_formed and not is_known_currency(str(currency)):
        yield at(
            ("currency",),
            f"expected an ISO 4217 currency code such as USD, EUR or JPY, found {currency!r}",
        )
    start, until = data.get("effective_from"), data.get("effective_until")
    if isinstance(start, date) and isinstance(until, date) and until <= start:
        yield at(
            ("effective_until",),
            f"expected a date after effective_from ({start.isoformat()}), "
            f"found {until.isoformat()}",
        )
    outcomes = data.get("outcomes")
    if isinstance(outcomes, dict):
        for name, rule in outcomes.items():
            price = rule.get("price") if isinstance(rule, dict) else None
            if not isinstance(price, Decimal) or not price.is_finite():
                continue
            path = ("outcomes", name, "price")
            found = _describe(places[path].value)
            # -0 passes "minimum: 0" but would print as -0.00 on an invoice.
            if price.is_signed():
                yield at(path, f"expected a non-negative price, found {found}")
            elif _decimal_places(price) > PRICE_PLACES_MAX:
                yield at(
                    path,
                    f"expected at most {PRICE_PLACES_MAX} decimal places, found "
                    f"{_decimal_places(price)} in {found}",
                )


def _syntax_finding(error: yaml.MarkedYAMLError, field: str, text_length: int) -> _Finding:
    problem = ", ".join(part for part in (error.context, error.problem) if part)
    reason = f"expected valid YAML, found a syntax error: {problem}"
    mark, context = error.problem_mark, error.context_mark
    if mark is not None and context is not None and mark.index >= text_length:
        # The scanner ran off the end of the file (an unclosed quote or bracket): the line
        # where the unfinished construct began is the one to fix.
        mark = context
        reason += " (still open at the end of the file)"
    elif mark is not None and context is not None and context.line != mark.line:
        reason += f" (while reading from line {context.line + 1})"
    mark = mark or context
    if mark is None:
        return _Finding(0, 0, 0, field, reason)
    return _Finding(0, 0, 0, field, reason, mark.line + 1)


def _findings(text: str) -> tuple[list[_Finding], Any]:
    loader: _ContractLoader | None = None
    try:
        # The reader checks the whole text for control characters as the loader is built.
        loader = _ContractLoader(text)
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as error:
        field = _dotted(tuple(loader.key_path) if loader is not None else ())
        return [_syntax_finding(error, field, len(text))], None
    except _TooDeep as error:
        # The full path would be dozens of steps long; the top-level field says where to look.
        field = _dotted(tuple(loader.key_path[:1]) if loader is not None else ())
        reason = f"expected at most {NESTING_DEPTH_MAX} levels of nesting, found more"
        return [_Finding(0, 0, 0, field, reason, error.line)], None
    except yaml.reader.ReaderError as error:  # a control character, which YAML forbids
        line = text.count("\n", 0, error.position) + 1
        character = error.character if isinstance(error.character, int) else ord(error.character)
        reason = f"expected printable text, found the control character {character:#06x}"
        return [_Finding(0, 0, 0, DOCUMENT_FIELD, reason, line)], None
    finally:
        if loader is not None:
            loader.dispose()
    if root is None:
        reason = (
            "expected a contract (a mapping of fields such as contract, version, ...), "
            "found an empty document"
        )
        return [_Finding(0, 0, 0, DOCUMENT_FIELD, reason)], None
    reader = _Reader()
    data = reader.read(root, (), None)
    checked: list[_Finding] = []
    for schema_error in _validator().iter_errors(_schema_view(data)):
        checked.extend(_schema_findings(schema_error, reader.places))
    if isinstance(data, dict):
        checked.extend(_semantic_findings(data, reader.places))
    # A refused alias already has its error; what the schema says of its stand-in is noise.
    refused = [_dotted(path) for path in reader.refused]

    def under_refused(finding: _Finding) -> bool:
        field = finding.field
        return any(field == path or field.startswith(path + ".") for path in refused)

    kept = [finding for finding in checked if not under_refused(finding)]
    return sorted(set(reader.findings + kept)), data


# ---------------------------------------------------------------------------------------------
# Public entry points


def _check(text: str, file: str) -> tuple[list[ContractError], Any]:
    if len(text.encode("utf-8", "surrogatepass")) > CONTRACT_BYTES_MAX:
        reason = f"expected at most {CONTRACT_BYTES_MAX} bytes, found {len(text)} characters"
        return [ContractError(file, None, DOCUMENT_FIELD, reason)], None
    findings, data = _findings(text)
    return [ContractError(file, item.line, item.field, item.reason) for item in findings], data


def contract_errors(text: str, file: str = "<string>") -> list[ContractError]:
    """Every error in a contract's text, in document order; empty when it is valid."""
    errors, _ = _check(text, file)
    return errors


def parse_contract(text: str, file: str = "<string>") -> Contract:
    """The `Contract` written in `text`; raises `ContractError` for the first error in document
    order. `file` names the source in errors."""
    errors, data = _check(text, file)
    if errors:
        raise errors[0]
    try:
        return msgspec.convert(data, Contract, strict=True)
    except msgspec.ValidationError as error:  # pragma: no cover - the checks admit only valid data
        reason = f"expected a valid contract, found: {error}"
        raise ContractError(file, None, DOCUMENT_FIELD, reason) from error


def load_contract(path: str | os.PathLike[str]) -> Contract:
    """The `Contract` in the YAML file at `path` (UTF-8); raises `ContractError` for the first
    error, including a file that cannot be read."""
    file = os.fspath(path)
    try:
        with open(file, "rb") as handle:
            raw = handle.read(CONTRACT_BYTES_MAX + 1)
    except OSError as error:
        reason = f"expected a readable file, found: {error.strerror or error}"
        raise ContractError(file, None, DOCUMENT_FIELD, reason) from error
    if len(raw) > CONTRACT_BYTES_MAX:
        reason = f"expected at most {CONTRACT_BYTES_MAX} bytes, found a larger file"
        raise ContractError(file, None, DOCUMENT_FIELD, reason)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        reason = f"expected UTF-8 text, found byte {raw[error.start]:#04x}"
        raise ContractError(file, line, DOCUMENT_FIELD, reason) from error
    return parse_contract(text, file)
