"""The service's own records beside the ledger: tenants, API keys, the audit log, contract versions,
settlement runs and price tables, behind one small interface (`ServiceStore`) with SQLite and
PostgreSQL implementations.

Every read and write of tenant data takes the tenant as its first argument and filters by it in
the query itself, so no caller can read another tenant's rows by passing a stolen identifier.
Only API-key lookup by key id (authentication, before a tenant is known) is tenant-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Final, Literal, Protocol

import msgspec

from raas.errors import RaasError
from raas.ingest.otlp import ModelPrice

__all__ = [
    "RUN_ATTEMPTS_MAX",
    "RUN_LEASE",
    "SCOPES",
    "ApiKey",
    "AuditRecord",
    "ContractVersion",
    "Scope",
    "ServiceStore",
    "ServiceStoreError",
    "SettlementRun",
    "Tenant",
    "utc_now",
]

Scope = Literal["ingest", "vendor-admin", "buyer", "auditor"]
SCOPES: Final[tuple[Scope, ...]] = ("ingest", "vendor-admin", "buyer", "auditor")
RunStatus = Literal["queued", "running", "succeeded", "failed"]
AUDIT_RECORDS_MAX: Final = 1000
# A claimant renews its lease every third of it while the run works, so a lease lapses only when
# its claimant is gone (or stalled far longer than any pause); a settlement takes minutes at most.
RUN_LEASE: Final = timedelta(seconds=60)
# Claims of one run before it is failed: a run that kills its server each time (out of memory,
# say) must not take down every server of the database in turn, forever.
RUN_ATTEMPTS_MAX: Final = 3


class ServiceStoreError(RaasError):
    """The service store refused a write (a duplicate, an unknown tenant) or failed."""


class Tenant(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    created_at: datetime


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """An API key as stored: never the secret, only its SHA-256."""

    key_id: str
    tenant: str
    scope: Scope
    label: str
    secret_sha256: str
    created_at: datetime
    revoked_at: datetime | None = None


class AuditRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One administrative action: who (`actor`: a key id, or `cli`), what, on what, when."""

    id: int
    at: datetime
    tenant: str
    actor: str
    action: str
    target: str
    detail: str = ""


class ContractVersion(msgspec.Struct, frozen=True, kw_only=True):
    """One stored version of a contract: its identity, dates and the YAML document as sent."""

    tenant: str
    contract: str
    version: int
    effective_from: date
    effective_until: date | None
    document: str
    document_sha256: str
    created_at: datetime
    created_by: str


class SettlementRun(msgspec.Struct, frozen=True, kw_only=True):
    """One settlement of a contract version for a period at a signed checkpoint's size.

    A run is queued when asked for (`started_at` is that moment), then claimed and run by the
    server's settlement worker (`raas.service.worker`), and ends succeeded or failed. A claim
    holds a lease until `lease_expires_at`, renewed while the run works; a run whose lease
    lapsed is claimed again, and `attempts` counts the claims (the latest one's number is the
    token its claimant writes the outcome with)."""

    id: str
    tenant: str
    contract: str
    version: int
    period: str
    checkpoint_size: int
    status: RunStatus
    started_at: datetime
    created_by: str
    invoice_id: str | None = None
    error: str | None = None
    finished_at: datetime | None = None
    attempts: int = 0
    lease_expires_at: datetime | None = None


