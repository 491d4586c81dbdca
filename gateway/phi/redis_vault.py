"""The shared PHI vault on Redis: one hash per conversation, sealed values, refreshed TTL.

Key ``<prefix><len(tenant)>:<tenant>:<conversation>`` (the length keeps ``a:b`` + ``c`` apart from
``a`` + ``b:c``); fields are placeholders, values ``nonce || AES-GCM ciphertext`` (``vault``).
``save`` is one transaction of ``HSETNX`` per placeholder plus ``PEXPIRE``, so a placeholder is
issued once even when two workers serve the same conversation at the same moment. Every call is
bounded by ``phi.timeout_ms``; any Redis failure fails the request closed.
"""

from __future__ import annotations

import asyncio
from typing import cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.errors import RedactionFailed
from gateway.phi.vault import SealedVault, Sealer


class RedisVault(SealedVault):
    """Sealed placeholders in Redis hashes, shared by every worker and replica."""

    def __init__(
        self,
        url: str,
        sealer: Sealer,
        *,
        key_prefix: str,
        timeout_s: float,
        password: str | None = None,
    ) -> None:
        super().__init__(sealer)
        self._redis = aioredis.Redis.from_url(
            url,
            password=password,  # AUTH at connection (the config refuses a URL with one too)
            retry=Retry(NoBackoff(), 1),
            socket_connect_timeout=1.0,
            health_check_interval=0,
            driver_info=None,  # no package-metadata read (a blocking call) per connection
        )
        self._prefix = key_prefix
        self._timeout_s = timeout_s

    def _key(self, tenant: str, conversation: str) -> str:
        return f"{self._prefix}{len(tenant)}:{tenant}:{conversation}"

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()

    async def _get(self, tenant: str, conversation: str) -> dict[str, bytes]:
        try:
            async with asyncio.timeout(self._timeout_s):
                raw = await self._redis.hgetall(self._key(tenant, conversation))
        except (RedisError, OSError, TimeoutError) as exc:
            raise RedactionFailed("the PHI vault is unavailable") from exc
        return {k.decode(): bytes(v) for k, v in cast("dict[bytes, bytes]", raw).items()}

    async def _put_new(
        self, tenant: str, conversation: str, sealed: dict[str, bytes], ttl_s: float
    ) -> list[str]:
        key = self._key(tenant, conversation)
        names = list(sealed)  # none: only PEXPIRE, refreshing an existing conversation
        try:
            async with asyncio.timeout(self._timeout_s):
                async with self._redis.pipeline(transaction=True) as pipe:
                    for name in names:
                        _ = pipe.hsetnx(key, name, sealed[name])  # queued, not awaited
                    _ = pipe.pexpire(key, int(ttl_s * 1000))
                    results = await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            raise RedactionFailed("the PHI vault is unavailable") from exc
        return [name for name, added in zip(names, results, strict=False) if not added]
