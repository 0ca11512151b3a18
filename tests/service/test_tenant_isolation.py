"""Tenant isolation: every endpoint, tried with every key of one tenant and the identifiers of
the other (contract names, versions, run ids, invoice ids, dispute ids, log sizes and indexes),
neither reads nor changes the other's data.

What would break: a route that looks an identifier up without its tenant (an invoice id names
only a contract, version and period, which two buyers' contracts may share), a list that is not
filtered, a write that lands in the other's log. A new /v1 route fails
`test_every_route_is_tried` until a request for it is added here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
import pytest

from conftest import ACME_CONTRACT, TENANTS, Service
from factories import conversation
from raas.ledger.sqlite import SqliteLedger
from raas.service.sql_store import SqliteServiceStore
from raas.service.store import SCOPES
from settlement_runs import ended_run

JSON = {"content-type": "application/json"}


@dataclass(frozen=True)
class Holdings:
    """The identifiers of one tenant's data."""

    tenant: str
    contract: str
    run_id: str
    invoice_id: str
    dispute_id: str
    size: int


def contract_document(tenant: str, contract: str) -> str:
    text = ACME_CONTRACT.read_text()
    return text.replace("buyer: acme", f"buyer: {tenant}").replace(
        "contract: acme-support", f"contract: {contract}"
    )


def populate(service: Service, tenant: str, contract: str | None = None) -> Holdings:
    contract = f"{tenant}-support" if contract is None else contract
    admin = service.headers(tenant, "vendor-admin")
    events = conversation(f"{tenant}-c1", tenant=tenant) + conversation(
        f"{tenant}-c2", customer="customer-2", confirm=True, tenant=tenant
    )
    post = service.client.post
    ingested = post(
        "/v1/events",
        content=msgspec.json.encode(events),
        headers={**service.headers(tenant, "ingest"), **JSON},
    )
    assert ingested.status_code == 200
    created = post(
        "/v1/contracts", json={"document": contract_document(tenant, contract)}, headers=admin
    )
    assert created.status_code == 201, created.text
    assert post("/v1/checkpoints", headers=admin).status_code == 201
    priced = service.client.put("/v1/prices", json=price_table(tenant), headers=admin)
    assert priced.status_code == 200, priced.text
    queued = post(
        "/v1/settlements", json={"contract": contract, "period": "2026-11"}, headers=admin
    )
    run = ended_run(service.client, queued, admin)
    assert run["status"] == "succeeded", run
    invoice_id = run["invoice_id"]
    filing = {"invoice_id": invoice_id, "reason": "check", "lines": [0]}
    dispute = post("/v1/disputes", json=filing, headers=service.headers(tenant, "buyer"))
    assert dispute.status_code == 201, dispute.text
    return Holdings(
        tenant=tenant,
        contract=contract,
        run_id=run["id"],
        invoice_id=invoice_id,
        dispute_id=dispute.json()["dispute_id"],
        size=len(events),
    )


def price_table(tenant: str) -> dict[str, Any]:
    price = {"input_token_price": "0.000001", "output_token_price": "0.000002"}
    return {"models": {f"{tenant}-model": price}}


def otlp_span_of(victim: Holdings) -> bytes:
    """An OTLP JSON export whose GenAI span names the victim's tenant, customer and conversation:
    the key's tenant is the only one it may reach."""
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "m",
        "gen_ai.conversation.id": f"{victim.tenant}-c1",
        "raas.customer": "customer-1",
        "raas.tenant": victim.tenant,
    }
    span = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "startTimeUnixNano": "1793700000000000000",
        "endTimeUnixNano": "1793700000500000000",
        "attributes": [
            {"key": key, "value": {"stringValue": value}} for key, value in attributes.items()
        ]
        + [
            {"key": f"gen_ai.usage.{kind}_tokens", "value": {"intValue": "1"}}
            for kind in ("input", "output")
        ],
    }
    return msgspec.json.encode({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})


