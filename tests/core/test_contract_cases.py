"""Stored contract cases: every good file loads, every bad file fails on the line and field it
names in its own header. A loader that mislocates errors, accepts a bad file or refuses a good
one breaks here; the header of each case says what is wrong with it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from raas.core.contract import Contract, contract_errors, load_contract
from raas.errors import ContractError

CASES = Path(__file__).resolve().parents[1] / "cases" / "contracts"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "contracts"
_WANT = re.compile(r"^# want (line|field|reason): (.*)$", re.MULTILINE)


def _names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.glob("*.yaml"))


def test_the_case_folders_are_not_empty() -> None:
    """A renamed folder must not turn these tests into no tests."""
    assert len(_names(CASES / "good")) >= 3
    assert len(_names(CASES / "bad")) >= 20
    assert _names(EXAMPLES)


@pytest.mark.parametrize("name", _names(CASES / "good"))
def test_good_case_loads(name: str) -> None:
    path = CASES / "good" / name
    assert isinstance(load_contract(path), Contract)
    assert contract_errors(path.read_text("utf-8"), str(path)) == []


@pytest.mark.parametrize("name", _names(EXAMPLES))
def test_example_loads(name: str) -> None:
    assert isinstance(load_contract(EXAMPLES / name), Contract)


@pytest.mark.parametrize("name", _names(CASES / "bad"))
def test_bad_case_fails_where_it_says(name: str) -> None:
    path = CASES / "bad" / name
    want = dict(_WANT.findall(path.read_text("utf-8")))
    assert set(want) == {"line", "field", "reason"}, f"{name}: header incomplete"
    with pytest.raises(ContractError) as caught:
        load_contract(path)
    error = caught.value
    assert error.file == str(path)
    assert error.line == (None if want["line"] == "none" else int(want["line"]))
    assert error.field == want["field"]
    assert want["reason"] in error.reason
    assert error.reason.startswith(("expected", "required field is missing; expected"))
    assert str(error).startswith(str(path) + (f":{error.line}" if error.line else ""))


@pytest.mark.parametrize("name", _names(CASES / "bad"))
def test_bad_case_reports_the_same_errors_every_time(name: str) -> None:
    text = (CASES / "bad" / name).read_text("utf-8")
    first = [(error.line, error.field, error.reason) for error in contract_errors(text, name)]
    again = [(error.line, error.field, error.reason) for error in contract_errors(text, name)]
    assert first and first == again
