"""One tenant's view of the ledger and the service store: the only way handlers reach data.

`TenantData` is made from an authenticated key and binds its tenant into every call, so a
handler cannot name another tenant, and an identifier from another tenant (an invoice id, a run
id, a contract name) finds nothing. It also checks the key's scope against `PERMISSIONS` before
each action, a second lock behind the handlers' own check: an ingest key can only append.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Final, Literal

import msgspec

from raas.audit.bundle import Bundle
from raas.audit.bundle import Scope as BundleScope
from raas.audit.receipt import Receipt
from raas.core.contract import Contract, parse_contract
from raas.core.disputes import DisputeLate, check_deadline, dispute_event
from raas.core.events import DisputeFiled, DisputeRuled, Event
from raas.core.invoice import Invoice, invoice_from_json, invoice_json
from raas.core.minimum_runs import commitment_prior_subtotals
from raas.core.periods import Period, parse_period
from raas.core.prepaid import prepaid_drawn_before
from raas.core.versions import starting_balance
from raas.engine.reference import issued_invoices, settle_from_ledger
from raas.errors import RaasError
from raas.ingest.otlp import ModelPrice
from raas.ingest.validate import of_tenant, parse_tenant_batch
from raas.ledger.evidence import EvidenceError, export_bundle, export_receipt
from raas.ledger.keys import SignerKey
from raas.ledger.store import AppendReceipt, LedgerStore, StoredEvent
from raas.service.problems import ServiceError, conflict, invalid, not_found
from raas.service.store import (
    SCOPES,
    AuditRecord,
    ContractVersion,
    Scope,
    ServiceStore,
    SettlementRun,
    utc_now,
)

__all__ = [
    "PERMISSIONS",
    "SERVICE_SOURCE",
    "Action",
    "Dispute",
    "TenantData",
    "checkpoint_size",
    "filing_time",
    "run_settlement",
]


def filing_time() -> datetime:
    """The time a dispute filed now is filed at (the dashboard tells the deadline by it too)."""
    return utc_now()


class Dispute(msgspec.Struct, frozen=True, kw_only=True):
    """A dispute as the ledger holds it: the filing, and the ruling once there is one."""

    dispute_id: str
    invoice_id: str
    reason: str
    lines: tuple[int, ...]
    episodes: tuple[str, ...]
    filed_by: str
    filed_at: datetime
    filed_log_index: int
    status: Literal["open", "upheld", "rejected"]
    ruled_by: str | None = None
    ruled_at: datetime | None = None
    note: str | None = None
    ruled_log_index: int | None = None


class Action(enum.Enum):
    INGEST = "append events"
    WRITE_CONTRACTS = "create contract versions"
    READ_CONTRACTS = "read contracts"
    SETTLE = "run settlements"
    READ_SETTLEMENTS = "read settlement runs"
    READ_INVOICES = "read invoices"
    READ_EVIDENCE = "export evidence"
    SIGN_CHECKPOINTS = "sign checkpoints"
    READ_CHECKPOINTS = "read checkpoints and proofs"
    READ_AUDIT_LOG = "read the audit log"
    READ_OWN_KEY = "read its own tenant and scope"
    FILE_DISPUTES = "file disputes"
    RULE_DISPUTES = "rule on disputes"
    READ_DISPUTES = "read disputes"
    SET_PRICES = "set the price table"
    READ_PRICES = "read the price table"


_READERS: Final[frozenset[Scope]] = frozenset({"vendor-admin", "buyer", "auditor"})
PERMISSIONS: Final[dict[Action, frozenset[Scope]]] = {
    Action.INGEST: frozenset({"ingest", "vendor-admin"}),
    Action.WRITE_CONTRACTS: frozenset({"vendor-admin"}),
    Action.READ_CONTRACTS: _READERS,
    Action.SETTLE: frozenset({"vendor-admin"}),
    Action.READ_SETTLEMENTS: _READERS,
    Action.READ_INVOICES: _READERS,
    Action.READ_EVIDENCE: _READERS,
    Action.SIGN_CHECKPOINTS: frozenset({"vendor-admin"}),
    Action.READ_CHECKPOINTS: _READERS,
    Action.READ_AUDIT_LOG: frozenset({"vendor-admin", "auditor"}),
    Action.READ_OWN_KEY: frozenset(SCOPES),
    Action.FILE_DISPUTES: frozenset({"buyer"}),
    Action.RULE_DISPUTES: frozenset({"vendor-admin"}),
    Action.READ_DISPUTES: _READERS,
    Action.SET_PRICES: frozenset({"vendor-admin"}),
    Action.READ_PRICES: frozenset({"vendor-admin", "auditor"}),
}
# The source of the dispute events this service appends (CloudEvents `source`).
SERVICE_SOURCE: Final = "urn:raas:service"


def forbidden(scope: Scope, action: Action) -> ServiceError:
    allowed = ", ".join(sorted(PERMISSIONS[action]))
    return ServiceError(
        403,
        "forbidden",
        "Forbidden for this key's scope",
        f"a {scope} key may not {action.value}; keys that may: {allowed}",
    )


def checkpoint_size(note: str) -> int:
    """The tree size a signed checkpoint note states (its second line)."""
    lines = note.split("\n")
    if len(lines) < 3 or not lines[1].isdigit():
        raise RaasError("a stored checkpoint is not a checkpoint note")
    return int(lines[1])


class TenantData:
    """Everything one key may do, on its own tenant's data only."""

    def __init__(
        self,
        ledger: LedgerStore,
        store: ServiceStore,
        *,
        tenant: str,
        scope: Scope,
        key_id: str,
        signers: Sequence[SignerKey] = (),
    ) -> None:
        self._ledger = ledger
        self._store = store
        self.tenant = tenant
        self.scope = scope
        self.key_id = key_id
        # Who the audit log names: the key, never its secret.
        self.actor = f"key:{key_id}"
        self._signers = tuple(signers)

    def allows(self, action: Action) -> bool:
        return self.scope in PERMISSIONS[action]

    def require(self, action: Action) -> None:
        if not self.allows(action):
            raise forbidden(self.scope, action)

    # -- ingest -------------------------------------------------------------------------------

    def append(self, events: Sequence[Event]) -> tuple[AppendReceipt, int]:
        """Store the batch (all of it, or nothing); the receipt and the log's size after it."""
        self.require(Action.INGEST)
        return self._stored(self._ledger.append(of_tenant(events, self.tenant)))

    def append_body(self, body: bytes, *, ndjson: bool) -> tuple[AppendReceipt, int]:
        """`append` of the events the body parses to (a JSON array, or NDJSON), parsed where
        the ledger prepares batches (another process, when it was given some)."""
        self.require(Action.INGEST)
        parse = functools.partial(parse_tenant_batch, tenant=self.tenant, ndjson=ndjson)
        return self._stored(self._ledger.append_body(body, parse))

    def _stored(self, receipt: AppendReceipt) -> tuple[AppendReceipt, int]:
        head = receipt.logs.get(self.tenant)
        return receipt, head.size if head is not None else self._ledger.head(self.tenant)

    def log_size(self) -> int:
        self.require(Action.READ_CHECKPOINTS)
        return self._ledger.head(self.tenant)

    # -- contracts ----------------------------------------------------------------------------

    def add_contract(self, document: str) -> tuple[ContractVersion, bool]:
        """Store a contract version from its YAML; (the version, whether it is new).

        The same document again is a no-op; another document under a stored version is refused.
        """
        self.require(Action.WRITE_CONTRACTS)
        contract = parse_contract(document, "the contract document")
        if contract.buyer != self.tenant:
            raise invalid(
                "buyer",
                f"a contract stored for tenant {self.tenant!r} must name it as buyer, "
                f"found {contract.buyer!r}",
            )
        digest = hashlib.sha256(document.encode("utf-8")).hexdigest()
        stored = self._store.contract_version(self.tenant, contract.contract, contract.version)
        if stored is not None:
            if stored.document_sha256 == digest:
                return stored, False
            raise conflict(
                f"contract {contract.contract!r} version {contract.version} is stored with "
                "another document; a changed contract is a new version"
            )
        version = ContractVersion(
            tenant=self.tenant,
            contract=contract.contract,
            version=contract.version,
            effective_from=contract.effective_from,
            effective_until=contract.effective_until,
            document=document,
            document_sha256=digest,
            created_at=utc_now(),
            created_by=self.actor,
        )
        self._store.add_contract_version(self.tenant, version, self.actor)
        return version, True

    def contract_versions(self, contract: str | None = None) -> list[ContractVersion]:
        self.require(Action.READ_CONTRACTS)
        versions = self._store.contract_versions(self.tenant, contract)
        if contract is not None and not versions:
            raise not_found(f"this tenant has no contract {contract!r}")
        return versions

    def contract_version(self, contract: str, version: int) -> ContractVersion:
        self.require(Action.READ_CONTRACTS)
        stored = self._store.contract_version(self.tenant, contract, version)
        if stored is None:
            raise not_found(f"this tenant has no contract {contract!r} version {version}")
        return stored

    def _contract_for(
        self, name: str, period_label: str, version: int | None
    ) -> tuple[Contract, Period]:
        """The version asked for, or the latest one in effect at the period's start."""
        candidates = (
            [self.contract_version(name, version)]
            if version is not None
            else list(reversed(self.contract_versions(name)))
        )
        for stored in candidates:
            contract = parse_contract(stored.document, f"{name} v{stored.version}")
            try:
                period = parse_period(period_label, contract.time_zone)
            except ValueError as error:
                raise invalid("period", str(error)) from None
            if version is not None or contract.is_effective_at(period.start):
                return contract, period
        raise ServiceError(
            409,
            "no-contract-in-effect",
            "No contract version in effect",
            f"no version of contract {name!r} is in effect at the start of {period_label}",
        )

    # -- settlement and invoices --------------------------------------------------------------

    def settle(self, name: str, period_label: str, version: int | None = None) -> SettlementRun:
        """Queue a settlement at the latest signed checkpoint; the queued run.

        What the caller can mend is refused here (no such contract or period, no checkpoint);
        the settlement itself runs in the worker (`run_settlement`)."""
        self.require(Action.SETTLE)
        contract, period = self._contract_for(name, period_label, version)
        assert contract.buyer == self.tenant, "stored contracts name their tenant as buyer"
        note = self._ledger.latest_checkpoint(self.tenant)
        if note is None:
            raise ServiceError(
                409,
                "no-checkpoint",
                "No signed checkpoint",
                "settlement reads the log at its latest signed checkpoint, and this tenant's "
                "log has none: sign one first (POST /v1/checkpoints)",
            )
        run = SettlementRun(
            id=uuid.uuid4().hex,
            tenant=self.tenant,
            contract=contract.contract,
            version=contract.version,
            period=period.label,
            checkpoint_size=checkpoint_size(note),
            status="queued",
            started_at=utc_now(),
            created_by=self.actor,
        )
        self._store.add_settlement_run(self.tenant, run)
        return run

    def settlement_runs(self) -> list[SettlementRun]:
        self.require(Action.READ_SETTLEMENTS)
        return self._store.settlement_runs(self.tenant)

    def settlement_run(self, run_id: str) -> SettlementRun:
        self.require(Action.READ_SETTLEMENTS)
        run = self._store.settlement_run(self.tenant, run_id)
        if run is None:
            raise not_found(f"this tenant has no settlement run {run_id!r}")
        return run

    def invoice_ids(self) -> list[str]:
        self.require(Action.READ_INVOICES)
        return self._ledger.list_invoices(self.tenant)

    def invoice_body(self, invoice_id: str) -> bytes:
        self.require(Action.READ_INVOICES)
        return self._own_invoice(invoice_id)

    def invoice(self, invoice_id: str) -> Invoice:
        return invoice_from_json(self.invoice_body(invoice_id))

    def _own_invoice(self, invoice_id: str) -> bytes:
        # Keyed by (tenant, id): another buyer's invoice of the same id is never reached.
        body = self._ledger.get_invoice(self.tenant, invoice_id)
        if body is None:
            raise not_found(f"this tenant has no invoice {invoice_id!r}")
        return body

    # -- evidence -----------------------------------------------------------------------------

    def evidence_bundle(self, invoice_id: str, *, redact: bool, scope: BundleScope) -> Bundle:
        self.require(Action.READ_EVIDENCE)
        source = _TenantEvidence(self)
        try:
            return export_bundle(
                source, invoice_id, self._contract_document(invoice_id), redact=redact, scope=scope
            )
        except EvidenceError as error:
            raise conflict(str(error)) from error

    def receipt(self, invoice_id: str, *, line: int | None, episode: str | None) -> Receipt:
        self.require(Action.READ_EVIDENCE)
        if (line is None) == (episode is None):
            raise invalid("line", "give exactly one of `line` and `episode`")
        document = self._contract_document(invoice_id)
        try:
            return export_receipt(
                _TenantEvidence(self), invoice_id, document, line=line, episode=episode
            )
        except EvidenceError as error:
            raise not_found(str(error)) from error

    def _contract_document(self, invoice_id: str) -> str:
        invoice = self.invoice(invoice_id)
        stored = self._store.contract_version(
            self.tenant, invoice.contract, invoice.contract_version
        )
        if stored is None:
            raise conflict(
                f"invoice {invoice_id!r} was settled under {invoice.contract} "
                f"v{invoice.contract_version}, which this service does not hold; "
                "store that version (POST /v1/contracts) to export its evidence"
            )
        return stored.document

    # -- checkpoints and proofs ---------------------------------------------------------------

    def sign_checkpoint(self) -> str:
        self.require(Action.SIGN_CHECKPOINTS)
        if not self._signers:
            raise ServiceError(
                409,
                "no-signing-key",
                "This server cannot sign",
                "the server was started without a signing key (raas serve --key NAME.key)",
            )
        if self._ledger.head(self.tenant) == 0:
            raise conflict("this tenant's log is empty: there is nothing to sign yet")
        note = self._ledger.sign_checkpoint(self.tenant, self._signers)
        self._store.audit(
            self.tenant, self.actor, "checkpoint.sign", str(checkpoint_size(note)), ""
        )
        return note

    def latest_checkpoint(self) -> str:
        self.require(Action.READ_CHECKPOINTS)
        note = self._ledger.latest_checkpoint(self.tenant)
        if note is None:
            raise not_found("this tenant's log has no signed checkpoint yet")
        return note

    def checkpoint_at(self, size: int) -> str:
        self.require(Action.READ_CHECKPOINTS)
        note = self._ledger.checkpoint_at(self.tenant, size)
        if note is None:
            raise not_found(f"this tenant's log has no checkpoint signed at size {size}")
        return note

    def inclusion_proof(self, index: int, size: int) -> tuple[bytes, list[bytes]]:
        """The leaf hash at `index` and its proof in the tree of `size`."""
        self.require(Action.READ_CHECKPOINTS)
        self._check_size("size", size)
        if not 0 <= index < size:
            raise invalid("index", f"must be within 0 to {size - 1}, found {index}")
        leaf = self._ledger.leaf_hashes(self.tenant, index, index + 1)[0]
        return leaf, self._ledger.inclusion_proof(self.tenant, index, size)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        self.require(Action.READ_CHECKPOINTS)
        self._check_size("new_size", new_size)
        if not 0 <= old_size <= new_size:
            raise invalid("old_size", f"must be within 0 to {new_size}, found {old_size}")
        return self._ledger.consistency_proof(self.tenant, old_size, new_size)

    def _check_size(self, field: str, size: int) -> None:
        head = self._ledger.head(self.tenant)
        if not 0 <= size <= head:
            raise invalid(field, f"this tenant's log has {head} entries, found size {size}")

    # -- disputes -----------------------------------------------------------------------------

    def file_dispute(
        self, invoice_id: str, reason: str, lines: Sequence[int], episodes: Sequence[str]
    ) -> Dispute:
        """Append a filing against the tenant's invoice: its lines (from 0) and/or episodes."""
        self.require(Action.FILE_DISPUTES)
        invoice = invoice_from_json(self._own_invoice(invoice_id))
        if not lines and not episodes:
            raise invalid("lines", "a dispute names at least one line or one episode")
        for line in lines:
            if not 0 <= line < len(invoice.lines):
                raise invalid(
                    "lines",
                    f"invoice {invoice_id!r} has lines 0 to {len(invoice.lines) - 1}, not {line}",
                )
        billed = {episode for line in invoice.lines for episode in line.episodes}
        for episode in episodes:
            if episode not in billed:
                raise invalid("episodes", f"episode {episode!r} is not billed on {invoice_id!r}")
        filed_at = filing_time()
        contract = parse_contract(
            self._contract_document(invoice_id),
            f"{invoice.contract} v{invoice.contract_version}",
        )
        try:
            check_deadline(contract, invoice, filed_at)
        except DisputeLate as late:
            raise ServiceError(
                409, "dispute-deadline-passed", "The dispute deadline has passed", str(late)
            ) from None
        dispute_id = uuid.uuid4().hex
        data = DisputeFiled(
            dispute_id=dispute_id,
            invoice_id=invoice_id,
            reason=reason,
            filed_by=self.actor,
            lines=tuple(lines),
            episodes=tuple(episodes),
        )
        self._ledger.append([self._dispute_event(data, "filed", filed_at)])
        self._store.add_dispute(self.tenant, dispute_id, invoice_id, self.actor)
        return self.dispute(dispute_id)

    def rule_dispute(
        self, dispute_id: str, ruling: Literal["upheld", "rejected"], note: str | None
    ) -> Dispute:
        self.require(Action.RULE_DISPUTES)
        dispute = self.dispute(dispute_id)
        if dispute.status != "open":
            raise conflict(f"dispute {dispute_id!r} was already ruled {dispute.status}")
        data = DisputeRuled(dispute_id=dispute_id, ruling=ruling, ruled_by=self.actor, note=note)
        self._ledger.append([self._dispute_event(data, "ruled")])
        self._store.audit(self.tenant, self.actor, f"dispute.{ruling}", dispute_id, "")
        return self.dispute(dispute_id)

    def dispute(self, dispute_id: str) -> Dispute:
        self.require(Action.READ_DISPUTES)
        if not self._store.has_dispute(self.tenant, dispute_id):
            raise not_found(f"this tenant has no dispute {dispute_id!r}")
        filed = self._ledger.get(self.tenant, SERVICE_SOURCE, f"{dispute_id}:filed")
        if filed is None:
            raise not_found(f"dispute {dispute_id!r} is not in this tenant's log")
        event = filed.event
        data = event.data
        assert isinstance(data, DisputeFiled)
        dispute = Dispute(
            dispute_id=dispute_id,
            invoice_id=data.invoice_id,
            reason=data.reason,
            lines=data.lines,
            episodes=data.episodes,
            filed_by=data.filed_by,
            filed_at=event.time,
            filed_log_index=filed.log_index,
            status="open",
        )
        ruled = self._ledger.get(self.tenant, SERVICE_SOURCE, f"{dispute_id}:ruled")
        if ruled is None:
            return dispute
        ruling = ruled.event.data
        assert isinstance(ruling, DisputeRuled)
        return msgspec.structs.replace(
            dispute,
            status=ruling.ruling,
            ruled_by=ruling.ruled_by,
            ruled_at=ruled.event.time,
            note=ruling.note,
            ruled_log_index=ruled.log_index,
        )

    def disputes(self, invoice_id: str | None = None) -> list[Dispute]:
        self.require(Action.READ_DISPUTES)
        return [self.dispute(item) for item in self._store.dispute_ids(self.tenant, invoice_id)]

    def _dispute_event(
        self, data: DisputeFiled | DisputeRuled, what: str, time: datetime | None = None
    ) -> Event:
        return dispute_event(
            data,
            id=f"{data.dispute_id}:{what}",
            source=SERVICE_SOURCE,
            time=utc_now() if time is None else time,
            tenant=self.tenant,
        )

    # -- the audit log ------------------------------------------------------------------------

    # -- the price table ----------------------------------------------------------------------

    def set_model_prices(self, prices: Mapping[str, ModelPrice]) -> dict[str, ModelPrice]:
        """Replace the price table (audited); the table as stored."""
        self.require(Action.SET_PRICES)
        self._store.set_model_prices(self.tenant, prices, self.actor)
        return self._store.model_prices(self.tenant)

    def model_prices(self) -> dict[str, ModelPrice]:
        self.require(Action.READ_PRICES)
        return self._store.model_prices(self.tenant)

    def ingest_prices(self) -> dict[str, ModelPrice]:
        """The price table ingest costs model calls by: a key that may append may use it,
        which is not reading it (an ingest key cannot read it out)."""
        self.require(Action.INGEST)
        return self._store.model_prices(self.tenant)

    def audit_log(self, after_id: int, limit: int) -> list[AuditRecord]:
        self.require(Action.READ_AUDIT_LOG)
        return self._store.audit_log(self.tenant, after_id=after_id, limit=limit)


