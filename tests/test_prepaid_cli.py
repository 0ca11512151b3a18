"""Prepaid credit as a user runs it: `raas settle` month by month on a SQLite ledger draws a
credit of 3.00 down until it runs out in the second month (the third bills in full), DuckDB and
Spark issue the same bytes, and `raas verify` recomputes the drawdown from the bundle's earlier
invoices. What would break: a balance taken from nowhere (a `prepaid` contract could not be
settled at all before), credit drawn twice or past its amount, a month settled without the
invoice of a month that drew before it, or an auditor taking the drawdown on trust."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from msgspec.structs import replace

from engines import spark_missing
from raas.audit.bundle import decode_bundle, encode_bundle
from raas.core.invoice import invoice_from_json, invoice_json
from raas.ledger.sqlite import SqliteLedger
from test_minimum_cli import TEXT, Run, ok, resolved, verify_fails

# The minimum contract's text with prepaid credit in place of the minimum.
PREPAID = TEXT.replace(
    "  minimum: {{amount: {amount}, periods: 3}}", "  prepaid: {{credit: {amount}}}"
)


def lines_of(folder: Path, invoice_id: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((folder / f"invoice-acme_{invoice_id}.json").read_text())
    return data


def summary(data: dict[str, object]) -> tuple[list[tuple[str, str]], str, str]:
    lines = data["lines"]
    assert isinstance(lines, list)
    return (
        [(line["kind"], line["amount"]) for line in lines],
        str(data["total"]),
        str(data["prepaid_balance"]),
    )


class Credit(Run):
    """The minimum test's ledger and key, with two contracts with 3.00 of prepaid credit:
    `prepaid` settled every month, `prepaid-other` only in November."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.contract, self.other = folder / "prepaid.yaml", folder / "other.yaml"
        self.contract.write_text(PREPAID.format(name="prepaid", amount="3.00"))
        self.other.write_text(PREPAID.format(name="prepaid-other", amount="3.00"))

    def month(self, days: range, period: str, *, duckdb: bool = False) -> bytes:
        """Append the month's resolutions, settle it at a checkpoint signed now; its bytes (and
        DuckDB's at the same checkpoint, compared)."""
        with SqliteLedger(self.database, vendor="helpdesk-ai") as ledger:
            ledger.append(resolved(days))
        done = self.settle(self.contract, period, "--key", self.key)
        assert done.exit_code == 0, done.output
        issued = (self.out / f"invoice-acme_prepaid-v1-{period}.json").read_bytes()
        if duckdb:
            done = self.settle(self.contract, period, engine="duckdb")
            assert done.exit_code == 0, done.output
            assert (
                self.folder / "duckdb" / f"invoice-acme_prepaid-v1-{period}.json"
            ).read_bytes() == (issued)
        return issued

    def through_january(self, *, duckdb: bool = False) -> None:
        self.month(range(0, 2), "2026-11", duckdb=duckdb)  # November: 2.00 charged
        assert self.settle(self.other, "2026-11").exit_code == 0
        self.month(range(32, 35), "2026-12", duckdb=duckdb)  # December: 3.00
        self.month(range(63, 64), "2027-01", duckdb=duckdb)  # January: 1.00


def test_three_months_draw_the_credit_down_until_it_runs_out(tmp_path: Path) -> None:
    credit = Credit(tmp_path)
    credit.through_january(duckdb=True)
    out = credit.out
    # November draws 2.00 of 3.00; December the 1.00 left (of 3.00 charged); January none.
    november = lines_of(out, "prepaid-v1-2026-11")
    assert summary(november) == (
        [("outcome", "2.00"), ("prepaid_drawdown", "-2.00")],
        "0.00",
        "1.00",
    )
    december = lines_of(out, "prepaid-v1-2026-12")
    assert summary(december) == (
        [("outcome", "3.00"), ("prepaid_drawdown", "-1.00")],
        "2.00",
        "0.00",
    )
    lines = december["lines"]
    assert isinstance(lines, list)
    assert lines[1]["basis"] == {"balance_before": "1.00", "drawn": "1.00", "balance_after": "0.00"}
    january = lines_of(out, "prepaid-v1-2027-01")
    assert summary(january) == ([("outcome", "1.00")], "1.00", "0.00")
    assert january["adjustments"] == []  # December settled again draws the same
    html = (out / "invoice-acme_prepaid-v1-2026-12.html").read_text()
    assert "Prepaid credit before this invoice: 1.00" in html
    assert "left after it: 0.00" in html

    # The other contract's December was never settled: January is refused, naming it.
    refused = credit.settle(credit.other, "2027-01")
    assert refused.exit_code != 0
    assert "no invoice was issued for the earlier period 2026-12" in refused.output
    assert "settle 2026-12 first" in refused.output

    # `prepaid: true` says what to write instead.
    credit.other.write_text(
        credit.other.read_text().replace("prepaid: {credit: 3.00}", "prepaid: true")
    )
    refused = credit.settle(credit.other, "2026-12")
    assert refused.exit_code != 0
    assert "pricing.prepaid" in refused.output and "credit" in refused.output


