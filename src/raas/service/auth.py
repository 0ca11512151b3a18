"""Authentication for the HTTP API: `Authorization: Bearer <API key>` -> the key's `TenantData`.

Routes depend on `access(Action.X)`: it authenticates the key, applies the key's rate limit,
checks the scope and hands the route a `TenantData` bound to the key's tenant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from raas.ledger.keys import SignerKey
from raas.ledger.store import LedgerStore
from raas.service.apikeys import verify_api_key
from raas.service.limits import TokenBuckets
from raas.service.problems import ServiceError
from raas.service.store import ServiceStore
from raas.service.tenancy import Action, TenantData
from raas.service.worker import SettlementWorker

__all__ = ["Services", "access", "services_of"]

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="An API key made by `raas apikey create`: `Authorization: Bearer raas_...`.",
)


@dataclass(frozen=True)
class Services:
    """What the app holds for its whole life: the stores, the signing keys, the rate limits and
    the settlement worker."""

    ledger: LedgerStore
    store: ServiceStore
    signers: tuple[SignerKey, ...]
    buckets: TokenBuckets
    worker: SettlementWorker


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _unauthenticated(detail: str) -> ServiceError:
    return ServiceError(
        401,
        "unauthenticated",
        "Unauthenticated",
        detail,
        headers={"WWW-Authenticate": 'Bearer realm="raas"'},
    )


def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> TenantData:
    """The key's tenant data; 401 without a live key, 429 past the key's rate."""
    if credentials is None:
        raise _unauthenticated("send an API key: `Authorization: Bearer raas_...`")
    services = services_of(request)
    key = verify_api_key(services.store, credentials.credentials)
    if key is None:
        raise _unauthenticated("the API key is unknown, malformed or revoked")
    services.buckets.check(key.key_id)
    return TenantData(
        services.ledger,
        services.store,
        tenant=key.tenant,
        scope=key.scope,
        key_id=key.key_id,
        signers=services.signers,
    )


def access(action: Action) -> Callable[..., TenantData]:
    """A dependency: the authenticated key's tenant data, if its scope may do `action`."""

    def dependency(data: Annotated[TenantData, Depends(authenticate)]) -> TenantData:
        data.require(action)
        return data

    return dependency