def requests_against(victim: Holdings) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, route path, request) for every /v1 route, aimed at the victim's identifiers."""
    invoice = f"/v1/invoices/{victim.invoice_id}"
    dispute = f"/v1/disputes/{victim.dispute_id}"
    events = conversation("stolen", tenant=victim.tenant)
    return [
        ("GET", "/v1/me", {}),
        ("POST", "/v1/events", {"content": msgspec.json.encode(events), "headers": JSON}),
        ("POST", "/v1/traces", {"content": otlp_span_of(victim), "headers": JSON}),
        (
            "POST",
            "/v1/contracts",
            {"json": {"document": contract_document(victim.tenant, victim.contract)}},
        ),
        ("GET", "/v1/contracts", {}),
        ("GET", "/v1/contracts/{contract}", {"path": f"/v1/contracts/{victim.contract}"}),
        (
            "GET",
            "/v1/contracts/{contract}/versions/{version}",
            {"path": f"/v1/contracts/{victim.contract}/versions/1"},
        ),
        ("POST", "/v1/settlements", {"json": {"contract": victim.contract, "period": "2026-11"}}),
        ("GET", "/v1/settlements", {}),
        ("GET", "/v1/settlements/{run_id}", {"path": f"/v1/settlements/{victim.run_id}"}),
        ("GET", "/v1/invoices", {}),
        ("GET", "/v1/invoices/{invoice_id}", {"path": invoice}),
        ("GET", "/v1/invoices/{invoice_id}/lines", {"path": f"{invoice}/lines"}),
        ("GET", "/v1/invoices/{invoice_id}/evidence", {"path": f"{invoice}/evidence"}),
        ("GET", "/v1/invoices/{invoice_id}/receipt", {"path": f"{invoice}/receipt?line=1"}),
        ("POST", "/v1/checkpoints", {}),
        ("GET", "/v1/checkpoints/latest", {}),
        ("GET", "/v1/checkpoints/{size}", {"path": f"/v1/checkpoints/{victim.size}"}),
        (
            "GET",
            "/v1/proofs/inclusion",
            {"path": f"/v1/proofs/inclusion?index=0&size={victim.size}"},
        ),
        (
            "GET",
            "/v1/proofs/consistency",
            {"path": f"/v1/proofs/consistency?old_size=1&new_size={victim.size}"},
        ),
        ("GET", "/v1/audit", {}),
        ("PUT", "/v1/prices", {"json": price_table("stolen")}),
        ("GET", "/v1/prices", {}),
        (
            "POST",
            "/v1/disputes",
            {"json": {"invoice_id": victim.invoice_id, "reason": "x", "lines": [0]}},
        ),
        ("GET", "/v1/disputes", {"path": f"/v1/disputes?invoice_id={victim.invoice_id}"}),
        ("GET", "/v1/disputes/{dispute_id}", {"path": dispute}),
        (
            "POST",
            "/v1/disputes/{dispute_id}/ruling",
            {"path": f"{dispute}/ruling", "json": {"ruling": "rejected"}},
        ),
    ]


def snapshot(service: Service, tenant: str) -> dict[str, Any]:
    """Everything stored for the tenant, read straight from the stores."""
    with SqliteLedger(service.database) as ledger:
        events = [(item.log_index, item.entry) for item in ledger.iter_events(tenant)]
        invoices = {name: ledger.get_invoice(tenant, name) for name in ledger.list_invoices(tenant)}
        checkpoint = ledger.latest_checkpoint(tenant)
    store = SqliteServiceStore(service.database)
    try:
        return {
            "events": events,
            "invoices": invoices,
            "checkpoint": checkpoint,
            "contracts": store.contract_versions(tenant),
            "runs": store.settlement_runs(tenant),
            "disputes": store.dispute_ids(tenant),
            "keys": store.api_keys(tenant),
            "prices": store.model_prices(tenant),
        }
    finally:
        store.close()


