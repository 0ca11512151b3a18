"""The dashboard over HTTP, against a real SQLite ledger: sign-in, the session cookie, what each
role may open, and the downloads. What would break: a page that shows another tenant's data, a
session readable by scripts, a download whose figures differ from the issued invoice."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from dashboard_workload import Workspace, build_workspace, dashboard_app, signed_in
from fastapi.testclient import TestClient

from raas.core.invoice import invoice_from_json


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """One ledger for the tests here, which write nothing (refused requests write nothing)."""
    built = build_workspace(tmp_path_factory.mktemp("pages"))
    yield built
    built.ledger.close()


@pytest.fixture(scope="module")
def app(workspace: Workspace) -> Iterator[object]:
    yield from dashboard_app(workspace)


def test_pages_need_a_session_and_the_cookie_is_http_only(app: object) -> None:
    anonymous = TestClient(app)  # type: ignore[arg-type]
    response = anonymous.get("/dashboard/invoices", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/sign-in"
    response = anonymous.post(
        "/dashboard/sign-in", data={"api_key": "key-acme"}, follow_redirects=False
    )
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/dashboard" in cookie
    assert "key-acme" not in cookie  # the cookie names a session, not the key


@pytest.mark.parametrize("key", ["wrong", "key-ingest", ""])
def test_a_key_that_is_not_for_the_dashboard_is_refused(app: object, key: str) -> None:
    client = TestClient(app)  # type: ignore[arg-type]
    response = client.post("/dashboard/sign-in", data={"api_key": key}, follow_redirects=False)
    assert response.status_code == 401
    assert "not valid for the dashboard" in response.text
    assert "set-cookie" not in response.headers


def test_each_role_lands_on_its_own_page(app: object) -> None:
    for key, page in (
        ("key-vendor", "/dashboard/vendor"),
        ("key-acme", "/dashboard/invoices"),
        ("key-auditor", "/dashboard/audit"),
    ):
        response = signed_in(app, key).get("/dashboard/", follow_redirects=False)
        assert response.headers["location"] == page


def test_a_buyer_cannot_open_another_buyers_invoice_line_or_episode(
    app: object, workspace: Workspace
) -> None:
    globex_invoice = workspace.invoices["globex"]
    acme = signed_in(app, "key-acme")
    listing = acme.get("/dashboard/invoices").text
    assert workspace.invoices["acme"] in listing and globex_invoice not in listing
    body = workspace.ledger.get_invoice("globex", globex_invoice)
    assert body is not None
    episode = invoice_from_json(body).lines[0].episodes[0]
    for url in (
        f"/dashboard/invoices/{globex_invoice}",
        f"/dashboard/invoices/{globex_invoice}/lines/1",
        f"/dashboard/invoices/{globex_invoice}/download/json",
        f"/dashboard/episode?contract=globex-support&id={quote(episode)}",
        "/dashboard/vendor",
        "/dashboard/audit",
    ):
        assert acme.get(url).status_code == 404, url
    # The owner opens the same URLs.
    globex = signed_in(app, "key-globex")
    assert globex.get(f"/dashboard/invoices/{globex_invoice}").status_code == 200
    assert (
        globex.get(f"/dashboard/episode?contract=globex-support&id={quote(episode)}").status_code
        == 200
    )


def test_downloads_are_the_issued_invoice(app: object, workspace: Workspace) -> None:
    invoice_id = workspace.invoices["acme"]
    client = signed_in(app, "key-acme")
    stored = workspace.ledger.get_invoice("acme", invoice_id)
    response = client.get(f"/dashboard/invoices/{invoice_id}/download/json")
    assert response.content == stored
    assert "attachment" in response.headers["content-disposition"]
    invoice = invoice_from_json(response.content)
    rows = list(
        csv.reader(io.StringIO(client.get(f"/dashboard/invoices/{invoice_id}/download/csv").text))
    )
    assert [row[7] for row in rows[1:-1]] == [str(line.amount) for line in invoice.lines]
    assert rows[-1][7] == str(invoice.total)
    pdf = client.get(f"/dashboard/invoices/{invoice_id}/download/pdf")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF-")
    assert client.get(f"/dashboard/invoices/{invoice_id}/download/exe").status_code == 404


def test_an_episode_page_shows_its_verdict_rule_transcript_and_proof(
    app: object, workspace: Workspace
) -> None:
    invoice_id = workspace.invoices["acme"]
    body = workspace.ledger.get_invoice("acme", invoice_id)
    assert body is not None
    invoice = invoice_from_json(body)
    line = next(line for line in invoice.lines if line.outcome == "ai_resolution")
    episode = line.episodes[0]
    page = (
        signed_in(app, "key-acme")
        .get(f"/dashboard/episode?contract=acme-support&id={quote(episode)}")
        .text
    )
    assert '<strong id="outcome">ai_resolution</strong>' in page
    assert "recontact_within(72h)" in page  # the rule, as the contract writes it
    assert "signature verified with helpdesk-ai" in page
    assert "events proven in the checkpoint" in page and 'class="bad"' not in page
    assert 'class="customer"' in page  # the transcript, in cleartext for the buyer


def test_the_vendor_sees_outcomes_margins_and_tiers(app: object) -> None:
    page = signed_in(app, "key-vendor").get("/dashboard/vendor").text
    for words in ("Resolution rate", "p95 latency", "Model cost per outcome", "Margin", "small"):
        assert words in page
    assert "<svg" in page and "Episodes by outcome per day" in page


def test_the_auditor_sees_checkpoints_and_a_verified_bundle(
    app: object, workspace: Workspace
) -> None:
    auditor = signed_in(app, "key-auditor")
    page = auditor.get("/dashboard/audit").text
    assert "signature verified with helpdesk-ai" in page
    invoice_id = workspace.invoices["acme"]
    assert workspace.invoices["globex"] not in page
    verdict = auditor.get(f"/dashboard/audit/verify/{invoice_id}").text
    assert 'id="verdict">verified<' in verdict
    bundle = auditor.get(f"/dashboard/audit/bundle/{invoice_id}")
    assert bundle.status_code == 200 and b'"checkpoint"' in bundle.content
    assert auditor.get(f"/dashboard/audit/verify/{workspace.invoices['globex']}").status_code == 404


def csrf_of(client: TestClient, url: str) -> str:
    page = client.get(url).text
    marker = 'name="csrf" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


def test_disputes_are_refused_to_the_wrong_role_tenant_or_form_and_nothing_is_written(
    app: object, workspace: Workspace
) -> None:
    acme_invoice = workspace.invoices["acme"]
    globex_invoice = workspace.invoices["globex"]
    body = workspace.ledger.get_invoice("globex", globex_invoice)
    assert body is not None
    globex_episode = invoice_from_json(body).lines[0].episodes[0]
    heads = {tenant: workspace.ledger.head(tenant) for tenant in ("acme", "globex")}
    acme = signed_in(app, "key-acme")
    csrf = csrf_of(acme, "/dashboard/invoices")
    form = {"csrf": csrf, "invoice": globex_invoice, "episode": globex_episode, "reason": "no"}
    assert acme.post("/dashboard/disputes", data=form).status_code == 404
    # An episode that is not on the invoice named.
    form = {**form, "invoice": acme_invoice}
    assert acme.post("/dashboard/disputes", data=form).status_code == 404
    # A stale or missing form token.
    form = {**form, "csrf": "forged"}
    assert acme.post("/dashboard/disputes", data=form).status_code == 403
    # A buyer cannot rule, an auditor cannot file.
    ruling = {"csrf": csrf, "contract": "acme-support", "ruling": "upheld"}
    assert acme.post("/dashboard/disputes/x/ruling", data=ruling).status_code == 404
    auditor = signed_in(app, "key-auditor")
    form = {**form, "csrf": csrf_of(auditor, "/dashboard/audit")}
    assert auditor.post("/dashboard/disputes", data=form).status_code == 404
    assert {tenant: workspace.ledger.head(tenant) for tenant in heads} == heads
