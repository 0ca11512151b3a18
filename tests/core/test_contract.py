"""The contract loader and the typed contract: exact values from the file, a schema that matches
the types, rules checked against the features when the file loads, pricing that prices exactly
the billable outcomes, and errors that always name the file, the line (for a rule, the line and
column of the mistake) and the field. What would break: a price read through float, a schema
drifting from the types, a misspelt feature found only at settlement, an unpriced billable
outcome billed at nothing, or a bad file slipping through as a crash instead of a
`ContractError`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
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
    Contract,
    ContractProblems,
    GateTerms,
    OutcomeTerms,
    Weights,
    contract_errors,
    contract_schema,
    duration_text,
    format_one_pricing,
    format_one_rules,
    load_contract,
    parse_contract,
    parse_duration,
)
from raas.core.pricing import (
    AccuracyTier,
    AccuracyTiers,
    BusinessShare,
    Cap,
    Graduated,
    Minimum,
    Package,
    PerOutcome,
    Prepaid,
    Pricing,
    SavingsShare,
    SlaTarget,
    Tier,
    UpliftShare,
    Volume,
)
from raas.errors import ContractError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "contracts"
EXAMPLE = EXAMPLES / "acme-support.yaml"
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
    outcomes=format_one_rules(timedelta(hours=72)),  # type: ignore[arg-type]
    window=timedelta(hours=72),
    pricing=format_one_pricing(Decimal("0.99"), Decimal(0)),
    rounding="half_even",
)

HEADER = """\
contract: rules
version: 1
effective_from: 2026-11-01
vendor: helpdesk-ai
buyer: acme
currency: USD
time_zone: Europe/Berlin
"""


def price_of(contract: Contract, kind: str) -> Decimal:
    for charge in contract.effective_pricing().charges:
        if isinstance(charge, PerOutcome) and kind in charge.prices:
            return charge.prices[kind]
    raise AssertionError(f"{kind} is not priced per outcome")


def test_first_format_example_loads_to_exact_typed_values() -> None:
    contract = load_contract(EXAMPLE)
    assert contract == ACME
    price = price_of(contract, "ai_resolution")
    assert type(price) is Decimal
    assert price.as_tuple() == Decimal("0.99").as_tuple()  # not 0.98999999999999999111...
    assert type(contract.effective_from) is date
    assert contract.window == timedelta(hours=72)
    assert load_contract(EXAMPLES / "procurement-audit.yaml").window == timedelta(days=7)


def test_defaults_fill_what_a_minimal_contract_leaves_out() -> None:
    contract = load_contract(GOOD / "minimal.yaml")
    assert price_of(contract, "ai_resolution") == Decimal("1.5")
    assert price_of(contract, "handoff") == Decimal(0)
    assert contract.window == timedelta(hours=72)
    assert (contract.period, contract.count, contract.rounding) == (
        "month",
        "per_problem",
        "half_even",
    )
    assert contract.effective_until is None
    assert (contract.exclude, contract.gates, contract.weights) == (None, (), None)


def test_unit_prices_finer_than_the_minor_unit_are_kept_exactly() -> None:
    contract = load_contract(GOOD / "fine-unit-price.yaml")
    assert str(price_of(contract, "ai_resolution")) == "0.0125"
    assert str(price_of(contract, "handoff")) == "12.5"  # JPY has no minor unit; still legal
    assert contract.window == timedelta(hours=8760)
    assert contract.effective_until == date(2028, 1, 1)
    assert contract.rounding == "down"
    flow = load_contract(GOOD / "flow-style.yaml")
    assert str(price_of(flow, "ai_resolution")) == "0.125"
    assert str(price_of(flow, "handoff")) == "0.000"
    assert flow.window == timedelta(hours=1)
    assert flow.effective_from == date(2026, 12, 1)


def test_every_field_of_the_format_loads_to_its_typed_value() -> None:
    contract = load_contract(GOOD / "every-field.yaml")
    assert list(contract.outcomes) == ["handoff", "resolved", "unresolved"]
    assert contract.count == "per_conversation"
    assert contract.window == timedelta(days=3)
    assert contract.exclude == 'intent in ["test", "spam"] or channel == "voice"'
    assert contract.outcomes["resolved"].when == "ai_answered\nand not recontact_within(3d)\n"
    assert contract.outcomes["unresolved"].when == "true"  # YAML's boolean, read as the rule
    assert contract.outcomes["handoff"].final_at == "handoff_at"
    assert contract.outcomes["handoff"].case_cost == Decimal("4.2")
    assert contract.outcomes["unresolved"].case_cost == Decimal("4.20")
    assert contract.gates == (
        GateTerms(
            name="csat_floor",
            require="csat is null or csat >= 2",
            description="Low ratings are not billed",
        ),
    )
    assert contract.weights == Weights(
        feature="intent",
        values={"contract_review": Decimal("2.5"), "gift card": Decimal("0.5")},
        default=Decimal(1),
    )
    pricing = contract.pricing
    assert pricing is not None
    assert [type(charge) for charge in pricing.charges] == [PerOutcome, Package, SavingsShare]
    assert pricing.minimum == Minimum(amount=Decimal("1000.00"), periods=3)
    assert pricing.cap == Cap(amount=Decimal(20000))
    assert [target.metric for target in pricing.sla] == ["resolution_rate", "p95_latency_ms"]
    assert pricing.prepaid == Prepaid(credit=Decimal("50000.00"))


def test_outcome_prices_are_a_per_outcome_charge_placed_first() -> None:
    text = HEADER + (
        "outcomes:\n"
        "  confirmed: {when: confirmed, price: 0.99}\n"
        "  free: {when: handed_off, billable: false}\n"
        "  assumed: {when: 'true', price: 0.79}\n"
        "pricing:\n"
        "  charges:\n"
        "    - {model: volume, outcomes: [qualified], tiers: [{up_to: 10, price: 2}, {price: 1}]}\n"
    )
    text = text.replace("  assumed:", '  qualified: {when: intent == "sales"}\n  assumed:')
    contract = parse_contract(text)
    charges = contract.effective_pricing().charges
    assert charges[0] == PerOutcome(
        prices={"confirmed": Decimal("0.99"), "assumed": Decimal("0.79")}
    )
    assert isinstance(charges[1], Volume)
    assert contract.effective_pricing().priced_outcomes() == ("confirmed", "assumed", "qualified")


def _fields(struct: Any) -> tuple[set[str], set[str]]:
    every = msgspec.structs.fields(struct)
    required = {
        field.name
        for field in every
        if field.default is msgspec.NODEFAULT and field.default_factory is msgspec.NODEFAULT
    }
    return {field.name for field in every}, required


def test_schema_is_valid_draft_2020_12_and_matches_the_types() -> None:
    """The schema and the types describe one format: same fields, same required ones, down to
    every pricing model (the pricing section is exactly what `pricing_from_data` reads)."""
    schema = contract_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    definitions = schema["$defs"]
    nodes: list[tuple[Any, dict[str, Any], set[str]]] = [
        (Contract, schema, set()),
        (OutcomeTerms, definitions["outcome"], set()),
        (GateTerms, definitions["gate"], set()),
        (Weights, definitions["weights"], set()),
        (Pricing, definitions["pricing"], set()),
        (Minimum, definitions["pricing"]["properties"]["minimum"], set()),
        (Cap, definitions["pricing"]["properties"]["cap"], set()),
        (SlaTarget, definitions["pricing"]["properties"]["sla"]["items"], set()),
        (Tier, definitions["tiers"]["items"], set()),
        (AccuracyTier, definitions["accuracy_tiers"]["properties"]["tiers"]["items"], set()),
    ]
    for model, struct in {
        "per_outcome": PerOutcome,
        "graduated": Graduated,
        "volume": Volume,
        "package": Package,
        "accuracy_tiers": AccuracyTiers,
        "business_share": BusinessShare,
        "uplift_share": UpliftShare,
        "savings_share": SavingsShare,
    }.items():
        assert struct.__struct_config__.tag == model
        nodes.append((struct, definitions[model], {"model"}))
    for struct, node, tag in nodes:
        names, required = _fields(struct)
        assert set(node["properties"]) == names | tag, struct.__name__
        assert set(node.get("required", [])) == required | tag, struct.__name__
        assert node["additionalProperties"] is False, struct.__name__
    charge_models = definitions["charge"]["properties"]["model"]["enum"]
    assert len(charge_models) == len(nodes) - 10


def test_every_object_in_the_schema_refuses_unknown_fields_or_is_a_map() -> None:
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
    assert len(every) > 20
    for node in every:
        closed = node.get("additionalProperties") is False
        is_map = "properties" not in node and isinstance(node.get("additionalProperties"), dict)
        # The outcomes mapping and a charge choose their closed shape by if/then.
        chooses = "if" in node or "allOf" in node
        assert closed or is_map or chooses, node.get("description")


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


def test_every_bad_rule_is_reported_at_its_own_line_and_column() -> None:
    text = HEADER + (
        "exclude: intent == tset\n"  # line 8: an unknown name, not text
        "outcomes:\n"
        "  resolved:\n"
        "    when: |\n"
        "      ai_answered\n"
        '      and csat >= "4"\n'  # line 13: text compared with a number
        "    price: 0.99\n"
        "  assumed:\n"
        "    when: 'not recontact_within(72h) and conversations > 1 and csta'\n"  # line 16
        "    price: 0.79\n"
    )
    errors = contract_errors(text, "rules.yaml")
    assert [(error.line, error.field) for error in errors] == [
        (8, "exclude"),
        (13, "outcomes.resolved.when"),
        (16, "outcomes.assumed.when"),
    ]
    assert "unknown name 'tset' (did you mean 'intent'?) (column 11 of the rule)" in (
        errors[0].reason
    )
    assert "(column 17 of the rule)" in errors[1].reason
    assert "did you mean 'csat'?" in errors[2].reason
    rule_line, caret = errors[2].reason.split("\n")[-2:]
    assert caret.index("^") == rule_line.index("csta") and caret.endswith("^^^^")
    assert str(errors[1]).startswith("rules.yaml:13: field 'outcomes.resolved.when': expected")


def test_shape_errors_come_before_rule_and_pricing_errors() -> None:
    """Rules and pricing are checked once the shape is right: a type error hides them."""
    text = HEADER + "outcomes:\n  resolved: {when: confimed, price: 0.99}\nrounding: nearest\n"
    assert [error.field for error in contract_errors(text)] == ["rounding"]
    fixed = text.replace("nearest", "half_up")
    assert [error.field for error in contract_errors(fixed)] == ["outcomes.resolved.when"]


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
        OutcomeTerms(when="true", price=Decimal("-0.01"))
    with pytest.raises(ValueError, match="non-negative"):
        OutcomeTerms(when="true", case_cost=Decimal("NaN"))
    with pytest.raises(TypeError, match="Decimal"):
        OutcomeTerms(when="true", price=0.99)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most 12 decimal places"):
        OutcomeTerms(when="true", price=Decimal("0.0000000000001"))
    with pytest.raises(ValueError, match=r"weights\.hard"):
        Weights(feature="intent", values={"hard": Decimal(-2)})
    changes: list[dict[str, Any]] = [
        {"currency": "XYZ"},
        {"time_zone": "Mars/Olympus"},
        {"effective_until": date(2026, 11, 1)},
        {"contract": "Acme"},
        {"version": 0},
        {"count": "per_week"},
        {"window": timedelta(0)},
        {"window": timedelta(days=366)},
        {"exclude": "intent = 'test'"},
        {"outcomes": {}},
        {"gates": (GateTerms(name="ai_resolution", require="true"),)},
        {"weights": Weights(feature="csat", values={})},
        {"pricing": Pricing(charges=(PerOutcome(prices={"unknown": Decimal(1)}),))},
    ]
    for change in changes:
        with pytest.raises((ValueError, TypeError)):
            msgspec.structs.replace(ACME, **change)


def test_a_refused_contract_names_every_problem_with_its_field() -> None:
    with pytest.raises(ContractProblems) as caught:
        msgspec.structs.replace(
            ACME,
            outcomes={
                "resolved": OutcomeTerms(when="confimed"),
                "free": OutcomeTerms(when="true", billable=False, price=Decimal(1)),
            },
            pricing=None,
        )
    problems = caught.value.problems
    assert [problem.path for problem in problems] == [
        ("outcomes", "resolved", "when"),
        ("outcomes", "resolved"),
        ("outcomes", "free", "price"),
    ]
    assert problems[0].offset == 0
    assert str(caught.value).startswith("outcomes.resolved.when: expected a feature")


def test_a_share_charge_bills_outcomes_without_a_price_of_their_own() -> None:
    text = HEADER + (
        "outcomes:\n"
        "  sale: {when: ai_answered and not handed_off}\n"
        "pricing:\n"
        "  charges: [{model: business_share, share: 0.08}]\n"
    )
    assert contract_errors(text) == []
    unpriced = text.split("pricing:")[0]
    [error] = contract_errors(unpriced)
    assert (error.line, error.field) == (9, "outcomes.sale")
    assert error.reason.startswith("expected a price for the billable outcome 'sale'")


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


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("72h", 259200), ("7d", 604800)]
)
def test_durations_read_and_write_back(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert parse_duration(duration_text(timedelta(seconds=seconds))) == timedelta(seconds=seconds)
    for bad in ("72", "0h", "1.5h", "72H", "h", "072h"):
        with pytest.raises(ValueError, match="expected a duration"):
            parse_duration(bad)


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
    assert price_of(contract, "ai_resolution").as_tuple() == Decimal(text).as_tuple()
    assert contract.window == timedelta(hours=hours)
    assert contract.outcomes["ai_resolution"].when.endswith(f"recontact_within({hours}h)")


@settings(max_examples=300, deadline=None)
@given(data=st.data(), name=st.sampled_from(["acme-support", "intercom-fin", "savings-sla"]))
def test_any_edit_of_a_contract_loads_or_fails_with_a_contract_error(
    data: st.DataObject, name: str
) -> None:
    """Fuzzing: cutting, inserting or replacing text never crashes the loader."""
    text = (EXAMPLES / f"{name}.yaml").read_text("utf-8")
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, min(len(text), start + 40)))
    insert = data.draw(
        st.text(
            alphabet=st.sampled_from(list(":-[]{}&*!|>'\"#%@`, \n\t.0123456789abc()=<")),
            max_size=8,
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
