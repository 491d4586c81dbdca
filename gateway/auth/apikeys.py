"""Service API keys: ``gwk_`` + 256 random bits, stored in config only as their SHA-256.

A fast hash is enough because the keys are random (nothing to brute-force); every lookup hashes
the presented key and compares it with every configured hash using ``hmac.compare_digest``, without
stopping at a match, so timing reveals neither which entry matched nor how much of a hash did.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Final

from gateway.config import ApiKeyConfig
from gateway.context import Principal

KEY_PREFIX: Final = "gwk_"


def new_key() -> tuple[str, str]:
    """A fresh key and the hex SHA-256 to put into ``[api_keys.<name>].sha256``."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, hash_key(key)


def hash_key(key: str) -> str:
    """The hex SHA-256 of ``key``."""
    return hashlib.sha256(key.encode()).hexdigest()


def looks_like_key(credential: str) -> bool:
    """Whether ``credential`` is shaped like one of our keys (rather than a JWT)."""
    return credential.startswith(KEY_PREFIX)


class ApiKeyTable:
    """The configured keys that are not revoked."""

    def __init__(self, keys: Mapping[str, ApiKeyConfig]) -> None:
        self._entries = [
            (bytes.fromhex(key.sha256.reveal()), _principal(name, key))
            for name, key in keys.items()
            if not key.revoked
        ]

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, credential: str) -> Principal | None:
        """The principal of ``credential``, or None if no active key matches."""
        # Undecodable header bytes reach us as surrogate escapes; they hash (and never match).
        digest = hashlib.sha256(credential.encode("utf-8", "surrogateescape")).digest()
        found: Principal | None = None
        for stored, principal in self._entries:
            if hmac.compare_digest(stored, digest):
                found = principal
        return found


def _principal(name: str, key: ApiKeyConfig) -> Principal:
    return Principal(
        subject=f"key:{name}",
        tenant_id=key.tenant,
        app_id=key.app,
        via=f"api_key:{name}",
        model_scope=key.models,
    )
