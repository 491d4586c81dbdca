"""The PHI vault: placeholder -> original per conversation, encrypted, with a TTL.

Every original is sealed with AES-256-GCM (``cryptography``) under the configured key, with a
random 96-bit nonce per value and the tenant, conversation and placeholder bound as associated
data: a sealed value copied into another tenant's or conversation's entry, or under another
placeholder, fails authentication instead of decrypting. The stores below only ever hold sealed
bytes, so a Redis dump or a heap snapshot of the store holds no PHI in the clear.

``Vault`` is what the pipeline uses; ``MemoryVault`` (one process, the embedded default) and
``RedisVault`` (``redis_vault``; shared by every worker and replica) implement it over the same
``SealedVault`` base. Placeholders are issued once per conversation: ``save`` never overwrites a
placeholder already stored with another value (two requests of one conversation racing) and
raises ``RedactionFailed`` instead, so the request fails closed and the client retries.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Final, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.errors import RedactionFailed

NONCE_BYTES: Final = 12
KEY_BYTES: Final = 32


class Vault(Protocol):
    """Placeholder -> original of each conversation of each tenant."""

    async def start(self) -> None:
        """Open connections (never fails on an unreachable server; calls fail later)."""

    async def aclose(self) -> None:
        """Close connections."""

    async def load(self, tenant: str, conversation: str) -> dict[str, str]:
        """The conversation's placeholder -> original (empty if unknown or expired).

        Raises:
            RedactionFailed: the store failed or a value does not authenticate.
        """
        ...

    async def save(
        self, tenant: str, conversation: str, entries: Mapping[str, str], ttl_s: float
    ) -> None:
        """Add ``entries`` and keep the conversation ``ttl_s`` seconds from now.

        Raises:
            RedactionFailed: the store failed, or a placeholder is already taken by another value.
        """
        ...


class Sealer:
    """AES-256-GCM sealing bound to tenant, conversation and placeholder."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("the vault key must be 32 bytes")
        self._aead = AESGCM(key)

    @staticmethod
    def _aad(tenant: str, conversation: str, placeholder: str) -> bytes:
        # Lengths first, so no choice of names can make two different triples encode alike.
        parts = [p.encode() for p in (tenant, conversation, placeholder)]
        return b"".join(len(p).to_bytes(4, "big") + p for p in parts)

    def seal(self, tenant: str, conversation: str, placeholder: str, value: str) -> bytes:
        """``nonce || ciphertext+tag`` of ``value``."""
        nonce = os.urandom(NONCE_BYTES)
        aad = self._aad(tenant, conversation, placeholder)
        return nonce + self._aead.encrypt(nonce, value.encode(), aad)

    def open(self, tenant: str, conversation: str, placeholder: str, sealed: bytes) -> str:
        """The value sealed for exactly this tenant, conversation and placeholder.

        Raises:
            RedactionFailed: tampered, replayed from elsewhere, or sealed under another key.
        """
        aad = self._aad(tenant, conversation, placeholder)
        try:
            plain = self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
        except (InvalidTag, ValueError) as exc:
            raise RedactionFailed("a PHI vault entry failed authentication") from exc
        return plain.decode()


class SealedVault:
    """Encryption and the issue-once rule over a store of sealed bytes (``_get``/``_put_new``)."""

    def __init__(self, sealer: Sealer) -> None:
        self._sealer = sealer

    async def start(self) -> None:
        """Nothing to open by default."""

    async def aclose(self) -> None:
        """Nothing to close by default."""

    async def _get(self, tenant: str, conversation: str) -> dict[str, bytes]:
        raise NotImplementedError

    async def _put_new(
        self, tenant: str, conversation: str, sealed: dict[str, bytes], ttl_s: float
    ) -> list[str]:
        """Store the entries not present yet (none: only refresh the TTL of what exists); return
        the placeholders that were present."""
        raise NotImplementedError

    async def load(self, tenant: str, conversation: str) -> dict[str, str]:
        """The conversation's placeholder -> original (see ``Vault.load``)."""
        stored = await self._get(tenant, conversation)
        return {p: self._sealer.open(tenant, conversation, p, v) for p, v in stored.items()}

    async def save(
        self, tenant: str, conversation: str, entries: Mapping[str, str], ttl_s: float
    ) -> None:
        """Add ``entries`` (see ``Vault.save``); with none, only the TTL is refreshed."""
        sealed = {p: self._sealer.seal(tenant, conversation, p, v) for p, v in entries.items()}
        taken = await self._put_new(tenant, conversation, sealed, ttl_s)
        if taken:
            current = await self.load(tenant, conversation)
            if any(current.get(p) != entries[p] for p in taken):
                raise RedactionFailed(
                    "the conversation's placeholders changed concurrently; retry the request"
                )


class MemoryVault(SealedVault):
    """The embedded vault: one process, sealed values in a dict, expired lazily."""

    def __init__(
        self,
        sealer: Sealer,
        *,
        max_conversations: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(sealer)
        self._data: dict[tuple[str, str], tuple[float, dict[str, bytes]]] = {}
        self._max = max_conversations
        self._clock = clock

    async def _get(self, tenant: str, conversation: str) -> dict[str, bytes]:
        entry = self._data.get((tenant, conversation))
        if entry is None:
            return {}
        if entry[0] <= self._clock():
            del self._data[(tenant, conversation)]
            return {}
        return dict(entry[1])

    async def _put_new(
        self, tenant: str, conversation: str, sealed: dict[str, bytes], ttl_s: float
    ) -> list[str]:
        key = (tenant, conversation)
        now = self._clock()
        entry = self._data.pop(key, None)  # re-inserted last: the dict stays in expiry order
        values = entry[1] if entry is not None and entry[0] > now else {}
        if not values and not sealed:
            return []
        taken = [p for p in sealed if p in values]
        values.update({p: v for p, v in sealed.items() if p not in values})
        self._data[key] = (now + ttl_s, values)
        self._evict(now)
        return taken

    def _evict(self, now: float) -> None:
        """Drop expired conversations from the front, and the oldest beyond the size bound."""
        while self._data:
            key, (expires, _) = next(iter(self._data.items()))
            if expires > now and len(self._data) <= self._max:
                break
            del self._data[key]

    def __len__(self) -> int:
        return len(self._data)
