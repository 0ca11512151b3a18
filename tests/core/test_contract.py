"""The contract loader and the typed contract: exact values from the file, a schema that matches
the type, and errors that always name the file, the line and the field. What would break: a price
read through float, a schema drifting from `Contract`, or a bad file slipping through as a
crash instead of a `ContractError`."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raas.core.contract import (
    CONTRACT_BYTES_MAX,
    DOCUMENT_FIELD,
    AiResolutionRule,
    Contract,
    HandoffRule,
    Outcomes,
    contract_errors,
    contract_schema,
    load_contract,
    parse_contract,
)
from raas.errors import ContractError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "contracts" / "acme-support.yaml"
GOOD = Path(__file__).resolve().parents[1] / "cases" / "contracts" / "good"

ACME = Contract(
    contract="acme-support",
    version=1,
    effective_from=date(2026, 11, 1),
    vendor="helpdesk-ai",
    buyer="acme",
    currency="USD",
    time_zone="Europe/Berlin",
    period="month",
    count="per_problem",
    outcomes=Outcomes(
        ai_resolution=AiResolutionRule(recontact_window_hours=72, price=Decimal("0.99")),
        handoff=HandoffRule(price=Decimal(0)),
    ),
    rounding="half_even",
)


def test_example_loads_to_exact_typed_values() -> None:
    contract = load_contract(EXAMPLE)
    assert contract == ACME
    price = contract.outcomes.ai_resolution.price
    assert type(price) is Decimal
    assert price.as_tuple() == Decimal("0.99").as_tuple()  # not 0.98999999999999999111...
    assert type(contract.effective_from) is date
    assert type(contract.outcomes.handoff.price) is Decimal


def test_defaults_fill_what_a_minimal_contract_leaves_out() -> None:
    contract = load_contract(GOOD / "minimal.yaml")
    assert contract.outcomes.ai_resolution == AiResolutionRule(price=Decimal("1.5"))
    assert contract.outcomes.ai_resolution.recontact_window_hours == 72
    assert contract.outcomes.handoff.price == Decimal(0)
    assert (contract.period, contract.count, contract.rounding) == (
        "month",
        "per_problem",
        "half_even",
    )
    assert contract.effective_until is None


def test_unit_prices_finer_than_the_minor_unit_are_kept_exactly() -> None:
    contract = load_contract(GOOD / "fine-unit-price.yaml")
    assert str(contract.outcomes.ai_resolution.price) == "0.0125"
    assert str(contract.outcomes.handoff.price) == "12.5"  # JPY has no minor unit; still legal
    assert contract.effective_until == date(2028, 1, 1)
    assert contract.rounding == "down"
    flow = load_contract(GOOD / "flow-style.yaml")
    assert str(flow.outcomes.ai_resolution.price) == "0.125"
    assert str(flow.outcomes.handoff.price) == "0.000"
    assert flow.effective_from == date(2026, 12, 1)


def test_schema_is_valid_draft_2020_12_and_matches_the_type() -> None:
    """The schema and `Contract` describe one format: same fields, same required ones."""
    schema = contract_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"

    def fields(struct: Any) -> tuple[set[str], set[str]]:
        every = msgspec.structs.fields(struct)
        required = {
            field.name
            for field in every
            if field.default is msgspec.NODEFAULT and field.default_factory is msgspec.NODEFAULT
        }
        return {field.name for field in every}, required

    for struct, node in [
        (Contract, schema),
        (Outcomes, schema["properties"]["outcomes"]),
        (AiResolutionRule, schema["properties"]["outcomes"]["properties"]["ai_resolution"]),
        (HandoffRule, schema["properties"]["outcomes"]["properties"]["handoff"]),
    ]:
        names, required = fields(struct)
        assert set(node["properties"]) == names, struct.__name__
        assert set(node.get("required", [])) == required, struct.__name__
        assert node["additionalProperties"] is False, struct.__name__


def test_every_object_in_the_schema_refuses_unknown_fields() -> None:
    def objects(node: object) -> list[dict[str, object]]:
        found: list[dict[str, object]] = []
        if isinstance(node, dict):
            if node.get("type") == "object":
                found.append(node)
            for value in node.values():
                found.extend(objects(value))
        elif isinstance(node, list):
            for value in node:
                found.extend(objects(value))
        return found

    every = objects(contract_schema())
    assert len(every) == 4
    assert all(node["additionalProperties"] is False for node in every)


def test_all_errors_come_in_document_order() -> None:
    text = EXAMPLE.read_text("utf-8")
    text = text.replace("version: 1 ", "version: 0 ").replace("currency: USD", "currency: EURO")
    text = text.replace("    price: 0.99", "    price: -1").replace("buyer: acme\n", "")
    errors = contract_errors(text, "acme.yaml")
    assert [(error.field, error.line) for error in errors] == [
        ("version", 6),
        ("currency", 9),
        ("outcomes.ai_resolution.price", 19),
        ("buyer", None),  # missing at the top level: found at the end of the file
    ]
    with pytest.raises(ContractError) as caught:
        parse_contract(text, "acme.yaml")
    assert (caught.value.file, caught.value.line, caught.value.field) == ("acme.yaml", 6, "version")


def test_parse_contract_names_the_string_source_by_default() -> None:
    with pytest.raises(ContractError) as caught:
        parse_contract("contract: x\n")
    assert caught.value.file == "<string>"


def test_load_contract_refuses_unreadable_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ContractError) as caught:
        load_contract(missing)
    assert (caught.value.file, caught.value.line, caught.value.field) == (
        str(missing),
        None,
        DOCUMENT_FIELD,
    )
    assert "expected a readable file" in caught.value.reason

    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"contract: acme\nbuyer: caf\xe9\n")
    with pytest.raises(ContractError) as caught:
        load_contract(latin)
    assert (caught.value.line, caught.value.reason) == (2, "expected UTF-8 text, found byte 0xe9")

    huge = tmp_path / "huge.yaml"
    huge.write_bytes(b"#" * (CONTRACT_BYTES_MAX + 1))
    with pytest.raises(ContractError, match="at most"):
        load_contract(huge)


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + EXAMPLE.read_bytes())
    assert load_contract(path) == ACME


def test_contracts_built_in_code_are_checked_too() -> None:
    """No invalid Contract exists, wherever it was made."""
    with pytest.raises(ValueError, match="non-negative"):
        AiResolutionRule(price=Decimal("-0.01"))
    with pytest.raises(ValueError, match="non-negative"):
        HandoffRule(price=Decimal("NaN"))
    with pytest.raises(TypeError, match="Decimal"):
        AiResolutionRule(price=0.99)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most 12 decimal places"):
        HandoffRule(price=Decimal("0.0000000000001"))
    with pytest.raises(ValueError, match="below 10"):
        HandoffRule(price=Decimal("1E+12"))
    with pytest.raises(ValueError, match=r"1\.\.8760"):
        AiResolutionRule(price=Decimal(1), recontact_window_hours=0)
    changes: list[dict[str, Any]] = [
        {"currency": "XYZ"},
        {"time_zone": "Mars/Olympus"},
        {"effective_until": date(2026, 11, 1)},
        {"contract": "Acme"},
        {"version": 0},
    ]
    for change in changes:
        with pytest.raises(ValueError):
            msgspec.structs.replace(ACME, **change)


def test_effective_range_in_utc() -> None:
    contract = msgspec.structs.replace(ACME, effective_until=date(2027, 4, 1))
    assert contract.effective_from_utc() == datetime(2026, 10, 31, 23, tzinfo=UTC)
    assert contract.effective_from_utc().tzinfo is UTC
    assert contract.effective_until_utc() == datetime(2027, 3, 31, 22, tzinfo=UTC)  # CEST
    assert ACME.effective_until_utc() is None
    assert not contract.is_effective_at(datetime(2026, 10, 31, 22, 59, 59, tzinfo=UTC))
    assert contract.is_effective_at(datetime(2026, 10, 31, 23, tzinfo=UTC))
    assert contract.is_effective_at(datetime(2027, 3, 31, 21, 59, 59, tzinfo=UTC))
    assert not contract.is_effective_at(datetime(2027, 3, 31, 22, tzinfo=UTC))
    assert ACME.is_effective_at(datetime(2999, 1, 1, tzinfo=UTC))


# Exact decimals of up to 12 places, trailing zeros included: "1.50" must stay "1.50".
prices = st.builds(
    lambda units, places: Decimal(units).scaleb(-places),
    st.integers(0, 10**12 - 1),
    st.integers(0, 12),
)


@settings(max_examples=200, deadline=None)
@given(price=prices, quoted=st.booleans(), hours=st.integers(1, 8760))
def test_prices_round_trip_exactly_from_their_text(
    price: Decimal, quoted: bool, hours: int
) -> None:
    """Whatever digits a price is written with, the contract holds exactly those digits."""
    text = format(price, "f")
    written = f'"{text}"' if quoted else text
    source = EXAMPLE.read_text("utf-8").replace("price: 0.99", f"price: {written}")
    source = source.replace("recontact_window_hours: 72", f"recontact_window_hours: {hours}")
    contract = parse_contract(source)
    assert contract.outcomes.ai_resolution.price.as_tuple() == Decimal(text).as_tuple()
    assert contract.outcomes.ai_resolution.recontact_window_hours == hours


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_edit_of_a_contract_loads_or_fails_with_a_contract_error(data: st.DataObject) -> None:
    """Fuzzing: cutting, inserting or replacing text never crashes the loader."""
    text = EXAMPLE.read_text("utf-8")
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, min(len(text), start + 40)))
    insert = data.draw(
        st.text(
            alphabet=st.sampled_from(list(":-[]{}&*!|>'\"#%@`, \n\t.0123456789abc")), max_size=8
        )
    )
    edited = text[:start] + insert + text[end:]
    try:
        parse_contract(edited, "fuzz.yaml")
    except ContractError as error:
        assert error.file == "fuzz.yaml"
        assert error.field
        assert error.line is None or 1 <= error.line <= edited.count("\n") + 2
        assert error.reason.startswith(("expected", "required field is missing"))


def test_the_published_schema_is_a_copy() -> None:
    """A caller editing the schema it was given must not change what the loader accepts."""
    schema = contract_schema()
    schema["properties"]["currency"]["pattern"] = ".*"
    assert contract_schema()["properties"]["currency"]["pattern"] == "^[A-Z]{3}$"
    with pytest.raises(ContractError):
        parse_contract(EXAMPLE.read_text("utf-8").replace("currency: USD", "currency: usd"))