class ServiceStore(Protocol):
    """Tenants, API keys, the audit log, contract versions and settlement runs.

    Writes are atomic; `add_*` raise ServiceStoreError when the row exists (the caller decides
    whether identical content is a no-op).
    """

    # -- tenants and keys (administration) ----------------------------------------------------

    def ensure_tenant(self, name: str, actor: str) -> Tenant:
        """The tenant, created (and the creation audited) if it did not exist."""
        ...

    def tenants(self) -> list[Tenant]: ...

    def add_api_key(self, key: ApiKey, actor: str) -> None:
        """Store a new key of an existing tenant; audited."""
        ...

    def api_key(self, key_id: str) -> ApiKey | None:
        """The key with this id, revoked or not (authentication only: no tenant is known yet)."""
        ...

    def api_keys(self, tenant: str) -> list[ApiKey]: ...

    def revoke_api_key(self, tenant: str, key_id: str, actor: str) -> ApiKey | None:
        """Revoke the tenant's key (again: a no-op); None if the tenant has no such key."""
        ...

    # -- the audit log ------------------------------------------------------------------------

    def audit(
        self, tenant: str, actor: str, action: str, target: str, detail: str = ""
    ) -> None: ...

    def audit_log(
        self, tenant: str, *, after_id: int = 0, limit: int = AUDIT_RECORDS_MAX
    ) -> list[AuditRecord]: ...

    # -- contracts ----------------------------------------------------------------------------

    def add_contract_version(self, tenant: str, version: ContractVersion, actor: str) -> None:
        """Store a new version (audited); ServiceStoreError if the version exists."""
        ...

    def contract_version(
        self, tenant: str, contract: str, version: int
    ) -> ContractVersion | None: ...

    def contract_versions(self, tenant: str, contract: str | None = None) -> list[ContractVersion]:
        """The tenant's versions (of one contract, or all), by contract then version."""
        ...

    # -- settlement runs ----------------------------------------------------------------------

    def add_settlement_run(self, tenant: str, run: SettlementRun) -> None: ...

    def finish_settlement_run(
        self,
        tenant: str,
        run_id: str,
        status: RunStatus,
        *,
        invoice_id: str | None = None,
        error: str | None = None,
        attempt: int | None = None,
        now: datetime | None = None,
    ) -> SettlementRun:
        """Record how the run ended (at `now`, default the time); the run as stored after.

        With `attempt` (the claim's number), only while that claim still holds the run: a
        claimant whose lease lapsed and whose run was claimed again changes nothing, and gets
        the run as the newer claim keeps it."""
        ...

    def claim_settlement_run(
        self,
        now: datetime | None = None,
        *,
        lease: timedelta = RUN_LEASE,
        attempts_max: int = RUN_ATTEMPTS_MAX,
    ) -> SettlementRun | None:
        """The oldest claimable run of any tenant, now running under a lease until `now + lease`
        and its attempts counted; None if no run is claimable.

        Claimable: queued, or running with a lease that expired by `now` (its claimant died)
        after fewer than `attempts_max` attempts; an expired run that used them all is failed
        here, its error saying why. Atomic: of several workers (threads or server processes),
        one claims each run. Only the settlement worker calls this, which serves every tenant;
        handlers never do.
        """
        ...

    def renew_settlement_lease(
        self, tenant: str, run_id: str, attempt: int, until: datetime
    ) -> bool:
        """Extend the lease of claim number `attempt` to `until`; False when that claim no longer
        holds the run (it ended, or was claimed again after the lease lapsed)."""
        ...

    def settlement_run(self, tenant: str, run_id: str) -> SettlementRun | None: ...

    def settlement_runs(self, tenant: str) -> list[SettlementRun]: ...

    # -- disputes (the ledger holds them; this is their index) --------------------------------

    def add_dispute(self, tenant: str, dispute_id: str, invoice_id: str, actor: str) -> None: ...

    def dispute_ids(self, tenant: str, invoice_id: str | None = None) -> list[str]:
        """The tenant's disputes filed through the API (of one invoice, or all), oldest first."""
        ...

    def has_dispute(self, tenant: str, dispute_id: str) -> bool: ...

    # -- the price table: what each model costs the tenant (OTLP spans are costed by it) ------

    def set_model_prices(self, tenant: str, prices: Mapping[str, ModelPrice], actor: str) -> None:
        """Replace the tenant's whole price table, atomically (audited)."""
        ...

    def model_prices(self, tenant: str) -> dict[str, ModelPrice]:
        """The tenant's price table, by model name (empty when none was set)."""
        ...

    def ping(self) -> None:
        """Raise if the store cannot be reached (readiness)."""
        ...

    def close(self) -> None: ...


def utc_now() -> datetime:
    return datetime.now(UTC)
