"""The HTTP API (`raas serve`): FastAPI over the ledger and the service store.

`create_app(settings)` opens the stores and returns the ASGI app; routes only parse, call
`TenantData` and render. Every error leaves as application/problem+json (see `problems`), the
OpenAPI document is at /openapi.json, and the limits of `settings` wrap every request.
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Annotated, Any, Final

from fastapi import Depends, FastAPI, Path, Query, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from raas.audit.bundle import encode_bundle
from raas.audit.receipt import encode_receipt
from raas.core.invoice import InvoiceLine
from raas.dashboard.service import mount_dashboard
from raas.errors import RaasError
from raas.ingest.validate import BATCH_EVENTS_MAX
from raas.ledger.keys import SignerKey, load_signer_key
from raas.ledger.store import LedgerStore
from raas.service import models
from raas.service.auth import Services, access, services_of
from raas.service.limits import RequestLimits, TokenBuckets
from raas.service.otlp_status import OTLP_PATHS, TRACES_PATH, status_schema
from raas.service.problems import (
    PROBLEM_MEDIA_TYPE,
    FieldError,
    Problem,
    ServiceError,
    error_body,
    problem_of,
)
from raas.service.settings import ServiceSettings, open_stores
from raas.service.store import ServiceStore, utc_now
from raas.service.tenancy import Action, TenantData, checkpoint_size
from raas.service.traces import add_traces_route
from raas.service.worker import SettlementWorker

__all__ = ["INGEST_PATHS", "create_app"]

JSON: Final = "application/json"
NDJSON: Final = "application/x-ndjson"
PROTOBUF: Final = "application/x-protobuf"
YAML_TYPES: Final = ("application/yaml", "application/x-yaml", "text/yaml")
# Routes whose bodies may be as large as a batch of events; every other body is smaller.
INGEST_PATHS: Final = ("/v1/events", TRACES_PATH)
_PROBLEM_STATUSES: Final = (400, 401, 403, 404, 408, 409, 413, 415, 422, 429, 503)
_PROBLEM_DESCRIPTIONS: Final = {
    400: "The request cannot be read",
    401: "No live API key",
    403: "The key's scope may not do this",
    404: "Not found in this tenant",
    408: "The body arrived too slowly",
    409: "Conflicts with what is stored",
    413: "The body is too large",
    415: "Unsupported content type",
    422: "A field is invalid",
    429: "Rate limit reached",
    503: "Not ready, or the request took too long",
}

Tenant = TenantData


def _problem_response(error: ServiceError, request: Request) -> Response:
    body, media_type = error_body(error, request.url.path, request.headers.get("content-type", ""))
    return Response(body, status_code=error.status, media_type=media_type, headers=error.headers)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _json(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type=JSON)


def create_app(
    settings: ServiceSettings,
    *,
    ledger: LedgerStore | None = None,
    store: ServiceStore | None = None,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] = utc_now,
) -> FastAPI:
    """The API over `settings.database`, or over the stores given (both, already open).

    Stores opened here are closed when the app shuts down; stores given stay the caller's.
    `clock` (monotonic seconds) refills the keys' token buckets, and `now` (aware UTC) times the
    settlement worker's leases; tests give their own.
    """
    signers: tuple[SignerKey, ...] = tuple(
        load_signer_key(path) for path in settings.signer_key_paths
    )
    owned = ledger is None or store is None
    if ledger is None or store is None:
        ledger, store = open_stores(settings)
    services = Services(
        ledger=ledger,
        store=store,
        signers=signers,
        buckets=TokenBuckets(settings.requests_per_second, settings.requests_burst, clock),
        worker=SettlementWorker(
            ledger,
            store,
            now=now,
            lease=timedelta(seconds=settings.settlement_lease_seconds),
            attempts_max=settings.settlement_attempts_max,
        ),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        services.ledger.start_preparers(settings.ingest_processes)
        services.worker.start()
        # The dashboard's tables and figures are brought up while the first requests come.
        app.state.dashboard.start_warming()
        try:
            yield
        finally:
            # Waits for the settlement in hand: it must end before its stores close.
            await run_in_threadpool(services.worker.stop)
            await run_in_threadpool(services.ledger.start_preparers, 0)
            app.state.dashboard.close()
            if owned:
                services.store.close()
                services.ledger.close()

    app = FastAPI(
        title="raas",
        version="1",
        summary="Results as a service: record agent events, settle contracts, verify invoices.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        dependencies=[Depends(_reject_unknown_query)],
    )
    app.state.services = services
    app.state.settings = settings
    _add_error_handlers(app)
    _add_routes(app)
    add_traces_route(app, settings)
    _document_problems(app)
    app.state.dashboard = mount_dashboard(app, settings, ledger, store, signers)

    def body_bytes_max(path: str) -> int:
        if path in INGEST_PATHS:
            return settings.ingest_body_bytes_max
        return settings.body_bytes_max

    app.add_middleware(
        RequestLimits,
        body_bytes_max=body_bytes_max,
        body_timeout_seconds=settings.body_timeout_seconds,
        request_timeout_seconds=settings.request_timeout_seconds,
    )
    return app


def _add_error_handlers(app: FastAPI) -> None:
    async def service_error(request: Request, error: Exception) -> Response:
        found = problem_of(error)
        if found is None:
            raise error
        return _problem_response(found, request)

    async def validation_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        errors = [
            FieldError(
                field=".".join(str(part) for part in item.get("loc", ())) or "body",
                reason=str(item.get("msg", "invalid")),
            )
            for item in error.errors()
        ]
        first = errors[0] if errors else FieldError(field="body", reason="invalid")
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        problem = ServiceError(
            422,
            "invalid-request",
            "Invalid request",
            f"field {first.field!r}: {first.reason}{more}",
            errors=errors,
        )
        return _problem_response(problem, request)

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        kind = {404: "not-found", 405: "method-not-allowed"}.get(error.status_code, "http-error")
        problem = ServiceError(
            error.status_code,
            kind,
            str(error.detail),
            f"{request.method} {request.url.path}: {error.detail}",
            headers=dict(error.headers or {}),
        )
        return _problem_response(problem, request)

    app.add_exception_handler(RaasError, service_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)


def _document_problems(app: FastAPI) -> None:
    """Every operation answers its errors with a problem body, and says so in /openapi.json."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            routes=app.routes,
        )
        invoice, lines, batch, components = models.core_schemas()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas.update(components)
        schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas["FieldError"] = schemas["Problem"].pop("$defs")["FieldError"]
        schemas["ContractCreate"] = models.ContractCreate.model_json_schema()
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        problem = {
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        }
        schemas["Status"] = status_schema()
        status = {
            "content": {
                JSON: {"schema": {"$ref": "#/components/schemas/Status"}},
                PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
            }
        }
        for path, operations in document.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                for code in _PROBLEM_STATUSES:
                    responses[str(code)] = {
                        "description": _PROBLEM_DESCRIPTIONS[code],
                        **(status if path in OTLP_PATHS else problem),
                    }
                if path in ("/healthz", "/readyz", "/openapi.json"):
                    for code in _PROBLEM_STATUSES:
                        if code not in (404, 408, 413, 503):
                            responses.pop(str(code), None)
                _insert_core_schema(operation, invoice, lines)
                body = operation.get("requestBody", {}).get("content", {}).get(JSON)
                if body is not None and body["schema"] == _EVENTS_PLACEHOLDER:
                    body["schema"] = batch
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _insert_core_schema(operation: dict[str, Any], invoice: Any, lines: Any) -> None:
    marker = operation.pop("x-raas-body", None)
    if marker is None:
        return
    schema = {"invoice": invoice, "lines": lines}[marker]
    operation["responses"]["200"] = {
        "description": operation["responses"].get("200", {}).get("description", "OK"),
        "content": {JSON: {"schema": schema}},
    }