def routes(service: Service) -> set[tuple[str, str]]:
    found = set()
    for route in service.client.app.routes:  # type: ignore[attr-defined]
        path = getattr(route, "path", "")
        for method in getattr(route, "methods", ()) or ():
            if path.startswith("/v1/") and method != "HEAD":
                found.add((method, path))
    return found


def test_every_route_is_tried(service: Service) -> None:
    victim = Holdings("acme", "acme-support", "r", "i", "d", 1)
    tried = {(method, path) for method, path, _ in requests_against(victim)}
    missing = routes(service) - tried
    assert not missing, f"add a request for these routes to requests_against: {sorted(missing)}"


@pytest.mark.parametrize("attacker", TENANTS)
def test_no_key_of_one_tenant_reads_or_changes_the_others_data(
    service: Service, attacker: str
) -> None:
    holdings = {tenant: populate(service, tenant) for tenant in TENANTS}
    victim = holdings[next(tenant for tenant in TENANTS if tenant != attacker)]
    before = snapshot(service, victim.tenant)
    secrets = [victim.invoice_id, victim.run_id, victim.dispute_id, victim.contract]
    secrets += [key.key_id for key in before["keys"]] + [f"{victim.tenant}-model"]
    for scope in SCOPES:
        headers = service.headers(attacker, scope)
        for method, route, request in requests_against(victim):
            request = dict(request)
            path = request.pop("path", route)
            request["headers"] = {**headers, **request.get("headers", {})}
            response = service.client.request(method, path, **request)
            where = f"{scope} key of {attacker}: {method} {path}"
            if response.is_success:
                leaked = [secret for secret in secrets if secret in response.text]
                assert not leaked, f"{where} answered with {leaked}: {response.text[:300]}"
                assert victim.tenant not in response.text, f"{where}: {response.text[:300]}"
            else:
                assert response.status_code in (403, 404, 409, 422), f"{where}: {response.text}"
                # OTLP asks for a google.rpc.Status on its path (JSON here: the request was).
                expected = (
                    "application/json" if route == "/v1/traces" else "application/problem+json"
                )
                assert response.headers["content-type"] == expected, where
    assert snapshot(service, victim.tenant) == before


def test_buyers_whose_contracts_share_a_name_each_read_only_their_own_invoice(
    service: Service,
) -> None:
    # A vendor names every buyer's contract alike: the same contract, version and period give
    # both buyers the same invoice id, and each must be issued and read its own.
    holdings = {tenant: populate(service, tenant, "standard-support") for tenant in TENANTS}
    invoice_id = holdings["acme"].invoice_id
    assert holdings["globex"].invoice_id == invoice_id == "standard-support-v1-2026-11"
    with SqliteLedger(service.database) as ledger:
        issued = {tenant: ledger.get_invoice(tenant, invoice_id) for tenant in TENANTS}
    assert issued["acme"] is not None and issued["acme"] != issued["globex"]
    for tenant in TENANTS:
        buyer = service.headers(tenant, "buyer")
        read = service.client.get(f"/v1/invoices/{invoice_id}", headers=buyer)
        assert read.status_code == 200, read.text
        assert read.content == issued[tenant] and read.json()["buyer"] == tenant
        listed = service.client.get("/v1/invoices", headers=buyer).json()
        assert listed == {"invoices": [invoice_id]}
        disputes = service.client.get(
            "/v1/disputes", params={"invoice_id": invoice_id}, headers=buyer
        ).json()["disputes"]
        assert [item["dispute_id"] for item in disputes] == [holdings[tenant].dispute_id]
        bundle = service.client.get(
            f"/v1/invoices/{invoice_id}/evidence", headers=service.headers(tenant, "auditor")
        )
        assert bundle.status_code == 200, bundle.text
        assert msgspec.json.decode(bundle.json()["invoice"].encode())["buyer"] == tenant
