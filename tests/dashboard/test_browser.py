"""The dashboard in a real browser (Debian's chromium driven by Playwright), served by the
service's own app (`raas serve`'s `create_app`) with API keys from its store, as people use it:
a buyer signs in, opens an invoice, drills down to an episode and reads why it was billed, and
disputes it; the vendor rules on the dispute; a buyer cannot open another buyer's invoice by
typing its URL; the vendor and the auditor see their pages. Each main page is saved as a
screenshot (to $RAAS_SCREENSHOTS when set, as the README's pictures are made:
`RAAS_SCREENSHOTS=docs/screenshots pytest tests/dashboard/test_browser.py`)."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from dashboard_workload import Workspace, build_workspace, service_settings

import raas.service.tenancy
from gateway.gateway_upstream import ServerThread
from raas.service.app import create_app

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
INSTALL_LOCK = Path("/tmp/raas-chromium-install.lock")


def debian_chromium() -> Path:
    """Debian's chromium, installed with apt-get when missing and this runs as root (the
    project's own set-up: Playwright never downloads a browser here)."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(
            "browser tests need Debian's chromium at /usr/bin/chromium: install it with "
            "`apt-get install -y chromium` (run as root and they install it themselves)"
        )
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Two test workers may both get here: one installs while the other waits.
    with INSTALL_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not CHROMIUM.exists():
            for command in (
                ["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "chromium"],
            ):
                result = subprocess.run(
                    command, env=environment, capture_output=True, text=True, timeout=900
                )
                if result.returncode != 0:
                    pytest.fail(f"{' '.join(command)} failed: {result.stderr[-2000:]}")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = debian_chromium()
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(executable), args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module", autouse=True)
def filing_clock() -> Iterator[None]:
    """Disputes are filed at the wall clock's time; these invoices are of November 2026, so the
    clock stands inside that month's dispute window for the tests to pass later on too."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            raas.service.tenancy, "utc_now", lambda: datetime(2026, 12, 2, 12, tzinfo=UTC)
        )
        yield


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Workspace]]:
    """The service over a ledger with two buyers' months and invoices; its store holds both
    contracts and a key per holder (`Workspace.keys` maps `SERVICE_HOLDERS` to them)."""
    folder = tmp_path_factory.mktemp("browser")
    workspace = build_workspace(folder, conversations=200)
    settings = service_settings(workspace)
    with ServerThread(create_app(settings), lifespan="on") as server:
        yield server.url, workspace


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wanted = os.environ.get("RAAS_SCREENSHOTS")
    folder = Path(wanted) if wanted else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sign_in(browser: Any, served: tuple[str, Workspace], holder: str) -> Any:
    url, workspace = served
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{url}/dashboard/sign-in")
    page.fill("#api_key", workspace.keys[holder])
    page.click("button[type=submit]")
    return page


def test_a_buyer_drills_from_an_invoice_to_an_episode(
    browser: Any, served: tuple[str, Workspace], screenshots: Path
) -> None:
    _url, workspace = served
    invoice_id = workspace.invoices["acme"]
    page = sign_in(browser, served, "key-acme")
    assert page.url.endswith("/dashboard/invoices")
    page.screenshot(path=str(screenshots / "buyer-invoices.png"), full_page=True)
    page.click(f"text={invoice_id}")
    assert page.locator("h1").inner_text() == f"Invoice {invoice_id}"
    page.screenshot(path=str(screenshots / "buyer-invoice.png"), full_page=True)

    # Sorting by amount puts the largest line last, then first.
    amounts = page.locator("#lines thead th", has_text="Amount")
    amounts.click()
    assert amounts.get_attribute("aria-sort") == "ascending"

    page.click("#lines tbody tr >> text=/episodes$/ >> nth=0")
    assert "/lines/" in page.url
    rows = page.locator("#episodes tbody tr")
    total = rows.count()
    assert total > 0
    # The filter keeps only the rows that hold what is typed.
    first_intent = rows.nth(0).locator("td").nth(1).inner_text()
    page.fill("input.table-filter", first_intent)
    visible = page.locator("#episodes tbody tr:visible")
    assert 0 < visible.count() <= total
    for index in range(visible.count()):
        assert first_intent in visible.nth(index).inner_text()
    page.screenshot(path=str(screenshots / "buyer-line.png"), full_page=True)

    visible.nth(0).locator("a").click()
    assert page.locator("h1").inner_text().startswith("Episode")
    assert page.locator("#outcome").inner_text() in {"ai_resolution", "handoff"}
    assert page.locator("#reason").inner_text() != ""
    assert "events proven in the checkpoint" in page.locator("#proof").inner_text()
    assert page.locator("ol.transcript li").count() > 0
    page.screenshot(path=str(screenshots / "buyer-episode.png"), full_page=True)
    page.close()


def test_a_buyer_disputes_an_episode_and_the_vendor_rules_on_it(
    browser: Any, served: tuple[str, Workspace], screenshots: Path
) -> None:
    url, workspace = served
    invoice_id = workspace.invoices["acme"]
    page = sign_in(browser, served, "key-acme")
    page.goto(f"{url}/dashboard/invoices/{invoice_id}/lines/1")
    link = page.locator("#episodes tbody tr a").first
    episode = link.inner_text()
    link.click()
    assert "No dispute about this episode." in page.locator("#disputes").inner_text()
    page.fill("#dispute-reason", "The customer wrote again the next day: not resolved.")
    page.click("text=File dispute")
    assert page.locator(".dispute-status").inner_text() == "open"
    assert page.locator("form.dispute").count() == 0  # one open dispute at a time
    page.screenshot(path=str(screenshots / "buyer-dispute.png"), full_page=True)
    page.close()

    vendor = sign_in(browser, served, "key-vendor")
    row = vendor.locator("#open-disputes tbody tr", has_text=episode)
    assert "not resolved" in row.inner_text()
    vendor.screenshot(path=str(screenshots / "vendor-review-queue.png"), full_page=True)
    row.locator("input[name=note]").fill("Recontact confirmed in the transcript.")
    row.locator("button[value=upheld]").click()
    assert vendor.locator("#open-disputes tbody tr", has_text=episode).count() == 0
    assert "upheld" in vendor.locator("table", has_text=episode).last.inner_text()
    vendor.close()

    page = sign_in(browser, served, "key-acme")
    page.goto(f"{url}/dashboard/invoices/{invoice_id}/lines/1")
    page.locator("#episodes tbody tr a", has_text=episode).click()
    assert page.locator(".dispute-status").inner_text() == "upheld"

    # The vendor settles the next month; the upheld dispute is credited on it, pointing at the
    # line it corrects.
    next_invoice = settle_next_month(workspace)
    page.goto(f"{url}/dashboard/invoices")
    page.click(f"text={next_invoice}")
    adjustment = page.locator("#adjustments tbody tr", has_text=episode.split("#")[0])
    assert adjustment.count() >= 1
    corrects = adjustment.first.locator("td.corrects").inner_text()
    assert corrects == f"{invoice_id}, line 1"
    assert "dispute" in adjustment.first.inner_text()
    assert page.locator("#due").inner_text() != ""
    page.screenshot(path=str(screenshots / "buyer-adjustment.png"), full_page=True)
    page.close()


def settle_next_month(workspace: Workspace) -> str:
    """Settle December at a new signed checkpoint with the adjustments of November's issued
    invoice, as the vendor's settlement run does, and store it as issued; its id."""
    from raas.core.invoice import invoice_json
    from raas.core.periods import month_period
    from raas.engine.reference import settle_over_time_from_ledger
    from raas.ledger.keys import parse_signer_key
    from raas.ledger.sqlite import SqliteLedger

    contract = workspace.contracts[0].contract
    with SqliteLedger(workspace.folder / "ledger.db") as ledger:
        ledger.sign_checkpoint(contract.buyer, parse_signer_key(workspace.signer_text))
        period = month_period(contract.time_zone, 2026, 12)
        invoice = settle_over_time_from_ledger(ledger, [contract], period).invoice
        ledger.store_invoice(invoice.id, contract.buyer, invoice_json(invoice))
    return str(invoice.id)


def test_a_buyer_cannot_open_another_buyers_invoice_by_url(
    browser: Any, served: tuple[str, Workspace]
) -> None:
    url, workspace = served
    page = sign_in(browser, served, "key-acme")
    response = page.goto(f"{url}/dashboard/invoices/{workspace.invoices['globex']}")
    assert response is not None and response.status == 404
    assert f"Invoice {workspace.invoices['globex']}" not in page.content()
    assert "globex-support v1" not in page.content()
    page.close()


def test_the_vendor_and_the_auditor_pages(
    browser: Any, served: tuple[str, Workspace], screenshots: Path
) -> None:
    page = sign_in(browser, served, "key-vendor")
    assert page.url.endswith("/dashboard/vendor")
    assert page.locator("figure.chart svg").count() == 2
    assert "Resolution rate" in page.locator(".kpis").inner_text()
    page.screenshot(path=str(screenshots / "vendor-outcomes.png"), full_page=True)
    page.close()

    page = sign_in(browser, served, "key-auditor")
    assert page.url.endswith("/dashboard/audit")
    assert "signature verified" in page.locator("table").first.inner_text()
    page.screenshot(path=str(screenshots / "auditor-checkpoints.png"), full_page=True)
    page.click("text=verify")
    assert page.locator("#verdict").inner_text() == "verified"
    page.screenshot(path=str(screenshots / "auditor-verify.png"), full_page=True)
    page.close()
