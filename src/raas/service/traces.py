"""`POST /v1/traces`: the OTLP/HTTP traces endpoint, so an agent instrumented with OpenTelemetry
needs only an exporter address and an ingest key to record its model and tool calls.

The body (protobuf or JSON, plain or gzip) goes through `raas.ingest.otlp`; the events are
appended to the key's tenant log all or nothing, and the answer is an ExportTraceServiceResponse
in the request's own encoding whose partial_success counts the spans not stored, and says why.
A refused export (4xx, 5xx) is answered with a google.rpc.Status, in that encoding too (see
`otlp_status`), as the OTLP specification asks, not with the API's problem+json.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import Depends, FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from raas.ingest.otlp import (
    CONTENT_TYPE_JSON,
    CONTENT_TYPE_PROTOBUF,
    OtlpError,
    convert_traces,
    decompressed,
    export_response,
)
from raas.service.auth import access
from raas.service.otlp_status import TRACES_PATH
from raas.service.problems import ServiceError
from raas.service.settings import ServiceSettings
from raas.service.tenancy import Action, TenantData

__all__ = ["TRACES_PATH", "add_traces_route"]

_MEDIA_TYPES: Final = (CONTENT_TYPE_PROTOBUF, CONTENT_TYPE_JSON)

_TRACES_OPENAPI: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "description": (
            "An OTLP/HTTP ExportTraceServiceRequest, binary protobuf or OTLP JSON, optionally "
            "gzip (Content-Encoding). Spans with OpenTelemetry GenAI attributes become model and "
            "tool calls; every other span is counted in the response's partial_success."
        ),
        "content": {
            CONTENT_TYPE_PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
            CONTENT_TYPE_JSON: {"schema": {"type": "object"}},
        },
    },
    "responses": {
        "200": {
            "description": "An ExportTraceServiceResponse in the request's encoding.",
            "content": {
                CONTENT_TYPE_PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
                CONTENT_TYPE_JSON: {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "partialSuccess": {
                                "type": "object",
                                "properties": {
                                    "rejectedSpans": {"type": "string"},
                                    "errorMessage": {"type": "string"},
                                },
                            }
                        },
                    }
                },
            },
        }
    },
}

IngestKey = Annotated[TenantData, Depends(access(Action.INGEST))]


def add_traces_route(app: FastAPI, settings: ServiceSettings) -> None:
    """Add `POST /v1/traces` to the API (an ingest or vendor-admin key)."""

    @app.post(TRACES_PATH, tags=["ingest"], openapi_extra=_TRACES_OPENAPI)
    async def traces(request: Request, data: IngestKey) -> Response:
        """Record the GenAI spans of an OTLP trace export as model-call and tool-call events.

        Exporting the same spans again stores nothing twice (event ids come from the trace and
        span ids). Spans raas cannot use are not errors: the response counts them, by reason.
        """
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type not in _MEDIA_TYPES:
            raise ServiceError(
                415,
                "unsupported-media-type",
                "Unsupported content type",
                f"Content-Type {media_type or '(none)'!r} is not one of {', '.join(_MEDIA_TYPES)}",
            )
        body = await request.body()
        encoding = request.headers.get("content-encoding")

        def work() -> bytes:
            try:
                plain = decompressed(body, encoding, bytes_max=settings.ingest_body_bytes_max)
                conversion = convert_traces(
                    plain, media_type, tenant=data.tenant, prices=data.ingest_prices()
                )
            except OtlpError as error:
                raise ServiceError(
                    400, "invalid-otlp", "Not an OTLP trace export", error.reason
                ) from error
            if conversion.events:
                data.append(conversion.events)
            return export_response(conversion, json=media_type == CONTENT_TYPE_JSON)

        return Response(await run_in_threadpool(work), media_type=media_type)
