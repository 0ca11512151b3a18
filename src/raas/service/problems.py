"""One error shape for the HTTP API: RFC 9457 problem details (application/problem+json).

Every 4xx says what was wrong: `title` names the kind of problem, `detail` the case, and, where
a field is to blame, `errors` lists each one (event id, index, field, reason). Library errors are
translated here, at the edge, into a status and a problem; handlers raise, never build bodies.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from pydantic import BaseModel, Field

from raas.errors import (
    BatchRejected,
    ConflictError,
    ContractError,
    EventError,
    RaasError,
    SettlementError,
)
from raas.service.otlp_status import OTLP_PATHS, status_body

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "FieldError",
    "Problem",
    "ServiceError",
    "error_body",
    "problem_body",
    "problem_of",
]

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
TYPE_BASE: Final = "urn:raas:problem:"
_encoder: Final = msgspec.json.Encoder()


class FieldError(BaseModel):
    """One thing wrong in a request: where (event id and index for ingest, field) and why."""

    field: str = Field(description="Dotted path of the field at fault, `body` for the whole body.")
    reason: str
    event_id: str | None = None
    index: int | None = Field(default=None, description="Position of the event in the batch.")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(description="A URN naming the kind of problem.")
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None
    instance: str | None = Field(default=None, description="The request path.")


class ServiceError(RaasError):
    """An error the HTTP API answers with `status` and a problem body (see raas.errors)."""

    def __init__(
        self,
        status: int,
        kind: str,
        title: str,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.title = title
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}


def not_found(what: str) -> ServiceError:
    return ServiceError(404, "not-found", "Not found", what)


def conflict(detail: str) -> ServiceError:
    return ServiceError(409, "conflict", "Conflict with what is stored", detail)


def invalid(field: str, reason: str) -> ServiceError:
    return ServiceError(
        422,
        "invalid-request",
        "Invalid request",
        f"field {field!r}: {reason}",
        errors=[FieldError(field=field, reason=reason)],
    )


def _field_error(error: EventError) -> FieldError:
    return FieldError(
        field=error.field, reason=error.reason, event_id=error.event_id, index=error.index
    )


def problem_of(error: Exception) -> ServiceError | None:
    """The API's answer to a library error, or None for one that is the server's fault."""
    if isinstance(error, ServiceError):
        return error
    if isinstance(error, BatchRejected):
        return ServiceError(
            422,
            "batch-rejected",
            "Batch rejected; nothing of it was stored",
            str(error),
            errors=[_field_error(item) for item in error.errors],
        )
    if isinstance(error, EventError):
        return ServiceError(
            422,
            "batch-rejected",
            "Batch rejected; nothing of it was stored",
            str(error),
            errors=[_field_error(error)],
        )
    if isinstance(error, ConflictError):
        return ServiceError(
            409,
            "event-id-reused",
            "An event id was reused with other content; nothing of the batch was stored",
            str(error),
            errors=[
                FieldError(
                    field="id",
                    event_id=error.event_id,
                    reason=f"already stored from source {error.source!r} with other content",
                )
            ],
        )
    if isinstance(error, ContractError):
        return ServiceError(
            422,
            "invalid-contract",
            "Invalid contract",
            str(error),
            errors=[FieldError(field=error.field, reason=error.reason)],
        )
    if isinstance(error, SettlementError):
        return ServiceError(409, "settlement-refused", "Settlement cannot run", str(error))
    return None


def problem_body(error: ServiceError, instance: str | None = None) -> bytes:
    body: dict[str, Any] = {
        "type": TYPE_BASE + error.kind,
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
    }
    if error.errors is not None:
        body["errors"] = [item.model_dump(exclude_none=True) for item in error.errors]
    if instance is not None:
        body["instance"] = instance
    return _encoder.encode(body)


def error_body(error: ServiceError, path: str, request_content_type: str) -> tuple[bytes, str]:
    """The body and media type answering `error`: a problem, except on an OTLP path, where the
    OTLP specification asks for a google.rpc.Status in the request's encoding."""
    if path in OTLP_PATHS:
        message = error.detail
        if error.errors:
            message += "; " + "; ".join(f"{item.field}: {item.reason}" for item in error.errors)
        return status_body(error.status, f"{error.title}: {message}", request_content_type)
    return problem_body(error, path), PROBLEM_MEDIA_TYPE
