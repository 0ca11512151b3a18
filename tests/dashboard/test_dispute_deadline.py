"""Disputes filed from the dashboard after the contract's deadline, served on its own and by
`raas serve`: what would break is a late filing stored, a refusal the buyer cannot read (a bare
error status), or a filing in time refused. November 2026 in Europe/Berlin may be disputed until
2026-12-31T00:00:00+01:00 (30 days after the period), the first instant too late."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from dashboard_workload import Workspace, authenticate, build_workspace, service_settings
from fastapi.testclient import TestClient

import raas.service.tenancy
from raas.core.invoice import invoice_from_json
from raas.dashboard.app import create_dashboard_app
from raas.ledger.sqlite import SqliteLedger
from raas.service.app import create_app

TOO_LATE = datetime(2026, 12, 30, 23, tzinfo=UTC)
IN_TIME = TOO_LATE - timedelta(microseconds=1)
DEADLINE_SHOWN = "2026-12-31T00:00:00+01:00"


class Clock:
    def __init__(self) -> None:
        self.now = IN_TIME

    def __call__(self) -> datetime:
        return self.now


def signed_in(client: TestClient, key: str) -> TestClient:
    response = client.post("/dashboard/sign-in", data={"api_key": key}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return client


def first_billed_episode(workspace: Workspace, ledger: SqliteLedger) -> tuple[str, str]:
    invoice_id = workspace.invoices["acme"]
    body = ledger.get_invoice("acme", invoice_id)
    assert body is not None
    invoice = invoice_from_json(body)
    return invoice_id, next(line.episodes[0] for line in invoice.lines if line.episodes)


def episode_url(invoice_id: str, episode: str) -> str:
    return (
        f"/dashboard/episode?contract=acme-support&version=1&invoice={quote(invoice_id)}"
        f"&id={quote(episode)}"
    )


def csrf_of(page: str) -> str:
    return page.split('name="csrf" value="', 1)[1].split('"', 1)[0]


def check_late_then_in_time(
    client: TestClient, ledger: SqliteLedger, invoice_id: str, episode: str, set_now: Clock
) -> None:
    """The form is shown in time; sent once the deadline passed it is refused on the page,
    naming the deadline, and nothing is stored; the page then offers no form; sent in time it
    is filed."""
    set_now.now = IN_TIME
    page = client.get(episode_url(invoice_id, episode))
    assert page.status_code == 200
    assert 'action="/dashboard/disputes"' in page.text
    csrf = csrf_of(page.text)
    size = ledger.head("acme")

    set_now.now = TOO_LATE
    filing = {"csrf": csrf, "invoice": invoice_id, "episode": episode, "reason": "came back"}
    late = client.post("/dashboard/disputes", data=filing, follow_redirects=False)
    assert late.status_code == 409, late.text
    assert late.headers["content-type"].startswith("text/html")
    assert 'id="dispute-refused"' in late.text
    assert f"after the deadline {DEADLINE_SHOWN}" in late.text
    assert "came back</textarea>" not in late.text  # no form: the deadline passed
    assert ledger.head("acme") == size
    assert "No dispute about this episode." in late.text

    again = client.get(episode_url(invoice_id, episode)).text
    assert 'id="dispute-deadline"' in again and "2026-12-31 00:00:00" in again
    assert 'action="/dashboard/disputes"' not in again

    set_now.now = IN_TIME
    filed = client.post("/dashboard/disputes", data=filing, follow_redirects=False)
    assert filed.status_code == 303, filed.text
    assert ledger.head("acme") == size + 1
    assert 'class="dispute-status">open<' in client.get(episode_url(invoice_id, episode)).text


def test_the_standalone_dashboard_refuses_a_late_dispute(tmp_path: Path) -> None:
    workspace = build_workspace(tmp_path, conversations=60)
    clock = Clock()
    data = workspace.data()
    try:
        client = signed_in(TestClient(create_dashboard_app(data, authenticate, clock)), "key-acme")
        invoice_id, episode = first_billed_episode(workspace, workspace.ledger)
        check_late_then_in_time(client, workspace.ledger, invoice_id, episode, clock)
    finally:
        data.close()
        workspace.ledger.close()


@pytest.fixture
def service_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    clock = Clock()
    monkeypatch.setattr(raas.service.tenancy, "utc_now", clock)
    yield clock


def test_the_served_dashboard_refuses_a_late_dispute(tmp_path: Path, service_clock: Clock) -> None:
    workspace = build_workspace(tmp_path, conversations=60)
    settings = service_settings(workspace)
    with TestClient(create_app(settings)) as client:
        signed_in(client, workspace.keys["key-acme"])
        with SqliteLedger(tmp_path / "ledger.db") as ledger:
            invoice_id, episode = first_billed_episode(workspace, ledger)
            check_late_then_in_time(client, ledger, invoice_id, episode, service_clock)
