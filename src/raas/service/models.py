"""The HTTP API's request and response bodies (pydantic, so that they appear in /openapi.json).

Bodies that the core already defines with msgspec (the invoice, its lines) are served as the
core encodes them; their schemas come from msgspec (`core_schemas`), not from a second copy.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field

from raas.core.invoice import Invoice, InvoiceLine
from raas.ingest.otlp import ModelPrice
from raas.ingest.validate import batch_json_schema
from raas.service.store import ContractVersion, Scope, SettlementRun
from raas.service.tenancy import Dispute

SCHEMA_REF_TEMPLATE = "#/components/schemas/{name}"
# Bounds of the integers a request may carry, so that none overflows a database column.
VERSION_MAX: Final = 2**31 - 1
LOG_SIZE_MAX: Final = 2**40
ID_MAX: Final = 2**62
# A token's price: at most 1,000 and 12 decimal places, so a price times any token count stays
# within Decimal's 28 digits (exact), and within what a NUMERIC column holds.
TOKEN_PRICE_MAX: Final = Decimal(1000)
TOKEN_PRICE_PLACES: Final = 12
PRICED_MODELS_MAX: Final = 10_000


def core_schemas() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The schemas of the invoice, its lines and a batch of events, and their components."""
    (invoice, lines), components = msgspec.json.schema_components(
        [Invoice, list[InvoiceLine]], ref_template=SCHEMA_REF_TEMPLATE
    )
    batch, event_components = batch_json_schema(SCHEMA_REF_TEMPLATE)
    return invoice, lines, batch, {**components, **event_components}


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready"]
    ledger_seq: int = Field(description="The highest global sequence number stored.")


class Identity(BaseModel):
    """Who the key in the request is."""

    tenant: str
    scope: Scope
    key_id: str


class IngestReceipt(BaseModel):
    """What a batch did: events newly stored, events already there, and the log's size now."""

    accepted: int = Field(ge=0)
    duplicates: int = Field(ge=0)
    tenant: str
    size: int = Field(ge=0, description="Entries in the tenant's log after this batch.")


class ContractCreate(BaseModel):
    """A contract version as its YAML document (the same text `raas settle --contract` reads)."""

    document: str = Field(min_length=1, max_length=1024 * 1024)


class ContractSummary(BaseModel):
    contract: str
    version: int
    effective_from: date
    effective_until: date | None
    document_sha256: str
    created_at: datetime
    created_by: str

    @classmethod
    def of(cls, stored: ContractVersion) -> ContractSummary:
        return cls.model_validate(msgspec.structs.asdict(stored))


class ContractDocument(ContractSummary):
    document: str

    @classmethod
    def of(cls, stored: ContractVersion) -> ContractDocument:
        return cls.model_validate(msgspec.structs.asdict(stored))


class ContractList(BaseModel):
    contracts: list[ContractSummary]


class SettlementRequest(BaseModel):
    contract: str = Field(min_length=1, max_length=256)
    period: str = Field(description="The billing month, YYYY-MM.", examples=["2026-11"])
    version: int | None = Field(
        default=None,
        ge=1,
        le=VERSION_MAX,
        description="Default: the latest version in effect at the start of the period.",
    )


class SettlementRunOut(BaseModel):
    """A settlement run: queued, running, then succeeded (with its invoice) or failed (why)."""

    id: str
    contract: str
    version: int
    period: str
    checkpoint_size: int = Field(description="The signed checkpoint's size it settles at.")
    status: Literal["queued", "running", "succeeded", "failed"]
    invoice_id: str | None
    invoice_url: str | None = Field(description="Where the issued invoice is, once succeeded.")
    error: str | None
    started_at: datetime = Field(description="When the run was asked for.")
    finished_at: datetime | None
    created_by: str
    attempts: int = Field(
        description="How many times a worker claimed the run: more than 1 when a server died "
        "while running it and another took it over."
    )
    lease_expires_at: datetime | None = Field(
        description="While running: when the claim lapses unless its worker renews it."
    )

    @classmethod
    def of(cls, run: SettlementRun) -> SettlementRunOut:
        url = None if run.invoice_id is None else f"/v1/invoices/{run.invoice_id}"
        return cls.model_validate({**msgspec.structs.asdict(run), "invoice_url": url})


