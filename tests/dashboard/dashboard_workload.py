"""A small vendor with two buyers for the dashboard's tests: a real SQLite ledger holding a
simulated month for each buyer, a signed checkpoint per log, an issued invoice per contract,
and an API key per role (the keys a service would hand out, checked by a plain lookup here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from raas.core.contract import Contract
from raas.core.invoice import invoice_json
from raas.core.periods import period_containing
from raas.dashboard.app import Principal
from raas.dashboard.data import ContractText, DashboardData
from raas.engine.reference import settle_from_ledger
from raas.ingest.validate import parse_batch
from raas.ledger.keys import generate, parse_signer_key, parse_verifier_key
from raas.ledger.sqlite import SqliteLedger
from raas.sim import SimConfig, Simulation

ROOT = Path(__file__).resolve().parents[2]
ACME_CONTRACT = ROOT / "examples" / "contracts" / "acme-support.yaml"
VENDOR = "helpdesk-ai"
API_KEYS = {
    "key-vendor": Principal(VENDOR, "vendor", "vendor admin"),
    "key-acme": Principal("acme", "buyer", "acme finance"),
    "key-globex": Principal("globex", "buyer", "globex finance"),
    "key-auditor": Principal("acme", "auditor", "acme's auditor"),
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


def contract_for(buyer: str) -> ContractText:
    text = ACME_CONTRACT.read_text(encoding="utf-8")
    if buyer != "acme":
        text = text.replace("contract: acme-support", f"contract: {buyer}-support").replace(
            "buyer: acme", f"buyer: {buyer}"
        )
    item = ContractText.parse(text, f"{buyer}-support.yaml")
    assert item.contract.buyer == buyer
    return item


def build_workspace(folder: Path, conversations: int = 300) -> Workspace:
    folder.mkdir(parents=True, exist_ok=True)
    signer_text, verifier_text = generate(VENDOR)
    signer = parse_signer_key(signer_text)
    ledger = SqliteLedger(folder / "ledger.db", vendor=VENDOR)
    contracts = [contract_for("acme"), contract_for("globex")]
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
