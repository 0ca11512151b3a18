"""The dashboard inside `raas serve`: API keys from the service store sign in (a vendor-admin
key as the vendor, a buyer key as the buyer, an auditor key as the auditor; ingest keys do
not), contracts are the versions stored for each tenant, checkpoints are verified with the
service's own signing keys, and episode tables live beside a SQLite database (or in the
temporary folder for PostgreSQL)."""

from __future__ import annotations

import hashlib
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Final

from fastapi import FastAPI

from raas.core.contract import Contract
from raas.core.disputes import DisputeError
from raas.core.invoice import Invoice
from raas.dashboard.app import Principal, Role, Ruling, install
from raas.dashboard.data import ContractText, DashboardData
from raas.ledger.keys import SignerKey
from raas.ledger.store import LedgerStore
from raas.service.apikeys import verify_api_key
from raas.service.problems import ServiceError
from raas.service.settings import ServiceSettings, sqlite_path
from raas.service.store import Scope, ServiceStore
from raas.service.tenancy import TenantData, filing_time

ROLE_OF_SCOPE: Final[dict[Scope, Role]] = {
    "vendor-admin": "vendor",
    "buyer": "buyer",
    "auditor": "auditor",
}
SCOPE_OF_ROLE: Final[dict[Role, Scope]] = {role: scope for scope, role in ROLE_OF_SCOPE.items()}


class ServiceDisputeDesk:
    """Disputes filed and ruled as the API files and rules them (`TenantData`), so the
    service's dispute index and audit log hold those made from the dashboard too."""

    def __init__(self, ledger: LedgerStore, store: ServiceStore) -> None:
        self.ledger = ledger
        self.store = store

    def _tenant_data(self, principal: Principal) -> TenantData:
        return TenantData(
            self.ledger,
            self.store,
            tenant=principal.tenant,
            scope=SCOPE_OF_ROLE[principal.role],
            key_id=principal.key_id,
        )

    def file(
        self, principal: Principal, contract: Contract, invoice: Invoice, episode: str, reason: str
    ) -> None:
        try:
            self._tenant_data(principal).file_dispute(invoice.id, reason, [], [episode])
        except ServiceError as error:
            # A refusal the buyer can act on (the deadline passed) is shown on the page.
            if error.status != 409:
                raise
            raise DisputeError(str(error)) from None

    def rule(
        self, principal: Principal, tenant: str, dispute_id: str, ruling: Ruling, note: str | None
    ) -> None:
        assert tenant == principal.tenant, "a service key rules in its own tenant's log"
        self._tenant_data(principal).rule_dispute(dispute_id, ruling, note)


def tables_folder(settings: ServiceSettings) -> Path:
    """Where the episode tables of this database are kept."""
    path = sqlite_path(settings.database)
    if path is not None:
        return path.parent / f"{path.name}.tables"
    digest = hashlib.sha256(settings.database.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"raas-tables-{digest}"


def stored_contracts(store: ServiceStore) -> Callable[[], list[ContractText]]:
    """Every tenant's stored contract versions, each parsed once (by its document's hash)."""
    parsed: dict[str, ContractText] = {}
    lock = threading.Lock()

    def contracts() -> list[ContractText]:
        found: list[ContractText] = []
        for tenant in store.tenants():
            for version in store.contract_versions(tenant.name):
                with lock:
                    item = parsed.get(version.document_sha256)
                    if item is None:
                        item = ContractText.parse(
                            version.document, f"{version.contract} v{version.version}"
                        )
                        parsed[version.document_sha256] = item
                found.append(item)
        return found

    return contracts


def mount_dashboard(
    app: FastAPI,
    settings: ServiceSettings,
    ledger: LedgerStore,
    store: ServiceStore,
    signers: tuple[SignerKey, ...],
) -> DashboardData:
    """Serve the dashboard at /dashboard on the service's app; returns its data (to close)."""

    def authenticate(token: str) -> Principal | None:
        key = verify_api_key(store, token)
        role = None if key is None else ROLE_OF_SCOPE.get(key.scope)
        if key is None or role is None:
            return None
        return Principal(key.tenant, role, key.label or key.key_id, key.key_id)

    data = DashboardData(
        ledger,
        stored_contracts(store),
        tables_folder(settings),
        [signer.verifier() for signer in signers],
    )
    # The page tells whether the deadline passed by the clock the API files disputes by.
    install(
        app,
        data,
        authenticate,
        desk=ServiceDisputeDesk(ledger, store),
        clock=filing_time,
    )
    return data
