"""A minimum commitment over three periods as a user runs it: `raas settle` month by month on a
SQLite ledger, the third invoice trues up what the run's invoices charged, DuckDB and Spark
issue the same bytes, and `raas verify` checks the true-up from the bundle's earlier invoices.
What would break: a true-up in the wrong period or of the wrong amount, the last period settled
without its run's earlier invoices, or an auditor taking the true-up or the earlier charges on
trust."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from msgspec.structs import replace

from engines import spark_missing
from factories import NOVEMBER, conversation
from raas.audit.bundle import decode_bundle, encode_bundle
from raas.cli.main import main
from raas.core.invoice import invoice_from_json, invoice_json
from raas.ledger.sqlite import SqliteLedger

TEXT = """contract: {name}
version: 1
effective_from: 2026-11-01
vendor: helpdesk-ai
buyer: acme
currency: USD
time_zone: Europe/Berlin
window: 72h
outcomes:
  ai_resolution:
    when: ai_answered and not handed_off and not recontact_within(72h)
pricing:
  charges:
    - model: per_outcome
      prices: {{ai_resolution: 1.00}}
  minimum: {{amount: {amount}, periods: 3}}
"""


def raas(*arguments: str | Path) -> Result:
    return CliRunner().invoke(main, [str(argument) for argument in arguments])


def ok(*arguments: str | Path) -> str:
    done = raas(*arguments)
    assert done.exit_code == 0, done.output
    return done.output


def verify_fails(bundle: Path, public: Path) -> str:
    """What `raas verify` says of a bundle it must refuse (exit status 1)."""
    failed = raas("verify", bundle, "--key", public)
    assert failed.exit_code == 1, failed.output
    return failed.output


def resolved(days: range) -> list:  # type: ignore[type-arg]
    """One AI-resolved problem a day, `days` after 2 November; final 72 hours later."""
    return [
        event
        for day in days
        for event in conversation(
            f"c{day}", customer=f"customer-{day}", start=NOVEMBER + timedelta(days=day)
        )
    ]


def true_ups(folder: Path, invoice_id: str) -> list[Decimal]:
    data = json.loads((folder / f"invoice-acme_{invoice_id}.json").read_text())
    return [Decimal(line["amount"]) for line in data["lines"] if line["kind"] == "minimum_true_up"]


class Run:
    """A SQLite ledger with a signer key and two contracts that commit to a minimum over three
    months: `committed` to 10.00 (under-spent below), `committed-low` to 5.00 (over-spent)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.database = folder / "ledger.db"
        self.under, self.over = folder / "under.yaml", folder / "over.yaml"
        self.under.write_text(TEXT.format(name="committed", amount="10.00"))
        self.over.write_text(TEXT.format(name="committed-low", amount="5.00"))
        ok("keys", "generate", "helpdesk-ai", "--out", folder / "keys")
        self.key = folder / "keys" / "helpdesk-ai.key"
        self.public = folder / "keys" / "helpdesk-ai.pub"
        self.out = folder / "reference"

    def settle(
        self, contract: Path, period: str, *more: str | Path, engine: str = "reference"
    ) -> Result:
        return raas(
            "settle", "--contract", contract, "--period", period, "--db", self.database,
            "--engine", engine, "--out", self.folder / engine, *more,
        )  # fmt: skip

    def append(self, days: range) -> None:
        with SqliteLedger(self.database, vendor="helpdesk-ai") as ledger:
            ledger.append(resolved(days))

    def through_january(self) -> bytes:
        """Settle `committed` month by month, each at a checkpoint signed then; January's bytes."""
        self.append(range(0, 2))  # November: 2.00 charged
        for contract in (self.under, self.over):
            assert self.settle(contract, "2026-11", "--key", self.key).exit_code == 0
        self.append(range(32, 35))  # December: 3.00
        assert self.settle(self.under, "2026-12", "--key", self.key).exit_code == 0
        self.append(range(63, 64))  # January: 1.00
        assert self.settle(self.under, "2027-01", "--key", self.key).exit_code == 0
        return (self.out / "invoice-acme_committed-v1-2027-01.json").read_bytes()


