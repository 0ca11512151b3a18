"""The OTLP/HTTP answer to a refused export: a google.rpc.Status body (protobuf, or JSON when the
request was JSON), as the OTLP specification asks of every 4xx and 5xx on an OTLP path, instead
of the problem+json the rest of the API answers with.
"""

from __future__ import annotations

from typing import Final

import msgspec
from google.protobuf import json_format
from google.rpc import code_pb2
from google.rpc.status_pb2 import Status

from raas.ingest.otlp import CONTENT_TYPE_JSON, CONTENT_TYPE_PROTOBUF

__all__ = ["OTLP_PATHS", "TRACES_PATH", "status_body", "status_schema"]

TRACES_PATH: Final = "/v1/traces"
OTLP_PATHS: Final = frozenset({TRACES_PATH})

# The gRPC code of each HTTP status the service answers (the usual HTTP <-> gRPC mapping).
_CODES: Final = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    403: code_pb2.PERMISSION_DENIED,
    404: code_pb2.NOT_FOUND,
    405: code_pb2.UNIMPLEMENTED,
    408: code_pb2.DEADLINE_EXCEEDED,
    409: code_pb2.ABORTED,
    413: code_pb2.RESOURCE_EXHAUSTED,
    415: code_pb2.INVALID_ARGUMENT,
    422: code_pb2.INVALID_ARGUMENT,
    429: code_pb2.RESOURCE_EXHAUSTED,
    503: code_pb2.UNAVAILABLE,
}


def status_body(http_status: int, message: str, request_content_type: str) -> tuple[bytes, str]:
    """The Status body and its media type: JSON when the request was JSON, else protobuf (the
    OTLP default, also for a request whose content type raas does not take)."""
    code = _CODES.get(http_status, code_pb2.INTERNAL if http_status >= 500 else code_pb2.UNKNOWN)
    status = Status(code=code, message=message)
    if _media_type(request_content_type) == CONTENT_TYPE_JSON:
        return msgspec.json.encode(json_format.MessageToDict(status)), CONTENT_TYPE_JSON
    body: bytes = status.SerializeToString()
    return body, CONTENT_TYPE_PROTOBUF


def _media_type(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def status_schema() -> dict[str, object]:
    """google.rpc.Status in OTLP JSON, for the OpenAPI document."""
    return {
        "type": "object",
        "description": "google.rpc.Status: a gRPC code and a message saying what was wrong.",
        "properties": {
            "code": {"type": "integer"},
            "message": {"type": "string"},
            "details": {"type": "array", "items": {"type": "object"}},
        },
    }
