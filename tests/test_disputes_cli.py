"""Settlement over time as a user runs it: `raas settle` for November, `raas dispute file` and
`raas dispute rule`, a late event, `raas settle` for December and January, and a contract whose
second version takes effect mid-month. What would break: a dispute accepted after the deadline,
an upheld dispute or a late event that the next invoice does not adjust (or adjusts twice), an
issued invoice that changes, or versions that do not split the period."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from click.testing import CliRunner, Result

from factories import NOVEMBER, conversation
from raas.cli.main import main
from raas.ledger.sqlite import SqliteLedger

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT / "examples" / "contracts" / "acme-support.yaml"
RAAS = [sys.executable, "-m", "raas.cli.main"]


def raas(*arguments: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RAAS, *map(str, arguments)], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def in_process(*arguments: str | Path) -> Result:
    return CliRunner().invoke(main, [str(argument) for argument in arguments])


def ok(*arguments: str | Path, cwd: Path) -> str:
    done = raas(*arguments, cwd=cwd)
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def problems(first: int, count: int, tenant: str = "acme") -> list:  # type: ignore[type-arg]
    return [
        event
        for day in range(first, first + count)
        for event in conversation(
            f"c{day}",
            customer=f"customer-{day}",
            start=NOVEMBER + timedelta(days=day),
            tenant=tenant,
        )
    ]


def invoice(folder: Path, invoice_id: str, buyer: str = "acme") -> dict:  # type: ignore[type-arg]
    data: dict = json.loads((folder / f"invoice-{buyer}_{invoice_id}.json").read_text())  # type: ignore[type-arg]
    return data


def test_disputes_and_late_events_become_adjustments_on_the_next_invoice(tmp_path: Path) -> None:
    database = tmp_path / "ledger.db"
    contract = tmp_path / "acme.yaml"
    contract.write_text(CONTRACT.read_text() + "disputes:\n  deadline: 14d\n")
    with SqliteLedger(database, vendor="helpdesk-ai") as ledger:
        ledger.append(problems(0, 4))
    ok("keys", "generate", "helpdesk-ai", "--out", tmp_path / "keys", cwd=tmp_path)
    key = tmp_path / "keys" / "helpdesk-ai.key"
    common = ("--contract", contract, "--db", database)

    ok("settle", "--period", "2026-11", "--key", key, "--out", tmp_path, *common, cwd=tmp_path)
    november = invoice(tmp_path, "acme-support-v1-2026-11")
    assert Decimal(november["total"]) == Decimal("3.96")

    filed = ok(
        "dispute", "file", "acme-support-v1-2026-11", "--episode", "c1#refund",
        "--reason", "the customer wrote again", "--by", "finance@acme",
        "--at", "2026-12-03T10:00:00+01:00", *common, cwd=tmp_path,
    )  # fmt: skip
    assert "filed dispute acme-support-v1-2026-11-d1" in filed
    late = raas(
        "dispute", "file", "acme-support-v1-2026-11", "--line", "0", "--reason", "too late",
        "--by", "finance@acme", "--at", "2026-12-15T00:00:00+01:00", *common, cwd=tmp_path,
    )  # fmt: skip
    assert late.returncode == 1
    assert "after the deadline 2026-12-15T00:00:00+01:00" in late.stderr
    ok(
        "dispute", "rule", "acme-support-v1-2026-11-d1", "--upheld", "--by", "reviewer",
        "--at", "2026-12-05T10:00:00+01:00", *common, cwd=tmp_path,
    )  # fmt: skip
    again = raas(
        "dispute", "rule", "acme-support-v1-2026-11-d1", "--rejected", "--by", "reviewer",
        *common, cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 1 and "already ruled upheld" in again.stderr
    listed = ok("dispute", "list", *common, cwd=tmp_path)
    assert "acme-support-v1-2026-11-d1\tacme-support-v1-2026-11\tupheld\tc1#refund" in listed

    with SqliteLedger(database, vendor="helpdesk-ai") as ledger:
        ledger.append(problems(10, 1))  # a November problem whose events arrive late
    ok("settle", "--period", "2026-12", "--key", key, "--out", tmp_path, *common, cwd=tmp_path)
    december = invoice(tmp_path, "acme-support-v1-2026-12")
    found = sorted(
        (line["corrects"]["reason"], line["corrects"]["line"], line["amount"], line["episodes"])
        for line in december["adjustments"]
    )
    assert found == [
        ("dispute", 0, "-0.99", ["c1#refund"]),
        ("late_events", 0, "0.99", ["c10#refund"]),
    ]
    assert all(line["corrects"]["invoice"] == november["id"] for line in december["adjustments"])
    assert invoice(tmp_path, "acme-support-v1-2026-11") == november  # never rewritten
    page = (tmp_path / "invoice-acme_acme-support-v1-2026-12.html").read_text()
    assert "Adjustments of earlier invoices" in page and "late events" in page
    assert 'Due (total and adjustments)</td><td class="number">' in page
    # The auditor recomputes the adjustments from a bundle of the whole log.
    bundle = tmp_path / "december.bundle.json"
    ok("evidence", "export", "acme-support-v1-2026-12", "--complete", "--out", bundle,
       *common, cwd=tmp_path)  # fmt: skip
    verified = ok("verify", bundle, "--key", tmp_path / "keys" / "helpdesk-ai.pub", cwd=tmp_path)
    assert verified.startswith("verified") and "taken as stated" not in verified

    ok("settle", "--period", "2027-01", "--key", key, "--out", tmp_path, *common, cwd=tmp_path)
    assert invoice(tmp_path, "acme-support-v1-2027-01")["adjustments"] == []


def test_a_second_version_mid_month_rates_its_part(tmp_path: Path) -> None:
    database = tmp_path / "ledger.db"
    first = tmp_path / "v1.yaml"
    second = tmp_path / "v2.yaml"
    text = CONTRACT.read_text()
    first.write_text(text)
    second.write_text(
        text.replace("version: 1 ", "version: 2 ")
        .replace("effective_from: 2026-11-01", "effective_from: 2026-11-15")
        .replace("price: 0.99", "price: 1.50")
    )
    with SqliteLedger(database, vendor="helpdesk-ai") as ledger:
        ledger.append(problems(0, 1) + problems(20, 1))
    ok("keys", "generate", "helpdesk-ai", "--out", tmp_path / "keys", cwd=tmp_path)
    ok(
        "settle", "--period", "2026-11", "--key", tmp_path / "keys" / "helpdesk-ai.key",
        "--contract", first, "--contract", second, "--db", database, "--out", tmp_path,
        cwd=tmp_path,
    )  # fmt: skip
    issued = invoice(tmp_path, "acme-support-v1+v2-2026-11")
    billed = [
        (line["part"]["version"], line["part"]["start"], line["amount"])
        for line in issued["lines"]
        if line["quantity"]
    ]
    assert billed == [
        (1, "2026-11-01T00:00:00+01:00", "0.99"),
        (2, "2026-11-15T00:00:00+01:00", "1.50"),
    ]


def test_two_buyers_contracts_of_one_name_settle_dispute_and_export_each_their_own(
    tmp_path: Path,
) -> None:
    # A vendor names every buyer's contract alike: one invoice id, issued to each buyer; the
    # contract file given says whose invoice a command means.
    database = tmp_path / "ledger.db"
    contracts = {}
    for buyer, count in (("acme", 2), ("globex", 3)):
        contracts[buyer] = tmp_path / f"{buyer}.yaml"
        text = CONTRACT.read_text().replace("buyer: acme", f"buyer: {buyer}")
        contracts[buyer].write_text(text + "disputes:\n  deadline: 14d\n")
        with SqliteLedger(database, vendor="helpdesk-ai") as ledger:
            ledger.append(problems(0, count, buyer))
    keys = tmp_path / "keys"
    assert in_process("keys", "generate", "helpdesk-ai", "--out", keys).exit_code == 0
    invoice_id = "acme-support-v1-2026-11"
    out = tmp_path / "out"  # one folder for both: each buyer's files keep their own name
    for buyer, path in contracts.items():
        settled = in_process(
            "settle", "--period", "2026-11", "--key", keys / "helpdesk-ai.key",
            "--out", out, "--contract", path, "--db", database,
        )  # fmt: skip
        assert settled.exit_code == 0, settled.output
        assert str(out / f"invoice-{buyer}_{invoice_id}.json") in settled.output
    assert sorted(path.name for path in out.iterdir()) == [
        f"invoice-{buyer}_{invoice_id}.{kind}" for buyer in contracts for kind in ("html", "json")
    ]
    with SqliteLedger(database) as ledger:
        for buyer in contracts:
            written = (out / f"invoice-{buyer}_{invoice_id}.json").read_bytes()
            assert written == ledger.get_invoice(buyer, invoice_id)
            html = (out / f"invoice-{buyer}_{invoice_id}.html").read_text()
            assert f"helpdesk-ai to {buyer} " in html
    totals = {buyer: invoice(out, invoice_id, buyer)["total"] for buyer in contracts}
    assert totals == {"acme": "1.98", "globex": "2.97"}

    heads = {}
    with SqliteLedger(database) as ledger:
        heads = {buyer: ledger.head(buyer) for buyer in contracts}
    filed = in_process(
        "dispute", "file", invoice_id, "--episode", "c2#refund", "--reason", "wrote again",
        "--by", "finance@globex", "--at", "2026-12-03T10:00:00+01:00",
        "--contract", contracts["globex"], "--db", database,
    )  # fmt: skip
    assert filed.exit_code == 0, filed.output  # c2 is billed on globex's invoice alone
    with SqliteLedger(database) as ledger:
        assert {buyer: ledger.head(buyer) for buyer in contracts} == {
            "acme": heads["acme"],
            "globex": heads["globex"] + 1,
        }
    for buyer, path in contracts.items():
        bundle = tmp_path / f"{buyer}.bundle.json"
        exported = in_process(
            "evidence", "export", invoice_id, "--contract", path, "--db", database, "--out", bundle
        )
        assert exported.exit_code == 0, exported.output
        assert json.loads(json.loads(bundle.read_text())["invoice"])["total"] == totals[buyer]