def test_a_three_month_run_trues_up_its_shortfall_in_the_third_invoice(tmp_path: Path) -> None:
    run = Run(tmp_path)
    issued = run.through_january()
    under, over, out, key, public = run.under, run.over, run.out, run.key, run.public
    database = run.database
    assert true_ups(out, "committed-v1-2026-11") == []
    assert true_ups(out, "committed-v1-2026-12") == []
    # 10.00 - (2.00 + 3.00 + 1.00): the shortfall of the run, on its last invoice.
    assert true_ups(out, "committed-v1-2027-01") == [Decimal("4.00")]
    january = json.loads(issued)
    assert Decimal(january["total"]) == Decimal("5.00")
    assert january["lines"][-1]["basis"]["prior_subtotals"] == "5.00"
    # DuckDB, at the same checkpoint, issues the same bytes (the store refuses others).
    done = run.settle(under, "2027-01", engine="duckdb")
    assert done.exit_code == 0, done.output
    assert (tmp_path / "duckdb" / "invoice-acme_committed-v1-2027-01.json").read_bytes() == issued

    # The run's December was never settled under the other contract: refused, naming it.
    refused = run.settle(over, "2027-01", "--key", key)
    assert refused.exit_code != 0
    assert "no invoice was issued for period 2026-12" in refused.output
    assert "settle 2026-12 first" in refused.output
    assert run.settle(over, "2026-12").exit_code == 0
    assert run.settle(over, "2027-01").exit_code == 0
    assert true_ups(out, "committed-low-v1-2027-01") == []  # 6.00 charged, above 5.00
    # February opens the next run: nothing to true up yet.
    assert run.settle(under, "2027-02", "--key", key).exit_code == 0
    assert true_ups(out, "committed-v1-2027-02") == []
    # January settled again for adjustments gives its true-up again: nothing to correct.
    assert (
        json.loads((out / "invoice-acme_committed-v1-2027-02.json").read_text())["adjustments"]
        == []
    )

    for scope in ("--complete", "--redact"):
        bundle = tmp_path / f"january{scope}.json"
        ok("evidence", "export", "committed-v1-2027-01", "--contract", under, "--db", database,
           scope, "--out", bundle)  # fmt: skip
        assert len(decode_bundle(bundle.read_bytes()).earlier) == 2
        assert ok("verify", bundle, "--key", public).startswith("verified")

    bundle = tmp_path / "january--complete.json"
    original = decode_bundle(bundle.read_bytes())
    claimed = invoice_from_json(original.invoice)
    index = len(claimed.lines) - 1
    line = claimed.lines[index]
    more = Decimal("5.00")
    edited = replace(
        claimed,
        lines=(*claimed.lines[:index], replace(line, unit_price=more, amount=more)),
        total=claimed.total + more - line.amount,
    )
    tampered = tmp_path / "tampered.json"
    tampered.write_bytes(encode_bundle(replace(original, invoice=invoice_json(edited))))
    failed = raas("verify", tampered, "--key", public)
    assert failed.exit_code == 1, failed.output
    assert f"line {index + 1} (minimum_true_up)" in failed.output
    assert "amount: expected 4.00, found 5.00" in failed.output

    # An earlier invoice that claims December charged more hides the shortfall: the auditor
    # recomputes the true-up from it, and the January invoice no longer matches.
    december = invoice_from_json(original.earlier[1])
    richer = replace(
        december, lines=tuple(replace(each, amount=each.amount + 1) for each in december.lines)
    )
    earlier = (original.earlier[0], invoice_json(richer))
    tampered.write_bytes(encode_bundle(replace(original, earlier=earlier)))
    failed = raas("verify", tampered, "--key", public)
    assert failed.exit_code == 1, failed.output
    assert f"line {index + 1} (minimum_true_up)" in failed.output

    # Without the earlier invoices the auditor cannot check the run: it says which is missing.
    tampered.write_bytes(encode_bundle(replace(original, earlier=original.earlier[:1])))
    failed = raas("verify", tampered, "--key", public)
    assert failed.exit_code == 1, failed.output
    assert "no invoice was issued for period 2026-12" in failed.output


@pytest.mark.slow
def test_spark_issues_the_true_up_invoice_byte_for_byte(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Spark, at the checkpoint the reference settled January at (on the test session's Spark,
    as tests/test_engines_cli.py does: a JVM per command is minutes here)."""
    if spark_missing() is not None:
        pytest.skip(f"Spark not compared: {spark_missing()}")
    run = Run(tmp_path)
    issued = run.through_january()
    assert b'"kind": "minimum_true_up"' in issued
    request.getfixturevalue("spark")
    done = run.settle(run.under, "2027-01", engine="spark")
    assert done.exit_code == 0, done.output
    assert (tmp_path / "spark" / "invoice-acme_committed-v1-2027-01.json").read_bytes() == issued
