"""A small vendor with two buyers for the dashboard's tests: a real SQLite ledger holding a
simulated month for each buyer, a signed checkpoint per log, an issued invoice per contract,
and an API key per role (the keys a service would hand out, checked by a plain lookup here)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fastapi.testclient import TestClient

from raas.core.contract import Contract
from raas.core.invoice import invoice_json
from raas.core.periods import period_containing
from raas.dashboard.app import Principal, create_dashboard_app
from raas.dashboard.data import ContractText, DashboardData
from raas.engine.reference import settle_from_ledger
from raas.ingest.validate import parse_batch
from raas.ledger.keys import generate, parse_signer_key, parse_verifier_key, write_signer_key
from raas.ledger.sqlite import SqliteLedger
from raas.service.apikeys import create_api_key
from raas.service.settings import ServiceSettings
from raas.service.sql_store import SqliteServiceStore
from raas.service.tenancy import TenantData
from raas.sim import SimConfig, Simulation

ROOT = Path(__file__).resolve().parents[2]
ACME_CONTRACT = ROOT / "examples" / "contracts" / "acme-support.yaml"
VENDOR = "helpdesk-ai"
API_KEYS = {
    "key-vendor": Principal(VENDOR, "vendor", "vendor admin"),
    "key-acme": Principal("acme", "buyer", "acme finance"),
    "key-globex": Principal("globex", "buyer", "globex finance"),
    "key-auditor": Principal("acme", "auditor", "acme's auditor"),
    # A vendor key scoped to one buyer's log (the service's vendor-admin key of that tenant).
    "key-acme-vendor": Principal("acme", "vendor", "vendor admin for acme"),
    "key-ingest": None,
}


@dataclass
class Workspace:
    folder: Path
    ledger: SqliteLedger
    contracts: list[ContractText]
    invoices: dict[str, str]  # buyer -> invoice id
    signer_text: str
    verifier_text: str
    keys: dict[str, str] = field(default_factory=dict)  # API keys by holder, when served

    def data(self) -> DashboardData:
        return DashboardData(
            self.ledger,
            self.contracts,
            self.folder / "tables",
            [parse_verifier_key(self.verifier_text)],
        )


def authenticate(api_key: str) -> Principal | None:
    return API_KEYS.get(api_key)


def dashboard_app(workspace: Workspace) -> Iterator[object]:
    """The dashboard over the workspace's ledger, its data closed when the caller is done."""
    data = workspace.data()
    yield create_dashboard_app(data, authenticate)
    data.close()


def signed_in(app: object, key: str) -> TestClient:
    """A client of `app` holding the session of the API key `key`."""
    client = TestClient(app)  # type: ignore[arg-type]
    response = client.post("/dashboard/sign-in", data={"api_key": key}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return client


def contract_for(buyer: str, name: str | None = None) -> ContractText:
    """The example contract for `buyer`, named `name` (default: "<buyer>-support")."""
    name = f"{buyer}-support" if name is None else name
    text = ACME_CONTRACT.read_text(encoding="utf-8")
    text = text.replace("contract: acme-support", f"contract: {name}").replace(
        "buyer: acme", f"buyer: {buyer}"
    )
    item = ContractText.parse(text, f"{buyer}-{name}.yaml")
    assert item.contract.buyer == buyer
    return item


# The keys people sign in with when the service serves the dashboard: (tenant, scope).
SERVICE_HOLDERS = {
    "key-acme": ("acme", "buyer"),
    "key-globex": ("globex", "buyer"),
    "key-vendor": ("acme", "vendor-admin"),
    "key-auditor": ("acme", "auditor"),
}


def service_settings(workspace: Workspace) -> ServiceSettings:
    """Settings for `raas serve` over the workspace's ledger (closed here: the service opens
    it), its store holding both contracts and a key per holder (into `workspace.keys`)."""
    database = workspace.folder / "ledger.db"
    store = SqliteServiceStore(database)
    try:
        for item in workspace.contracts:
            tenant = item.contract.buyer
            TenantData(
                workspace.ledger, store, tenant=tenant, scope="vendor-admin", key_id="setup"
            ).add_contract(item.text)
        workspace.keys = {
            name: create_api_key(store, tenant, scope, name, "setup")[0]  # type: ignore[arg-type]
            for name, (tenant, scope) in SERVICE_HOLDERS.items()
        }
    finally:
        store.close()
    workspace.ledger.close()
    signer_path = workspace.folder / "helpdesk-ai.key"
    write_signer_key(signer_path, workspace.signer_text)
    return ServiceSettings(
        database=f"sqlite:///{database}",
        signer_key_paths=(signer_path,),
        requests_per_second=10_000,
        requests_burst=10_000,
    )


def build_workspace(
    folder: Path, conversations: int = 300, contract_name: str | None = None
) -> Workspace:
    """The two buyers' ledger; with `contract_name`, both contracts carry that name (so their
    invoices of the month share an id, as when a vendor names every buyer's contract alike)."""
    folder.mkdir(parents=True, exist_ok=True)
    signer_text, verifier_text = generate(VENDOR)
    signer = parse_signer_key(signer_text)
    ledger = SqliteLedger(folder / "ledger.db", vendor=VENDOR)
    contracts = [contract_for("acme", contract_name), contract_for("globex", contract_name)]
    invoices: dict[str, str] = {}
    for seed, item in enumerate(contracts, start=3):
        contract: Contract = item.contract
        simulation = Simulation(
            SimConfig(conversations=conversations, seed=seed, tenant=contract.buyer)
        )
        for body in simulation.ndjson_batches():
            ledger.append(parse_batch(body, ndjson=True))
        ledger.sign_checkpoint(contract.buyer, signer)
        period = period_containing(simulation.config.start_utc, contract.time_zone)
        invoice = settle_from_ledger(ledger, contract, period).invoice
        ledger.store_invoice(invoice.id, contract.buyer, invoice_json(invoice))
        invoices[contract.buyer] = invoice.id
    return Workspace(folder, ledger, contracts, invoices, signer_text, verifier_text)