# Replaced by the schema msgspec derives from the ingest decoder when the document is built.
_EVENTS_PLACEHOLDER: Final = {"x-raas-schema": "event-batch"}
_EVENTS_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "description": (
            f"A batch of at most {BATCH_EVENTS_MAX:,} CloudEvents 1.0 (raas event types): a JSON "
            "array, or NDJSON with one event a line. One bad event rejects the whole batch."
        ),
        "content": {
            JSON: {"schema": _EVENTS_PLACEHOLDER},
            NDJSON: {"schema": {"type": "string"}},
        },
    }
}

_CONTRACT_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "description": 'The contract\'s YAML, as JSON `{"document": ...}` or as application/yaml.',
        "content": {
            JSON: {"schema": {"$ref": "#/components/schemas/ContractCreate"}},
            YAML_TYPES[0]: {"schema": {"type": "string"}},
        },
    }
}


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _unsupported(found: str, expected: Sequence[str]) -> ServiceError:
    return ServiceError(
        415,
        "unsupported-media-type",
        "Unsupported content type",
        f"Content-Type {found or '(none)'!r} is not one of {', '.join(expected)}",
    )


# The dependencies routes take (module level: FastAPI resolves annotations by name here).
IngestKey = Annotated[Tenant, Depends(access(Action.INGEST))]
ContractWriter = Annotated[Tenant, Depends(access(Action.WRITE_CONTRACTS))]
ContractReader = Annotated[Tenant, Depends(access(Action.READ_CONTRACTS))]
Settler = Annotated[Tenant, Depends(access(Action.SETTLE))]
RunReader = Annotated[Tenant, Depends(access(Action.READ_SETTLEMENTS))]
InvoiceReader = Annotated[Tenant, Depends(access(Action.READ_INVOICES))]
EvidenceReader = Annotated[Tenant, Depends(access(Action.READ_EVIDENCE))]
Signer = Annotated[Tenant, Depends(access(Action.SIGN_CHECKPOINTS))]
CheckpointReader = Annotated[Tenant, Depends(access(Action.READ_CHECKPOINTS))]
AuditReader = Annotated[Tenant, Depends(access(Action.READ_AUDIT_LOG))]
Anyone = Annotated[Tenant, Depends(access(Action.READ_OWN_KEY))]
DisputeFiler = Annotated[Tenant, Depends(access(Action.FILE_DISPUTES))]
DisputeRuler = Annotated[Tenant, Depends(access(Action.RULE_DISPUTES))]
DisputeReader = Annotated[Tenant, Depends(access(Action.READ_DISPUTES))]
PriceSetter = Annotated[Tenant, Depends(access(Action.SET_PRICES))]
PriceReader = Annotated[Tenant, Depends(access(Action.READ_PRICES))]
Name = Annotated[str, Path(min_length=1, max_length=256)]
Size = Annotated[int, Path(ge=0, le=models.LOG_SIZE_MAX)]


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for dependency in dependant.dependencies:
        names |= _query_names(dependency)
    return names