class _TenantEvidence:
    """`EvidenceSource` over one tenant's data: any other tenant named is refused."""

    def __init__(self, data: TenantData) -> None:
        self._data = data
        self._ledger = data._ledger

    def _own(self, tenant: str) -> str:
        if tenant != self._data.tenant:
            raise not_found(f"this tenant has no log {tenant!r}")
        return tenant

    def get_invoice(self, tenant: str, invoice_id: str) -> bytes | None:
        return self._ledger.get_invoice(self._own(tenant), invoice_id)

    def list_invoices(self, tenant: str) -> list[str]:
        return self._ledger.list_invoices(self._own(tenant))

    def checkpoint_at(self, tenant: str, size: int) -> str | None:
        return self._ledger.checkpoint_at(self._own(tenant), size)

    def iter_customers(
        self, tenant: str, *, upto_seq: int | None = None, upto_size: int | None = None
    ) -> Iterator[tuple[str, list[StoredEvent]]]:
        return self._ledger.iter_customers(
            self._own(tenant), upto_seq=upto_seq, upto_size=upto_size
        )

    def inclusion_proofs(self, tenant: str, indexes: Sequence[int], size: int) -> list[list[bytes]]:
        return self._ledger.inclusion_proofs(self._own(tenant), indexes, size)

    def consistency_proof(self, tenant: str, old_size: int, new_size: int) -> list[bytes]:
        return self._ledger.consistency_proof(self._own(tenant), old_size, new_size)


