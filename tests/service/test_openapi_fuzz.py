"""Schemathesis against the served /openapi.json, in process: at least 5,000 generated requests
(valid and invalid) with valid keys; none may answer 5xx, and every response must match the
schema its operation documents (status code, content type, body, headers).

What would break: an unhandled exception on odd input (a 500), an error answered outside the
problem shape, a route whose documented responses drift from what it returns, invalid input
accepted with a 2xx.
"""

from __future__ import annotations

import os
from pathlib import Path

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from conftest import ACME_CONTRACT, make_keys, signer_key
from raas.service.app import create_app
from raas.service.settings import ServiceSettings

REQUESTS_MIN = 5_000
EXAMPLES_PER_OPERATION = int(os.environ.get("RAAS_FUZZ_EXAMPLES", "270"))
# Routes that only a buyer's key may call; every other one is called with the vendor admin's.
BUYER_ROUTES = {("POST", "/v1/disputes")}


def fuzz(operation: schemathesis.APIOperation, headers: dict[str, str]) -> int:
    """Call the operation with generated requests, valid and invalid; how many were made."""
    calls = 0

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        case=st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )
    )
    def call(case: schemathesis.Case) -> None:
        nonlocal calls
        calls += 1
        # Valid by the schema is not always valid: an event naming another tenant, a document
        # that is not a contract. Those get a 4xx, which is right, so that check is left out.
        case.call_and_validate(
            headers={**(case.headers or {}), **headers},
            excluded_checks=[positive_data_acceptance],
        )

    call()
    return calls


def test_generated_requests_get_no_5xx_and_responses_match_the_schema(tmp_path: Path) -> None:
    database = tmp_path / "raas.db"
    keys = make_keys(database)
    app = create_app(
        ServiceSettings(
            database=f"sqlite:///{database}",
            signer_key_paths=(signer_key(tmp_path),),
            requests_per_second=1_000_000,
            requests_burst=1_000_000,
        )
    )
    calls: dict[str, int] = {}
    with TestClient(app) as client:
        admin = {"Authorization": f"Bearer {keys[('acme', 'vendor-admin')]}"}
        # A contract for generated names to hit or miss.
        created = client.post(
            "/v1/contracts",
            content=ACME_CONTRACT.read_bytes(),
            headers={**admin, "content-type": "application/yaml"},
        )
        assert created.status_code == 201
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        # The key is sent by the test (a valid one, of the operation's scope), so generation
        # leaves the security parameters alone: a case with a negated key would be skipped,
        # and generating it is most of this test's time.
        schema.config.generation.update(with_security_parameters=False)
        # A body over the route's size limit is refused before it is read, with 413, whether
        # it is valid or not: a right answer to invalid data too.
        rejection = schema.config.checks.negative_data_rejection
        rejection.expected_statuses = [*rejection.expected_statuses, "413"]
        for result in schema.get_all_operations():
            operation = result.ok()
            route = (operation.method.upper(), operation.path)
            scope = "buyer" if route in BUYER_ROUTES else "vendor-admin"
            headers = {"Authorization": f"Bearer {keys[('acme', scope)]}"}
            calls[operation.label] = fuzz(operation, headers)
    if "RAAS_FUZZ_EXAMPLES" not in os.environ:
        assert sum(calls.values()) >= REQUESTS_MIN, calls
