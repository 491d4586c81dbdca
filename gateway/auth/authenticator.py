"""Turns a presented credential into a ``Principal``: service key, cached token, or full JWT check.

Per request, in order:
1. auth off -> the anonymous principal of ``auth.anonymous_tenant``;
2. ``gwk_...`` -> the service-key table (constant-time);
3. a token verified earlier in this worker and not yet expired -> its principal (see below);
4. otherwise ``peek`` (size cap, structure) -> the issuer configured for that exact ``iss`` -> the
   key for ``kid`` from that issuer's own key source -> ``verify`` -> ``principal_from_claims``.

Verified tokens are remembered per worker (``auth.token_cache_size`` entries, each until
``min(exp, now + auth.token_cache_ttl_s)``): PyJWT's checks cost about 50 us of CPU per request,
a dictionary hit about 0.1 us, and a chat UI sends the same token for an hour. Only tokens that
passed every check are stored, so the cache cannot be filled by an attacker; the cost is that a
token keeps working for up to the TTL after its signing key leaves the JWKS.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Final

import aiohttp

from gateway import tasks
from gateway.auth.apikeys import ApiKeyTable, looks_like_key
from gateway.auth.dev import key_id, load_or_create_key
from gateway.auth.jwks import JWKSCache, KeySource, StaticKeys
from gateway.auth.jwt import IssuerPolicy, invalid, peek, verify
from gateway.auth.principal import principal_from_claims
from gateway.config import ApiKeyConfig, AuthConfig
from gateway.context import Principal
from gateway.errors import AuthenticationFailed

ANONYMOUS_SUBJECT: Final = "anonymous"
DEV_ISSUER_NAME: Final = "dev"
_log = logging.getLogger("gateway.auth")


class Authenticator:
    """Credential checks for one worker: issuers and their keys, service keys, verified tokens."""

    def __init__(
        self,
        config: AuthConfig,
        api_keys: Mapping[str, ApiKeyConfig],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._clock = clock
        self._api_keys = ApiKeyTable(api_keys)
        self._session: aiohttp.ClientSession | None = None
        self._issuers: dict[str, tuple[IssuerPolicy, KeySource]] = {}
        self._jwks: list[JWKSCache] = []
        self._refreshers: list[asyncio.Task[None]] = []
        self._verified: dict[str, tuple[Principal, float]] = {}
        self._anonymous = Principal(
            subject=ANONYMOUS_SUBJECT, tenant_id=config.anonymous_tenant, via="anonymous"
        )
        for name, issuer in config.issuers.items():
            cache = JWKSCache(
                issuer.jwks_endpoint,
                self._client,
                cooldown_s=config.jwks_cooldown_s,
                timeout_s=config.jwks_timeout_s,
                max_keys=config.jwks_max_keys,
            )
            self._jwks.append(cache)
            policy = IssuerPolicy(
                name=name,
                issuer=issuer.issuer,
                token_use=frozenset(issuer.token_use),
                client_ids=frozenset(issuer.client_ids),
            )
            self._issuers[issuer.issuer] = (policy, cache)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("Authenticator.start() was not awaited")
        return self._session

    @property
    def jwks(self) -> tuple[JWKSCache, ...]:
        """The JWKS caches, one per configured issuer."""
        return tuple(self._jwks)

    async def start(self) -> None:
        """Load the dev issuer's key, warm every JWKS (failures leave the worker not ready and
        retried in the background), start the scheduled refreshes."""
        dev = self._config.dev_issuer
        if self._config.enabled and dev.enabled:
            key = (await asyncio.to_thread(load_or_create_key, dev.key_file)).public_key()
            policy = IssuerPolicy(
                name=DEV_ISSUER_NAME,
                issuer=dev.issuer,
                token_use=frozenset(dev.token_use),
                client_ids=frozenset({dev.client_id}),
            )
            self._issuers[dev.issuer] = (policy, StaticKeys({key_id(key): key}))
            _log.warning("the development issuer is enabled; never do this in production")
        if not self._jwks or not self._config.enabled:
            return
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=8))
        await asyncio.gather(*(cache.refresh() for cache in self._jwks))
        self._refreshers = [
            tasks.spawn(cache.run(self._config.jwks_refresh_s), name=f"jwks refresh {cache.url}")
            for cache in self._jwks
        ]

    async def aclose(self) -> None:
        """Stop the refreshes and close the HTTP client."""
        for task in self._refreshers:
            await tasks.cancel_and_wait(task)
        if self._session is not None:
            await self._session.close()

    def ready(self) -> bool:
        """Whether every issuer's keys were loaded at least once."""
        return all(cache.loaded for cache in self._jwks)

    async def authenticate(self, credential: str | None) -> Principal:
        """The principal ``credential`` proves.

        Raises:
            AuthenticationFailed: missing, unknown, malformed, expired or unverifiable.
        """
        if not self._config.enabled:
            return self._anonymous
        if credential is None:
            raise AuthenticationFailed(
                "Missing credentials: send 'Authorization: Bearer <token>' or 'X-Api-Key'."
            )
        if looks_like_key(credential):
            principal = self._api_keys.lookup(credential)
            if principal is None:
                raise AuthenticationFailed("Invalid API key.")
            return principal
        hit = self._verified.get(credential)
        if hit is not None and hit[1] > self._clock():
            return hit[0]
        return await self._verify(credential)

    async def _verify(self, token: str) -> Principal:
        routing = peek(token)
        entry = self._issuers.get(routing.iss)
        if entry is None:
            raise invalid("unknown issuer")
        policy, source = entry
        key = source.cached(routing.kid) or await source.key(routing.kid)
        if key is None:
            raise invalid("unknown signing key")
        claims = verify(token, key, policy, self._config.leeway_s)
        principal = principal_from_claims(claims, self._config.claims, policy.name)
        self._remember(token, principal, float(claims["exp"]))
        return principal

    def _remember(self, token: str, principal: Principal, exp: float) -> None:
        size = self._config.token_cache_size
        if size == 0 or self._config.token_cache_ttl_s == 0:
            return
        if len(self._verified) >= size:  # evict the oldest entry (dicts keep insertion order)
            del self._verified[next(iter(self._verified))]
        until = min(exp, self._clock() + self._config.token_cache_ttl_s)
        self._verified[token] = (principal, until)