def run_settlement(
    ledger: LedgerStore,
    store: ServiceStore,
    run: SettlementRun,
    *,
    now: Callable[[], datetime] = utc_now,
) -> SettlementRun:
    """Settle a claimed run at its checkpoint, issue the invoice and record how the run ended
    (under the claim `run.attempts`: a claim that lapsed and was taken over records nothing).

    The same run settled again (its claimant died) issues the same invoice: same id, same bytes.
    The invoice's id names its contract version and period, and the ledger keeps one invoice
    per (tenant, id): when an earlier attempt (or another run) already issued the period's
    invoice, this run succeeds with it if the bytes are the same, and fails rather than issue a
    second invoice for the period if they are not.
    """
    try:
        stored = store.contract_version(run.tenant, run.contract, run.version)
        if stored is None:
            raise RaasError(f"contract {run.contract!r} v{run.version} is no longer stored")
        contract = parse_contract(stored.document, f"{run.contract} v{run.version}")
        period = parse_period(run.period, contract.time_zone)
        earlier = _EarlierPeriods(ledger, store, run, contract, period)
        invoice = settle_from_ledger(
            ledger,
            contract,
            period,
            size=run.checkpoint_size,
            prepaid_balance=earlier.prepaid_balance(),
            commitment_prior_subtotals=earlier.prior_subtotals(),
        ).invoice
        # Insert-or-compare, atomic in the ledger: the bytes an earlier attempt issued are
        # found again (a no-op), other bytes for the same id are refused with the reason. (The
        # prior subtotals and prepaid drawdowns read only earlier periods' invoices, never this
        # one's.)
        ledger.store_invoice(invoice.id, run.tenant, invoice_json(invoice))
    except Exception as error:  # any failure is the run's outcome, kept with its reason
        reason = str(error) or type(error).__name__
        return store.finish_settlement_run(
            run.tenant, run.id, "failed", error=reason, attempt=run.attempts, now=now()
        )
    return store.finish_settlement_run(
        run.tenant, run.id, "succeeded", invoice_id=invoice.id, attempt=run.attempts, now=now()
    )


