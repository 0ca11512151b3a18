"""API keys: made once, shown once, stored as a SHA-256, checked in constant time.

A key reads `raas_<key id>_<secret>`: the key id (public, 12 hex digits) finds the stored row,
the secret (32 random bytes, URL-safe base64) is what proves possession. Only the SHA-256 of
the whole key is stored; a plain hash suffices because the secret has 256 bits of entropy
(nothing to guess, so no slow password hash is needed).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Final

from raas.service.store import ApiKey, Scope, ServiceStore, utc_now

__all__ = ["KEY_PATTERN", "create_api_key", "key_id_of", "secret_sha256", "verify_api_key"]

KEY_PREFIX: Final = "raas_"
KEY_ID_HEX_DIGITS: Final = 12
SECRET_BYTES: Final = 32
KEY_PATTERN: Final = re.compile(r"raas_([0-9a-f]{12})_[A-Za-z0-9_-]{43}")


def secret_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def key_id_of(token: str) -> str | None:
    """The key id a well-formed key names, or None for anything else."""
    match = KEY_PATTERN.fullmatch(token)
    return match.group(1) if match else None


def create_api_key(
    store: ServiceStore, tenant: str, scope: Scope, label: str, actor: str
) -> tuple[str, ApiKey]:
    """Make a key for the tenant (created if new), store its hash; the key text and the row.

    The key text is returned here once and never again.
    """
    store.ensure_tenant(tenant, actor)
    key_id = secrets.token_hex(KEY_ID_HEX_DIGITS // 2)
    token = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(SECRET_BYTES)}"
    assert KEY_PATTERN.fullmatch(token), "a made key must read as a key"
    key = ApiKey(
        key_id=key_id,
        tenant=tenant,
        scope=scope,
        label=label,
        secret_sha256=secret_sha256(token),
        created_at=utc_now(),
    )
    store.add_api_key(key, actor)
    return token, key


def verify_api_key(store: ServiceStore, token: str) -> ApiKey | None:
    """The live key this text is, or None (malformed, unknown, wrong secret or revoked)."""
    key_id = key_id_of(token)
    if key_id is None:
        return None
    key = store.api_key(key_id)
    if key is None or key.revoked_at is not None:
        return None
    if not hmac.compare_digest(key.secret_sha256, secret_sha256(token)):
        return None
    return key
