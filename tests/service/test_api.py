"""The HTTP API end to end in process: ingest, contracts, settlement, invoices, evidence,
checkpoints and proofs, each answer checked against the ledger and the offline verifier."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

import raas.service.tenancy
from conftest import ACME_CONTRACT, Service
from factories import conversation
from raas.audit.bundle import decode_bundle
from raas.audit.verify import verify_bundle
from raas.core.events import Event
from raas.ledger.keys import parse_verifier_keys
from raas.ledger.sqlite import SqliteLedger
from raas.service.sql_store import SqliteServiceStore
from settlement_runs import ended_run, queued_run, run_at
from test_minimum_cli import TEXT, resolved
from test_prepaid_cli import PREPAID

JSON = {"content-type": "application/json"}
NDJSON = {"content-type": "application/x-ndjson"}


# Ingest parses in the server process, or in a worker process (raas serve's default).
ingest_ways = pytest.mark.parametrize(
    "service", [0, 1], indirect=True, ids=["parsed-here", "parsed-in-worker"]
)


def events_of(tenant: str = "acme") -> list[Event]:
    return conversation("c1", tenant=tenant) + conversation(
        "c2", customer="customer-2", confirm=True, tenant=tenant
    )


def ndjson(events: list[Event]) -> bytes:
    return b"".join(msgspec.json.encode(event) + b"\n" for event in events)


def ingest(service: Service, events: list[Event], tenant: str = "acme") -> dict[str, object]:
    response = service.client.post(
        "/v1/events",
        content=msgspec.json.encode(events),
        headers={**service.headers(tenant, "ingest"), **JSON},
    )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def settle_acme(service: Service) -> str:
    admin = service.headers("acme", "vendor-admin")
    ingest(service, events_of())
    created = service.client.post(
        "/v1/contracts",
        content=ACME_CONTRACT.read_bytes(),
        headers={**admin, "content-type": "application/yaml"},
    )
    assert created.status_code == 201, created.text
    signed = service.client.post("/v1/checkpoints", headers=admin)
    assert signed.status_code == 201, signed.text
    queued = service.client.post(
        "/v1/settlements", json={"contract": "acme-support", "period": "2026-11"}, headers=admin
    )
    run = ended_run(service.client, queued, admin)
    assert run["status"] == "succeeded", run
    assert (run["attempts"], run["lease_expires_at"]) == (1, None), "claimed once, lease ended"
    assert run["invoice_url"] == f"/v1/invoices/{run['invoice_id']}"
    invoice_id: str = run["invoice_id"]
    return invoice_id


@ingest_ways
def test_ingest_json_and_ndjson_store_once_and_report_duplicates(service: Service) -> None:
    events = events_of()
    first = ingest(service, events)
    assert first == {"accepted": len(events), "duplicates": 0, "tenant": "acme", "size": 13}
    again = service.client.post(
        "/v1/events",
        content=ndjson(events),
        headers={**service.headers("acme", "ingest"), **NDJSON},
    )
    assert again.status_code == 200
    assert again.json() == {"accepted": 0, "duplicates": len(events), "tenant": "acme", "size": 13}
    with SqliteLedger(service.database) as ledger:
        assert ledger.count("acme") == len(events)


@ingest_ways
def test_a_bad_event_rejects_the_batch_naming_event_field_and_reason(service: Service) -> None:
    events = [msgspec.to_builtins(event) for event in events_of()]
    events[3]["data"] = {"role": "robot"}
    response = service.client.post(
        "/v1/events",
        content=msgspec.json.encode(events),
        headers={**service.headers("acme", "ingest"), **JSON},
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert problem["errors"][0]["event_id"] == events[3]["id"]
    assert problem["errors"][0]["index"] == 3
    assert problem["errors"][0]["field"].startswith("data")
    with SqliteLedger(service.database) as ledger:
        assert ledger.count("acme") == 0


@ingest_ways
def test_an_event_of_another_tenant_rejects_the_batch(service: Service) -> None:
    events = events_of() + conversation("g1", tenant="globex")
    response = service.client.post(
        "/v1/events",
        content=msgspec.json.encode(events),
        headers={**service.headers("acme", "ingest"), **JSON},
    )
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert {error["field"] for error in errors} == {"tenant"}
    assert errors[0]["event_id"] == "g1-0"
    with SqliteLedger(service.database) as ledger:
        assert ledger.count("acme") == 0 and ledger.count("globex") == 0


def test_a_reused_event_id_with_other_content_is_a_conflict(service: Service) -> None:
    events = events_of()
    ingest(service, events)
    changed = [msgspec.to_builtins(event) for event in events]
    changed[0]["customer"] = "someone-else"
    response = service.client.post(
        "/v1/events",
        content=msgspec.json.encode(changed),
        headers={**service.headers("acme", "ingest"), **JSON},
    )
    assert response.status_code == 409
    assert response.json()["errors"][0]["event_id"] == events[0].id


def test_unsupported_content_type_and_missing_key_are_problems(service: Service) -> None:
    response = service.client.post(
        "/v1/events",
        content=b"x",
        headers={**service.headers("acme", "ingest"), "content-type": "text/plain"},
    )
    assert response.status_code == 415
    assert "text/plain" in response.json()["detail"]
    anonymous = service.client.get("/v1/contracts")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    wrong = service.client.get("/v1/contracts", headers={"Authorization": "Bearer raas_nope"})
    assert wrong.status_code == 401


def test_scopes_an_ingest_key_only_appends_a_buyer_cannot_settle(service: Service) -> None:
    ingest_key = service.headers("acme", "ingest")
    for method, path in [
        ("GET", "/v1/contracts"),
        ("GET", "/v1/invoices"),
        ("POST", "/v1/checkpoints"),
        ("GET", "/v1/checkpoints/latest"),
        ("GET", "/v1/audit"),
    ]:
        response = service.client.request(method, path, headers=ingest_key)
        assert response.status_code == 403, (method, path)
        assert "ingest key may not" in response.json()["detail"]
    buyer = service.headers("acme", "buyer")
    response = service.client.post(
        "/v1/settlements", json={"contract": "acme-support", "period": "2026-11"}, headers=buyer
    )
    assert response.status_code == 403
    auditor = service.headers("acme", "auditor")
    assert service.client.post("/v1/checkpoints", headers=auditor).status_code == 403


def test_settle_then_read_invoice_lines_and_a_verifying_evidence_bundle(service: Service) -> None:
    invoice_id = settle_acme(service)
    buyer = service.headers("acme", "buyer")
    invoice = service.client.get(f"/v1/invoices/{invoice_id}", headers=buyer)
    assert invoice.status_code == 200
    with SqliteLedger(service.database) as ledger:
        assert invoice.content == ledger.get_invoice("acme", invoice_id)
    assert invoice.json()["total"] == "1.98"
    lines = service.client.get(f"/v1/invoices/{invoice_id}/lines", headers=buyer).json()
    assert lines[0]["episodes"] == ["c1#refund", "c2#refund"]
    assert service.client.get("/v1/invoices", headers=buyer).json() == {"invoices": [invoice_id]}
    evidence = service.client.get(
        f"/v1/invoices/{invoice_id}/evidence", headers=service.headers("acme", "auditor")
    )
    assert evidence.status_code == 200
    bundle = decode_bundle(evidence.content)
    assert all(entry.disclosures is None for entry in bundle.entries), "auditors get redacted"
    verifier = (service.database.parent / "helpdesk-ai.pub").read_text()
    report = verify_bundle(bundle, parse_verifier_keys(verifier))
    assert report.ok, report
    # Settling again at the same checkpoint issues the same invoice.
    admin = service.headers("acme", "vendor-admin")
    again = service.client.post(
        "/v1/settlements", json={"contract": "acme-support", "period": "2026-11"}, headers=admin
    )
    assert ended_run(service.client, again, admin)["invoice_id"] == invoice_id
    runs = service.client.get("/v1/settlements", headers=buyer).json()["runs"]
    assert [run["status"] for run in runs] == ["succeeded", "succeeded"]


def test_a_buyer_files_a_dispute_the_vendor_rules_both_are_ledger_events(
    service: Service,
) -> None:
    invoice_id = settle_acme(service)
    buyer = service.headers("acme", "buyer")
    admin = service.headers("acme", "vendor-admin")
    bad_line = service.client.post(
        "/v1/disputes", json={"invoice_id": invoice_id, "reason": "no", "lines": [7]}, headers=buyer
    )
    assert bad_line.status_code == 422
    assert bad_line.json()["errors"][0]["field"] == "lines"
    not_billed = {"invoice_id": invoice_id, "reason": "no", "episodes": ["c9#refund"]}
    assert service.client.post("/v1/disputes", json=not_billed, headers=buyer).status_code == 422
    filing = {"invoice_id": invoice_id, "reason": "c2 came back", "episodes": ["c2#refund"]}
    assert service.client.post("/v1/disputes", json=filing, headers=admin).status_code == 403
    filed = service.client.post("/v1/disputes", json=filing, headers=buyer)
    assert filed.status_code == 201, filed.text
    dispute = filed.json()
    assert (dispute["status"], dispute["episodes"]) == ("open", ["c2#refund"])
    path = f"/v1/disputes/{dispute['dispute_id']}"
    ruling = {"ruling": "upheld", "note": "confirmed"}
    assert service.client.post(f"{path}/ruling", json=ruling, headers=buyer).status_code == 403
    ruled = service.client.post(f"{path}/ruling", json=ruling, headers=admin)
    assert ruled.status_code == 201, ruled.text
    assert ruled.json()["status"] == "upheld"
    again = service.client.post(f"{path}/ruling", json={"ruling": "rejected"}, headers=admin)
    assert again.status_code == 409
    auditor = service.headers("acme", "auditor")
    listed = service.client.get("/v1/disputes", headers=auditor).json()["disputes"]
    assert listed == [ruled.json()]
    with SqliteLedger(service.database) as ledger:
        types = [stored.event.type for stored in ledger.iter_events("acme")][-2:]
    assert types == ["dev.raas.dispute.filed", "dev.raas.dispute.ruled"]


def test_a_time_out_of_range_in_utc_is_named_not_a_server_error(service: Service) -> None:
    event = msgspec.to_builtins(events_of()[0])
    event["time"] = "0001-01-01T00:00:00+00:01"
    response = service.client.post(
        "/v1/events",
        content=msgspec.json.encode([event]),
        headers={**service.headers("acme", "ingest"), **JSON},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "time"


def test_an_unknown_query_parameter_is_refused_by_name(service: Service) -> None:
    response = service.client.get(
        "/v1/disputes?invoice=acme-support-v1-2026-11", headers=service.headers("acme", "buyer")
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "query.invoice", "reason": "is not a parameter of this route"}
    ]
    assert "invoice_id" in response.json()["detail"]


def test_a_query_parameter_given_twice_is_refused(service: Service) -> None:
    response = service.client.get(
        "/v1/disputes?invoice_id=a&invoice_id=b", headers=service.headers("acme", "buyer")
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "query.invoice_id", "reason": "is given twice"}]


def test_a_dispute_after_the_contracts_deadline_is_refused_and_stores_nothing(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoice_id = settle_acme(service)  # November 2026 in Europe/Berlin: 30 days to dispute
    buyer = service.headers("acme", "buyer")
    filing = {"invoice_id": invoice_id, "reason": "c2 came back", "episodes": ["c2#refund"]}
    last_moment = datetime(2026, 12, 30, 23, tzinfo=UTC) - timedelta(microseconds=1)
    monkeypatch.setattr(
        raas.service.tenancy, "utc_now", lambda: last_moment + timedelta(microseconds=1)
    )
    with SqliteLedger(service.database) as ledger:
        size = ledger.head("acme")
    late = service.client.post("/v1/disputes", json=filing, headers=buyer)
    assert late.status_code == 409, late.text
    assert late.headers["content-type"].startswith("application/problem+json")
    assert "2026-12-31T00:00:00+01:00" in late.json()["detail"]
    with SqliteLedger(service.database) as ledger:
        assert ledger.head("acme") == size
    assert service.client.get("/v1/disputes", headers=buyer).json()["disputes"] == []
    monkeypatch.setattr(raas.service.tenancy, "utc_now", lambda: last_moment)
    assert service.client.post("/v1/disputes", json=filing, headers=buyer).status_code == 201


def test_a_settlement_run_that_fails_is_kept_with_its_error(service: Service) -> None:
    """A run queued by another server process (a row, here written straight to the store) is
    run by this server's worker; its failure is recorded, not lost."""
    store = SqliteServiceStore(service.database)
    try:
        gone = queued_run("acme", "run-of-a-gone-contract", contract="gone", version=7)
        store.add_settlement_run("acme", gone)
    finally:
        store.close()
    service.client.app.state.services.worker.wake()  # type: ignore[attr-defined]
    buyer = service.headers("acme", "buyer")
    run = run_at(service.client, "/v1/settlements/run-of-a-gone-contract", buyer)
    assert run["status"] == "failed"
    assert run["error"] == "contract 'gone' v7 is no longer stored"
    assert (run["invoice_id"], run["invoice_url"]) == (None, None)
    assert run["finished_at"] is not None
    other = service.headers("globex", "buyer")
    assert service.client.get(f"/v1/settlements/{run['id']}", headers=other).status_code == 404