class _EarlierPeriods:
    """What a run's period takes from the invoices issued for earlier periods, read with every
    stored version of the contract (minimum runs and prepaid credit count from the first)."""

    def __init__(
        self,
        ledger: LedgerStore,
        store: ServiceStore,
        run: SettlementRun,
        contract: Contract,
        period: Period,
    ) -> None:
        self._ledger, self._store, self._run = ledger, store, run
        self.contract, self.period = contract, period

    def _versions(self) -> list[Contract]:
        run = self._run
        return [
            parse_contract(each.document, f"{run.contract} v{each.version}")
            for each in self._store.contract_versions(run.tenant, run.contract)
        ]

    def _issued(self) -> list[Invoice]:
        return issued_invoices(self._ledger, self._run.tenant)

    def prior_subtotals(self) -> tuple[Decimal, ...]:
        """What the earlier periods of the run of the contract's minimum over several periods
        were charged, when the period closes the run (`raas.core.minimum_runs`)."""
        minimum = self.contract.effective_pricing().minimum
        if minimum is None or minimum.periods == 1:
            return ()
        return commitment_prior_subtotals(self._versions(), self.period, self._issued())

    def prepaid_balance(self) -> Decimal | None:
        """The prepaid credit left before the period's invoice (`raas.core.prepaid`), or None
        when the contract states none."""
        if self.contract.effective_pricing().prepaid is None:
            return None
        drawn = prepaid_drawn_before(self._versions(), self.period, self._issued())
        return starting_balance(self.contract, drawn, self.period)