def _reject_unknown_query(request: Request) -> None:
    """A query parameter the route does not take is an error, never silently ignored: a
    misspelt `invoice_id` would otherwise list every dispute."""
    route = request.scope.get("route")
    if route is None or not request.url.path.startswith("/v1/"):
        return
    taken = _query_names(route.dependant)
    names = [name for name, _ in request.query_params.multi_items()]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ServiceError(
            422,
            "invalid-request",
            "Invalid request",
            f"query parameter {repeated[0]!r} is given more than once",
            errors=[
                FieldError(field=f"query.{name}", reason="is given twice") for name in repeated
            ],
        )
    unknown = sorted(set(names) - taken)
    if unknown:
        expected = ", ".join(sorted(taken)) or "none"
        raise ServiceError(
            422,
            "invalid-request",
            "Invalid request",
            f"query parameter {unknown[0]!r} is not taken here (expected: {expected})",
            errors=[
                FieldError(field=f"query.{name}", reason="is not a parameter of this route")
                for name in unknown
            ],
        )


def _add_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["health"])
    def healthz() -> models.Health:
        """The process is up (no dependency is checked)."""
        return models.Health(status="ok")

    @app.get("/readyz", tags=["health"])
    def readyz(request: Request) -> models.Readiness:
        """The ledger and the service store answer."""
        services = services_of(request)
        try:
            services.store.ping()
            seq = services.ledger.max_seq()
        except RaasError as error:
            raise ServiceError(503, "not-ready", "Not ready", str(error)) from error
        return models.Readiness(status="ready", ledger_seq=seq)

    @app.get("/v1/me", tags=["keys"])
    def me(data: Anyone) -> models.Identity:
        """The tenant and scope of the key in the request."""
        return models.Identity(tenant=data.tenant, scope=data.scope, key_id=data.key_id)

    # -- ingest -----------------------------------------------------------------------------

    @app.post("/v1/events", tags=["ingest"], openapi_extra=_EVENTS_BODY)
    async def ingest(request: Request, data: IngestKey) -> models.IngestReceipt:
        """Append a batch of events to the key's tenant log, all or nothing, idempotently.

        An event already stored (same source and id, same content) counts as a duplicate; an
        id reused with other content is a 409. A bad event (or one naming another tenant)
        rejects the batch with a 422 naming each bad event, its field and the reason.
        """
        media_type = _media_type(request)
        if media_type not in (JSON, NDJSON):
            raise _unsupported(media_type, (JSON, NDJSON))
        body = await request.body()

        def work() -> models.IngestReceipt:
            receipt, size = data.append_body(body, ndjson=media_type == NDJSON)
            return models.IngestReceipt(
                accepted=receipt.stored,
                duplicates=receipt.duplicates,
                tenant=data.tenant,
                size=size,
            )

        return await run_in_threadpool(work)

    # -- contracts --------------------------------------------------------------------------

    @app.post(
        "/v1/contracts",
        tags=["contracts"],
        status_code=201,
        openapi_extra=_CONTRACT_BODY,
        responses={200: {"model": models.ContractDocument, "description": "Already stored"}},
    )
    async def create_contract(
        request: Request, response: Response, data: ContractWriter
    ) -> models.ContractDocument:
        """Store a contract version (its YAML names contract, version and effective dates).

        The buyer must be the key's tenant. Sending the same document again answers 200; another
        document under a stored version is a 409 (a changed contract is a new version).
        """
        media_type = _media_type(request)
        body = await request.body()
        if media_type == JSON:
            try:
                document = models.ContractCreate.model_validate_json(body).document
            except ValueError as error:
                raise ServiceError(
                    422,
                    "invalid-request",
                    "Invalid request",
                    'expected a JSON object {"document": "<the contract YAML>"}',
                    errors=[FieldError(field="document", reason=str(error).splitlines()[0])],
                ) from None
        elif media_type in YAML_TYPES:
            try:
                document = body.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise ServiceError(
                    422,
                    "invalid-contract",
                    "Invalid contract",
                    "the contract document is not UTF-8 text",
                    errors=[FieldError(field="document", reason="expected UTF-8 text")],
                ) from None
        else:
            raise _unsupported(media_type, (JSON, *YAML_TYPES))
        stored, created = await run_in_threadpool(data.add_contract, document)
        response.status_code = 201 if created else 200
        return models.ContractDocument.of(stored)

    @app.get("/v1/contracts", tags=["contracts"])
    def list_contracts(data: ContractReader) -> models.ContractList:
        """Every version of every contract of the tenant."""
        return models.ContractList(
            contracts=[models.ContractSummary.of(item) for item in data.contract_versions()]
        )

    @app.get("/v1/contracts/{contract}", tags=["contracts"])
    def read_contract(contract: Name, data: ContractReader) -> models.ContractList:
        """Every version of one contract, oldest first."""
        return models.ContractList(
            contracts=[models.ContractSummary.of(item) for item in data.contract_versions(contract)]
        )

    @app.get("/v1/contracts/{contract}/versions/{version}", tags=["contracts"])
    def read_contract_version(
        contract: Name,
        version: Annotated[int, Path(ge=1, le=models.VERSION_MAX)],
        data: ContractReader,
    ) -> models.ContractDocument:
        """One contract version with its YAML document."""
        return models.ContractDocument.of(data.contract_version(contract, version))

    # -- settlement -------------------------------------------------------------------------

    @app.post(
        "/v1/settlements",
        tags=["settlement"],
        status_code=202,
        responses={
            202: {
                "description": "Queued; read the run at its Location until it has ended.",
                "headers": {
                    "Location": {
                        "description": "The run: /v1/settlements/{run_id}.",
                        "schema": {"type": "string"},
                    }
                },
            }
        },
    )
    def settle(
        request: Request,
        response: Response,
        request_body: models.SettlementRequest,
        data: Settler,
    ) -> models.SettlementRunOut:
        """Queue the settlement of a contract for a period at the latest signed checkpoint.

        The run executes in the background: read it back (`GET` at its Location) until its
        status is `succeeded` (with its `invoice_id`) or `failed` (with its `error`). Settling
        again at the same checkpoint issues the same invoice (same id, same bytes).
        """
        run = data.settle(request_body.contract, request_body.period, request_body.version)
        services_of(request).worker.wake()
        response.headers["Location"] = f"/v1/settlements/{run.id}"
        return models.SettlementRunOut.of(run)

    @app.get("/v1/settlements", tags=["settlement"])
    def list_settlements(data: RunReader) -> models.SettlementRunList:
        return models.SettlementRunList(
            runs=[models.SettlementRunOut.of(run) for run in data.settlement_runs()]
        )

    @app.get("/v1/settlements/{run_id}", tags=["settlement"])
    def read_settlement(run_id: Name, data: RunReader) -> models.SettlementRunOut:
        """The run: `queued`, `running`, then `succeeded` with its invoice (`invoice_id`,
        `invoice_url`) or `failed` with the `error`."""
        return models.SettlementRunOut.of(data.settlement_run(run_id))

    # -- invoices and evidence --------------------------------------------------------------

    @app.get("/v1/invoices", tags=["invoices"])
    def list_invoices(data: InvoiceReader) -> models.InvoiceList:
        return models.InvoiceList(invoices=data.invoice_ids())

    @app.get(
        "/v1/invoices/{invoice_id}",
        tags=["invoices"],
        response_class=Response,
        openapi_extra={"x-raas-body": "invoice"},
    )
    def read_invoice(invoice_id: Name, data: InvoiceReader) -> Response:
        """The issued invoice, byte for byte as issued (sorted keys, amounts as decimal text)."""
        return _json(data.invoice_body(invoice_id))

    @app.get(
        "/v1/invoices/{invoice_id}/lines",
        tags=["invoices"],
        response_class=Response,
        openapi_extra={"x-raas-body": "lines"},
    )
    def read_invoice_lines(invoice_id: Name, data: InvoiceReader) -> Response:
        """The invoice's lines, each with its quantity, price, amount and episodes."""
        import msgspec

        lines: tuple[InvoiceLine, ...] = data.invoice(invoice_id).lines
        return _json(msgspec.json.encode(lines, order="sorted"))

    @app.get(
        "/v1/invoices/{invoice_id}/evidence",
        tags=["evidence"],
        response_class=Response,
        responses={200: {"content": {JSON: {"schema": {"type": "object"}}}}},
    )
    def evidence_bundle(
        invoice_id: Name,
        data: EvidenceReader,
        redact: bool = False,
        scope: Annotated[str, Query(pattern="^(customers|log)$")] = "customers",
    ) -> Response:
        """The evidence bundle to re-derive the invoice offline (`raas verify`).

        `redact` leaves personal data out (the proofs still verify); an auditor's bundle is
        always redacted. `scope=log` holds the whole log up to the checkpoint.
        """
        redacted = redact or data.scope == "auditor"
        bundle = data.evidence_bundle(
            invoice_id, redact=redacted, scope="log" if scope == "log" else "customers"
        )
        return _json(encode_bundle(bundle))

    @app.get(
        "/v1/invoices/{invoice_id}/receipt",
        tags=["evidence"],
        response_class=Response,
        responses={200: {"content": {JSON: {"schema": {"type": "object"}}}}},
    )
    def receipt(
        invoice_id: Name,
        data: EvidenceReader,
        line: Annotated[int | None, Query(ge=1, le=100_000)] = None,
        episode: Annotated[str | None, Query(min_length=1, max_length=1024)] = None,
    ) -> Response:
        """A receipt for one invoice line or one episode: its entries with inclusion proofs."""
        return _json(encode_receipt(data.receipt(invoice_id, line=line, episode=episode)))

    # -- checkpoints and proofs -------------------------------------------------------------

    def _checkpoint(data: TenantData, note: str) -> models.Checkpoint:
        return models.Checkpoint(tenant=data.tenant, size=checkpoint_size(note), note=note)

    @app.post("/v1/checkpoints", tags=["checkpoints"], status_code=201)
    def sign_checkpoint(data: Signer) -> models.Checkpoint:
        """Sign the tenant's log as it is now with the server's key(s)."""
        return _checkpoint(data, data.sign_checkpoint())

    @app.get("/v1/checkpoints/latest", tags=["checkpoints"])
    def latest_checkpoint(data: CheckpointReader) -> models.Checkpoint:
        return _checkpoint(data, data.latest_checkpoint())

    @app.get("/v1/checkpoints/{size}", tags=["checkpoints"])
    def checkpoint_at(size: Size, data: CheckpointReader) -> models.Checkpoint:
        """The checkpoint signed at this log size."""
        return _checkpoint(data, data.checkpoint_at(size))

    @app.get("/v1/proofs/inclusion", tags=["checkpoints"])
    def inclusion_proof(
        index: Annotated[int, Query(ge=0, le=models.LOG_SIZE_MAX)],
        size: Annotated[int, Query(ge=1, le=models.LOG_SIZE_MAX)],
        data: CheckpointReader,
    ) -> models.InclusionProof:
        leaf, proof = data.inclusion_proof(index, size)
        return models.InclusionProof(
            index=index, size=size, leaf_hash=_b64(leaf), proof=[_b64(node) for node in proof]
        )

    @app.get("/v1/proofs/consistency", tags=["checkpoints"])
    def consistency_proof(
        old_size: Annotated[int, Query(ge=0, le=models.LOG_SIZE_MAX)],
        new_size: Annotated[int, Query(ge=0, le=models.LOG_SIZE_MAX)],
        data: CheckpointReader,
    ) -> models.ConsistencyProof:
        proof = data.consistency_proof(old_size, new_size)
        return models.ConsistencyProof(
            old_size=old_size, new_size=new_size, proof=[_b64(node) for node in proof]
        )

    # -- disputes ---------------------------------------------------------------------------

    @app.post("/v1/disputes", tags=["disputes"], status_code=201)
    def file_dispute(filing: models.DisputeCreate, data: DisputeFiler) -> models.DisputeOut:
        """File a dispute against lines or episodes of one of the tenant's invoices.

        The filing is a ledger event (dev.raas.dispute.filed), as tamper-evident as the work.
        """
        dispute = data.file_dispute(filing.invoice_id, filing.reason, filing.lines, filing.episodes)
        return models.DisputeOut.of(dispute)

    @app.get("/v1/disputes", tags=["disputes"])
    def list_disputes(
        data: DisputeReader,
        invoice_id: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    ) -> models.DisputeList:
        return models.DisputeList(
            disputes=[models.DisputeOut.of(item) for item in data.disputes(invoice_id)]
        )

    @app.get("/v1/disputes/{dispute_id}", tags=["disputes"])
    def read_dispute(dispute_id: Name, data: DisputeReader) -> models.DisputeOut:
        return models.DisputeOut.of(data.dispute(dispute_id))

    @app.post("/v1/disputes/{dispute_id}/ruling", tags=["disputes"], status_code=201)
    def rule_dispute(
        dispute_id: Name, ruling: models.RulingCreate, data: DisputeRuler
    ) -> models.DisputeOut:
        """Rule on an open dispute (dev.raas.dispute.ruled); upheld disputes are credited on a
        later invoice as an adjustment."""
        return models.DisputeOut.of(data.rule_dispute(dispute_id, ruling.ruling, ruling.note))

    # -- the price table --------------------------------------------------------------------

    @app.put("/v1/prices", tags=["prices"])
    def set_prices(table: models.PriceTableIn, data: PriceSetter) -> models.PriceTable:
        """Replace the tenant's price table: what each model costs per input and output token.

        `POST /v1/traces` costs a GenAI span by it unless the span carries `raas.cost`; a span
        whose model has no price is stored at cost 0 and counted as a warning naming the model.
        """
        return models.PriceTable.of(data.set_model_prices(table.prices()))

    @app.get("/v1/prices", tags=["prices"])
    def read_prices(data: PriceReader) -> models.PriceTable:
        """The tenant's price table, by model name."""
        return models.PriceTable.of(data.model_prices())

    # -- administration ---------------------------------------------------------------------

    @app.get("/v1/audit", tags=["keys"])
    def audit_log(
        data: AuditReader,
        after_id: Annotated[int, Query(ge=0, le=models.ID_MAX)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> models.AuditLog:
        """The tenant's administrative actions (keys, contracts, settlements, checkpoints)."""
        return models.AuditLog(
            records=[
                models.AuditEntry(
                    id=record.id,
                    at=record.at,
                    actor=record.actor,
                    action=record.action,
                    target=record.target,
                    detail=record.detail,
                )
                for record in data.audit_log(after_id, limit)
            ]
        )
