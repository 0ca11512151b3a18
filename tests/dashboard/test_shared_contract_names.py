"""The dashboard when a vendor names every buyer's contract alike, so both buyers' invoices of a
month share an id. What would break: a page that shows one buyer the other's invoice under that
id, a vendor's or auditor's link that opens the other buyer's invoice or contract, or a vendor
page or episode found by the contract's name alone (the first buyer's, silently)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from dashboard_workload import Workspace, build_workspace, dashboard_app, signed_in

from raas.core.invoice import invoice_from_json
from raas.dashboard.data import ContractText, DashboardData

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
        disposition = (
            f'attachment; filename="bundle-invoice-{buyer}_{workspace.invoices[buyer]}.json"'
        )
        assert bundle.headers["content-disposition"] == disposition


def kpi(page: str, label: str) -> str:
    """The value of the KPI `label` on a vendor page."""
    found = re.search(
        rf'<div class="label">{label}</div><div class="value">([^<]*)</div>'
        r'<div class="note">([^<]*)</div>',
        page,
    )
    assert found is not None, f"no KPI {label!r} on the page"
    return f"{found[1]} / {found[2]}"


def links(page: str) -> list[str]:
    return [html.unescape(href) for href in re.findall(r'href="([^"]+)"', page)]


def test_the_vendor_page_of_each_buyer_shows_that_buyers_figures(
    app: object, workspace: Workspace
) -> None:
    vendor = signed_in(app, "key-vendor")
    shown = {}
    for buyer in BUYERS:
        page = vendor.get(f"/dashboard/vendor?contract=standard-support&buyer={buyer}")
        assert page.status_code == 200, page.text
        assert page.text.count("<section>") == 1  # that buyer's contract, not every namesake
        assert f'<span class="muted">with {buyer}</span>' in page.text
        shown[buyer] = kpi(page.text, "Episodes")
        assert f"ledger size {workspace.ledger.head(buyer):,}" in shown[buyer]
        # Every episode link names the buyer (from this page and its invoice's first line), and
        # opens that buyer's episode.
        line = f"/dashboard/invoices/{quote(workspace.invoices[buyer])}/lines/1?buyer={buyer}"
        episodes = [
            url
            for found in (page.text, vendor.get(line).text)
            for url in links(found)
            if url.startswith("/dashboard/episode?")
        ]
        assert episodes and all(f"buyer={buyer}&" in url for url in episodes)
        assert vendor.get(episodes[0]).status_code == 200
        # The picker offers each buyer's contract; this one is selected.
        selected = re.search(r'<option value="([^"]+)" selected>', page.text)
        assert selected is not None and html.unescape(selected[1]).endswith(f"buyer={buyer}")
    assert shown["acme"] != shown["globex"]
    # The picker reaches the other buyer's page.
    page = vendor.get("/dashboard/vendor").text
    options = [html.unescape(value) for value in re.findall(r'<option value="([^"]+)"', page)]
    assert options == [
        f"/dashboard/vendor?contract=standard-support&buyer={buyer}" for buyer in BUYERS
    ]


def test_a_name_shared_by_several_buyers_asks_which_rather_than_picking_one(
    app: object, workspace: Workspace, issued: dict[str, bytes]
) -> None:
    vendor = signed_in(app, "key-vendor")
    page = vendor.get("/dashboard/vendor?contract=standard-support")
    assert page.status_code == 300
    assert 'class="kpis"' not in page.text
    assert [url for url in links(page.text) if "contract=" in url] == [
        f"/dashboard/vendor?contract=standard-support&buyer={buyer}" for buyer in BUYERS
    ]
    episode = invoice_from_json(issued["globex"]).lines[0].episodes[0]
    url = f"/dashboard/episode?contract=standard-support&id={quote(episode)}"
    page = vendor.get(url)
    assert page.status_code == 300 and "Transcript" not in page.text
    choices = [url for url in links(page.text) if "contract=" in url]
    assert choices == [f"{url}&buyer={buyer}" for buyer in BUYERS]
    assert vendor.get(choices[1]).status_code == 200  # globex's episode, under its contract
    assert vendor.get(choices[0]).status_code == 404  # not in acme's log


def test_a_buyers_key_sees_only_its_own_figures_whatever_buyer_it_names(
    app: object, issued: dict[str, bytes]
) -> None:
    # A vendor key scoped to acme's log: its own contract by default, never globex's.
    scoped = signed_in(app, "key-acme-vendor")
    page = scoped.get("/dashboard/vendor?contract=standard-support")
    assert page.status_code == 200 and '<span class="muted">with acme</span>' in page.text
    assert "globex" not in page.text
    assert scoped.get("/dashboard/vendor?contract=standard-support&buyer=globex").status_code == 404
    assert scoped.get("/dashboard/vendor?buyer=globex").status_code == 404
    globex_episode = invoice_from_json(issued["globex"]).lines[0].episodes[0]
    acme_episode = invoice_from_json(issued["acme"]).lines[0].episodes[0]
    for key in ("key-acme", "key-acme-vendor"):
        client = signed_in(app, key)
        base = "/dashboard/episode?contract=standard-support&id="
        assert client.get(f"{base}{quote(acme_episode)}").status_code == 200, key
        for url in (
            f"{base}{quote(globex_episode)}&buyer=globex",
            f"{base}{quote(globex_episode)}",
            f"{base}{quote(acme_episode)}&buyer=globex",
        ):
            assert client.get(url).status_code == 404, (key, url)
    # A buyer's own key opens its episode under its own name too, and not the other's.
    globex = signed_in(app, "key-globex")
    assert globex.get(f"{base}{quote(globex_episode)}&buyer=globex").status_code == 200
    assert globex.get(f"{base}{quote(acme_episode)}&buyer=acme").status_code == 404


def test_figures_of_namesake_contracts_are_kept_per_buyer(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Same name and version, other terms: globex's contract judges recontacts within an hour.
    The figures of a dashboard holding both equal those of one holding each alone."""
    acme = workspace.contracts[0]
    text = workspace.contracts[1].text.replace(
        "recontact_window_hours: 72", "recontact_window_hours: 1"
    )
    globex = ContractText.parse(text, "globex.yaml")
    assert globex.contract.contract == acme.contract.contract
    assert globex.contract.version == acme.contract.version
    both = DashboardData(workspace.ledger, [acme, globex], tmp_path / "both")
    alone = {
        item.contract.buyer: DashboardData(workspace.ledger, [item], tmp_path / item.contract.buyer)
        for item in (acme, globex)
    }
    try:
        expected = {
            buyer: data.contract_figures(item)
            for (buyer, data), item in zip(alone.items(), (acme, globex), strict=True)
        }
        assert expected["acme"].billed != expected["globex"].billed
        for item in (acme, globex, acme, globex):
            assert both.contract_figures(item) == expected[item.contract.buyer]
        kept = sorted(path.name for path in (tmp_path / "both").glob("*.figures.json"))
        assert kept == [
            "acme.standard-support.v1.figures.json",
            "globex.standard-support.v1.figures.json",
        ]
    finally:
        both.close()
        for data in alone.values():
            data.close()