class SettlementRunList(BaseModel):
    runs: list[SettlementRunOut]


class InvoiceList(BaseModel):
    invoices: list[str]


class Checkpoint(BaseModel):
    """A signed checkpoint note (C2SP signed-note format) and the log size it states."""

    tenant: str
    size: int
    note: str


class InclusionProof(BaseModel):
    """RFC 9162 inclusion proof of the entry at `index` in the tree of `size` (base64 hashes)."""

    index: int
    size: int
    leaf_hash: str
    proof: list[str]


class ConsistencyProof(BaseModel):
    """RFC 9162 consistency proof from the tree of `old_size` to that of `new_size`."""

    old_size: int
    new_size: int
    proof: list[str]


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: str


class AuditLog(BaseModel):
    records: list[AuditEntry]


class DisputeCreate(BaseModel):
    """Dispute lines (positions in the invoice's `lines`, from 0) and/or billed episodes."""

    invoice_id: str = Field(min_length=1, max_length=256)
    reason: str = Field(min_length=1, max_length=64_000)
    lines: list[Annotated[int, Field(ge=0, le=100_000)]] = Field(default=[], max_length=10_000)
    episodes: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default=[], max_length=10_000
    )


class RulingCreate(BaseModel):
    ruling: Literal["upheld", "rejected"]
    note: str | None = Field(default=None, max_length=64_000)


class DisputeOut(BaseModel):
    """A dispute as the ledger holds it (`*_log_index`: its events' places in the log)."""

    dispute_id: str
    invoice_id: str
    reason: str
    lines: list[int]
    episodes: list[str]
    filed_by: str
    filed_at: datetime
    filed_log_index: int
    status: Literal["open", "upheld", "rejected"]
    ruled_by: str | None
    ruled_at: datetime | None
    note: str | None
    ruled_log_index: int | None

    @classmethod
    def of(cls, dispute: Dispute) -> DisputeOut:
        return cls.model_validate(msgspec.structs.asdict(dispute))


class DisputeList(BaseModel):
    disputes: list[DisputeOut]


TokenPrice = Annotated[
    Decimal,
    Field(
        ge=0,
        le=TOKEN_PRICE_MAX,
        decimal_places=TOKEN_PRICE_PLACES,
        allow_inf_nan=False,
        description="Per token; a decimal string (exact) or a JSON number.",
    ),
]
ModelName = Annotated[str, Field(min_length=1, max_length=256)]


class ModelPriceIn(BaseModel):
    """What one model costs per token, and the tier its calls count as."""

    model_config = ConfigDict(extra="forbid")

    tier: str | None = Field(
        default=None, min_length=1, max_length=256, description="Default: the model's name."
    )
    input_token_price: TokenPrice
    output_token_price: TokenPrice
    currency: str = Field(default="USD", pattern="^[A-Z]{3}$")


class PriceTableIn(BaseModel):
    """The whole price table, by model name: it replaces the one stored. An OTLP span is costed
    by its response model's price, else its requested model's (`gen_ai.response.model`,
    `gen_ai.request.model`), unless it carries `raas.cost`."""

    model_config = ConfigDict(extra="forbid")

    models: dict[ModelName, ModelPriceIn] = Field(max_length=PRICED_MODELS_MAX)

    def prices(self) -> dict[str, ModelPrice]:
        return {
            name: ModelPrice(
                tier=price.tier or name,
                input_token_price=price.input_token_price,
                output_token_price=price.output_token_price,
                currency=price.currency,
            )
            for name, price in self.models.items()
        }


class ModelPriceOut(BaseModel):
    tier: str
    input_token_price: str = Field(description="Per token, as decimal text.")
    output_token_price: str = Field(description="Per token, as decimal text.")
    currency: str


class PriceTable(BaseModel):
    models: dict[str, ModelPriceOut]

    @classmethod
    def of(cls, prices: dict[str, ModelPrice]) -> PriceTable:
        return cls(
            models={
                name: ModelPriceOut(
                    tier=price.tier,
                    input_token_price=format(price.input_token_price, "f"),
                    output_token_price=format(price.output_token_price, "f"),
                    currency=price.currency,
                )
                for name, price in prices.items()
            }
        )