def monthly_runs(
    service: Service, text: str, name: str, events: list[Event]
) -> Callable[[str], dict[str, object]]:
    """Ingest `events`, store the contract `text` and sign a checkpoint; a function that queues
    a run of contract `name` for a period and waits for its end."""
    admin = service.headers("acme", "vendor-admin")
    ingest(service, events)
    yaml = {**admin, "content-type": "application/yaml"}
    created = service.client.post("/v1/contracts", content=text.encode(), headers=yaml)
    assert created.status_code == 201, created.text
    assert service.client.post("/v1/checkpoints", headers=admin).status_code == 201

    def run(period: str) -> dict[str, object]:
        queued = service.client.post(
            "/v1/settlements", json={"contract": name, "period": period}, headers=admin
        )
        return ended_run(service.client, queued, admin)

    return run


def verified_invoice(service: Service, run: dict[str, object]) -> dict[str, object]:
    """The invoice a run issued, after its evidence bundle verified."""
    assert run["status"] == "succeeded", run
    admin = service.headers("acme", "vendor-admin")
    invoice: dict[str, object] = service.client.get(f"{run['invoice_url']}", headers=admin).json()
    evidence = service.client.get(
        f"/v1/invoices/{run['invoice_id']}/evidence", headers=service.headers("acme", "auditor")
    )
    assert evidence.status_code == 200
    verifier = (service.database.parent / "helpdesk-ai.pub").read_text()
    report = verify_bundle(decode_bundle(evidence.content), parse_verifier_keys(verifier))
    assert report.ok, report
    return invoice


