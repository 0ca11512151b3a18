"""One error hierarchy for raas; every error a user can act on names what was wrong.

    RaasError
     ├── EventError            an event failed validation (event id, field, reason)
     ├── BatchRejected         a batch held bad events; nothing of it was stored
     ├── ConflictError         an idempotency key was reused with different content
     ├── ContractError         a contract file is invalid (file, line, field, reason)
     ├── SettlementError       settlement could not run (no contract for the period, ...)
     ├── StoreError            the ledger store failed or is inconsistent
     ├── ExpressionError       a contract rule is invalid (core.expressions: rule, column)
     ├── DisclosureError       a disclosed field does not match its commitment (core.commitments)
     ├── ProofError            an inclusion or consistency proof fails (audit.proofs)
     ├── CheckpointError       a checkpoint note is malformed or unsigned (ledger.checkpoint)
     ├── NoteKeyError          a signer or verifier key is malformed or unsafe (ledger.keys)
     ├── BundleError           an evidence bundle cannot be read (audit.bundle)
     ├── EvidenceError         evidence cannot be exported as asked (ledger.evidence)
     ├── DisputeError          a dispute or ruling is refused: late, unknown line (core.disputes)
     ├── RouterError           a router model or its data is unusable (router.model)
     ├── TierFileError         a gateway tier file is invalid (gateway.tiers)
     ├── ServiceError          an HTTP API answer with a status and a problem (service.problems)
     └── ServiceStoreError     the service store refused a write or failed (service.store)

The subclasses outside this module live beside the code that raises them, so that pure modules
(the auditor's) import nothing else. Driver exceptions (sqlite3, ...) are translated at the
edge into StoreError.
"""

from __future__ import annotations


class RaasError(Exception):
    """Base of every error raas raises on purpose.

    Pickles with its fields (to and from worker processes): an error is re-made from its class,
    its message arguments and its attributes, without calling its own __init__, whose arguments
    are the fields rather than the message.
    """

    def __reduce__(self) -> tuple[object, ...]:
        return (_remade, (type(self), self.args), vars(self) or None)


def _remade(kind: type[RaasError], args: tuple[object, ...]) -> RaasError:
    error = kind.__new__(kind)
    error.args = args
    return error


class EventError(RaasError):
    """One event is invalid: which event, which field, and why."""

    def __init__(self, event_id: str | None, field: str, reason: str, index: int | None = None):
        self.event_id = event_id
        self.field = field
        self.reason = reason
        self.index = index
        where = f"event {event_id!r}" if event_id else "event"
        if index is not None:
            where += f" (#{index} in batch)"
        super().__init__(f"{where}: field {field!r}: {reason}")


class BatchRejected(RaasError):
    """A batch was refused as a whole; `errors` lists every bad event in it."""

    def __init__(self, errors: list[EventError]):
        self.errors = errors
        first = errors[0] if errors else None
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"batch rejected, nothing stored: {first}{more}")


class ConflictError(RaasError):
    """The same (tenant, source, id) was sent before with different content."""

    def __init__(self, tenant: str, source: str, event_id: str, stored_hash: str, new_hash: str):
        self.tenant = tenant
        self.source = source
        self.event_id = event_id
        self.stored_hash = stored_hash
        self.new_hash = new_hash
        super().__init__(
            f"event {event_id!r} from source {source!r} (tenant {tenant!r}) was already stored "
            f"with different content (stored leaf {stored_hash[:16]}..., "
            f"new leaf {new_hash[:16]}...); "
            "an event id may not be reused"
        )


class ContractError(RaasError):
    """A contract is invalid: the file, the line, the field and the reason."""

    def __init__(self, file: str, line: int | None, field: str, reason: str):
        self.file = file
        self.line = line
        self.field = field
        self.reason = reason
        at = f"{file}:{line}" if line is not None else file
        super().__init__(f"{at}: field {field!r}: {reason}")


class SettlementError(RaasError):
    """Settlement cannot proceed with the inputs given."""


class StoreError(RaasError):
    """The ledger store failed, or what it holds disagrees with itself."""