def test_verify_recomputes_the_drawdown_from_the_earlier_invoices(tmp_path: Path) -> None:
    credit = Credit(tmp_path)
    credit.through_january()
    database, public, contract = credit.database, credit.public, credit.contract
    for scope in ("--complete", "--redact"):
        for period, earlier in (("2026-12", 1), ("2027-01", 2)):
            bundle = tmp_path / f"{period}{scope}.json"
            ok("evidence", "export", f"prepaid-v1-{period}", "--contract", contract,
               "--db", database, scope, "--out", bundle)  # fmt: skip
            assert len(decode_bundle(bundle.read_bytes()).earlier) == earlier
            assert ok("verify", bundle, "--key", public).startswith("verified")

    tampered = tmp_path / "tampered.json"
    for scope in ("--complete", "--redact"):
        original = decode_bundle((tmp_path / f"2026-12{scope}.json").read_bytes())
        claimed = invoice_from_json(original.invoice)
        drawdown = claimed.lines[1]
        # December claims to have drawn 1.50 (more than was left).
        more = Decimal("-1.50")
        edited = replace(
            claimed,
            lines=(claimed.lines[0], replace(drawdown, unit_price=more, amount=more)),
            total=claimed.total + more - drawdown.amount,
        )
        tampered.write_bytes(encode_bundle(replace(original, invoice=invoice_json(edited))))
        failed = verify_fails(tampered, public)
        assert "line 2 (prepaid_drawdown)" in failed
        assert "amount: expected -1.00, found -1.50" in failed

        # November's invoice claims it drew only 1.50. The whole log settles November again and
        # expects December to correct its drawdown; a bundle of some customers takes November
        # as stated, so December would have started from 1.50 and drawn it all.
        november = invoice_from_json(original.earlier[0])
        less = Decimal("-1.50")
        lighter = replace(
            november,
            lines=(november.lines[0], replace(november.lines[1], unit_price=less, amount=less)),
        )
        tampered.write_bytes(encode_bundle(replace(original, earlier=(invoice_json(lighter),))))
        failed = verify_fails(tampered, public)
        if scope == "--complete":
            assert (
                "adjustment line 1 (prepaid_drawdown, correcting line 2 of prepaid-v1-2026-11"
                in failed
            )
        else:
            assert "line 2 (prepaid_drawdown): amount: expected -1.50, found -1.00" in failed

        # Without November's invoice the auditor cannot know the balance: it names the month.
        tampered.write_bytes(encode_bundle(replace(original, earlier=())))
        failed = verify_fails(tampered, public)
        assert "no invoice was issued for the earlier period 2026-11" in failed


@pytest.mark.slow
def test_spark_issues_the_drawdown_invoice_byte_for_byte(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Spark, at the checkpoint the reference settled December at (on the test session's
    Spark, as tests/test_engines_cli.py does)."""
    if spark_missing() is not None:
        pytest.skip(f"Spark not compared: {spark_missing()}")
    credit = Credit(tmp_path)
    credit.month(range(0, 2), "2026-11")
    issued = credit.month(range(32, 35), "2026-12")
    assert b'"kind": "prepaid_drawdown"' in issued
    request.getfixturevalue("spark")
    done = credit.settle(credit.contract, "2026-12", engine="spark")
    assert done.exit_code == 0, done.output
    assert (tmp_path / "spark" / "invoice-acme_prepaid-v1-2026-12.json").read_bytes() == issued