def kinds_and_amounts(invoice: dict[str, object]) -> list[tuple[str, str]]:
    lines = invoice["lines"]
    assert isinstance(lines, list)
    return [(line["kind"], line["amount"]) for line in lines]


def test_a_minimum_over_two_periods_is_trued_up_by_the_service_runs(service: Service) -> None:
    """The worker reads the run's earlier invoice from the store; before it is issued, the run
    fails naming the period to settle first."""
    text = TEXT.format(name="committed", amount="10.00").replace("periods: 3", "periods: 2")
    # 2.00 in November, 1.00 in December.
    run = monthly_runs(service, text, "committed", resolved(range(0, 2)) + resolved(range(32, 33)))
    early = run("2026-12")
    assert early["status"] == "failed"
    assert "no invoice was issued for period 2026-11" in str(early["error"])
    assert run("2026-11")["status"] == "succeeded"
    december = verified_invoice(service, run("2026-12"))
    assert kinds_and_amounts(december) == [("outcome", "1.00"), ("minimum_true_up", "7.00")]


def test_prepaid_credit_is_drawn_down_by_the_service_runs(service: Service) -> None:
    """The worker reads what earlier invoices drew from the store; a month whose earlier month
    could have drawn but has no invoice fails naming it."""
    text = PREPAID.format(name="prepaid", amount="3.00")
    # 2.00 in November, 3.00 in December: the 3.00 of credit runs out in December.
    run = monthly_runs(service, text, "prepaid", resolved(range(0, 2)) + resolved(range(32, 35)))
    early = run("2026-12")
    assert early["status"] == "failed"
    assert "no invoice was issued for the earlier period 2026-11" in str(early["error"])
    november = verified_invoice(service, run("2026-11"))
    assert kinds_and_amounts(november) == [("outcome", "2.00"), ("prepaid_drawdown", "-2.00")]
    december = verified_invoice(service, run("2026-12"))
    assert kinds_and_amounts(december) == [("outcome", "3.00"), ("prepaid_drawdown", "-1.00")]
    assert (december["total"], december["prepaid_balance"]) == ("2.00", "0.00")
