"""The dashboard when a vendor names every buyer's contract alike, so both buyers' invoices of a
month share an id. What would break: a page that shows one buyer the other's invoice under that
id, or a vendor's or auditor's link that opens the other buyer's invoice or contract."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest
from dashboard_workload import Workspace, build_workspace, dashboard_app, signed_in

BUYERS = ("acme", "globex")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    built = build_workspace(
        tmp_path_factory.mktemp("shared"), conversations=40, contract_name="standard-support"
    )
    yield built
    built.ledger.close()


@pytest.fixture(scope="module")
def app(workspace: Workspace) -> Iterator[object]:
    yield from dashboard_app(workspace)


@pytest.fixture(scope="module")
def issued(workspace: Workspace) -> dict[str, bytes]:
    """Each buyer's invoice of the month, all under one id."""
    invoice_id = workspace.invoices["acme"]
    assert workspace.invoices["globex"] == invoice_id
    bodies = {buyer: workspace.ledger.get_invoice(buyer, invoice_id) for buyer in BUYERS}
    assert bodies["acme"] is not None and bodies["globex"] is not None
    assert bodies["acme"] != bodies["globex"]
    return {buyer: body for buyer, body in bodies.items() if body is not None}


def test_each_buyer_opens_only_its_own_invoice_under_the_shared_id(
    app: object, workspace: Workspace, issued: dict[str, bytes]
) -> None:
    invoice_id = quote(workspace.invoices["acme"])
    for buyer, other in (("acme", "globex"), ("globex", "acme")):
        client = signed_in(app, f"key-{buyer}")
        download = client.get(f"/dashboard/invoices/{invoice_id}/download/json")
        assert download.content == issued[buyer]
        assert client.get(f"/dashboard/invoices/{invoice_id}?buyer={buyer}").status_code == 200
        for url in (
            f"/dashboard/invoices/{invoice_id}?buyer={other}",
            f"/dashboard/invoices/{invoice_id}/download/json?buyer={other}",
            f"/dashboard/invoices/{invoice_id}/lines/1?buyer={other}",
        ):
            assert client.get(url).status_code == 404, url


def test_the_vendor_opens_each_buyers_invoice_through_the_buyer_its_links_name(
    app: object, workspace: Workspace, issued: dict[str, bytes]
) -> None:
    invoice_id = quote(workspace.invoices["acme"])
    vendor = signed_in(app, "key-vendor")
    listing = vendor.get("/dashboard/invoices").text
    for buyer in BUYERS:
        assert f"/dashboard/invoices/{invoice_id}?buyer={buyer}" in listing
        download = vendor.get(f"/dashboard/invoices/{invoice_id}/download/json?buyer={buyer}")
        assert download.content == issued[buyer]
        line = vendor.get(f"/dashboard/invoices/{invoice_id}/lines/1?buyer={buyer}")
        assert line.status_code == 200 and f"?buyer={buyer}" in line.text
    # Without a buyer the vendor's own tenant is meant, which was issued nothing.
    assert vendor.get(f"/dashboard/invoices/{invoice_id}").status_code == 404


def test_evidence_is_of_the_buyer_named_under_that_buyers_contract(
    app: object, workspace: Workspace, issued: dict[str, bytes]
) -> None:
    invoice_id = quote(workspace.invoices["acme"])
    auditor = signed_in(app, "key-auditor")  # acme's auditor
    verdict = auditor.get(f"/dashboard/audit/verify/{invoice_id}?buyer=acme").text
    assert 'id="verdict">verified<' in verdict
    assert auditor.get(f"/dashboard/audit/verify/{invoice_id}?buyer=globex").status_code == 404
    assert auditor.get(f"/dashboard/audit/bundle/{invoice_id}?buyer=globex").status_code == 404
    vendor = signed_in(app, "key-vendor")
    for buyer in BUYERS:
        bundle = vendor.get(f"/dashboard/audit/bundle/{invoice_id}?buyer={buyer}")
        assert bundle.status_code == 200, bundle.text
        assert bundle.json()["invoice"].encode() == issued[buyer]
