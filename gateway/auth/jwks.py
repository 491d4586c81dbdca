"""Signing keys by ``kid``: the async JWKS cache of one issuer, and fixed keys for the dev issuer.

``JWKSCache`` invariants:
- fetched with the aiohttp client (PyJWT's ``PyJWKClient`` is synchronous and would block the
  loop);
- single-flight: concurrent misses and the scheduled refresh share one fetch;
- the last good key set is kept on any failure (network, status, body, parse);
- an unknown ``kid`` triggers a refresh at most once per ``cooldown_s``; a flood of random
  ``kid``s costs at most one fetch per window and is otherwise answered from memory;
- the configured URL only: redirects are not followed;
- bounded: body <= 64 KiB, at most ``max_keys`` keys, ``kid`` <= 128 characters; only RSA
  signing keys (``kty=RSA``, ``use=sig`` and ``alg=RS256`` when present, >= 2048 bits, no private
  parts) are kept.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

import aiohttp
import orjson
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import RSAAlgorithm

from gateway import tasks
from gateway.auth.jwt import MAX_KID_CHARS

MAX_JWKS_BYTES: Final = 64 * 1024
MIN_RSA_BITS: Final = 2048
_log = logging.getLogger("gateway.auth.jwks")


class KeySource(Protocol):
    """Where an issuer's verification keys come from."""

    @property
    def loaded(self) -> bool:
        """Whether keys were ever loaded."""

    def cached(self, kid: str) -> RSAPublicKey | None:
        """The key with ``kid`` if it is in memory."""

    async def key(self, kid: str) -> RSAPublicKey | None:
        """The key with ``kid``, refreshing once per cooldown if it is unknown."""


class StaticKeys:
    """Keys known up front (the development issuer's own key)."""

    def __init__(self, keys: Mapping[str, RSAPublicKey]) -> None:
        self._keys = dict(keys)

    @property
    def loaded(self) -> bool:
        """Always true."""
        return True

    def cached(self, kid: str) -> RSAPublicKey | None:
        """The key with ``kid``."""
        return self._keys.get(kid)

    async def key(self, kid: str) -> RSAPublicKey | None:
        """The key with ``kid``."""
        return self._keys.get(kid)


class JWKSCache:
    """The keys published at one JWKS URL."""

    def __init__(
        self,
        url: str,
        session: Callable[[], aiohttp.ClientSession],
        *,
        cooldown_s: float,
        timeout_s: float,
        max_keys: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._session = session
        self._cooldown_s = cooldown_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_keys = max_keys
        self._clock = clock
        self._keys: dict[str, RSAPublicKey] = {}
        self._loaded = False
        self._inflight: asyncio.Task[bool] | None = None
        self._next_miss_refresh = -float("inf")
        self.fetches = 0
        """Fetch attempts so far (for tests and metrics)."""

    @property
    def loaded(self) -> bool:
        """Whether a key set was ever loaded."""
        return self._loaded

    def cached(self, kid: str) -> RSAPublicKey | None:
        """The key with ``kid`` if it is in memory."""
        return self._keys.get(kid)

    async def key(self, kid: str) -> RSAPublicKey | None:
        """The key with ``kid``; an unknown ``kid`` refreshes at most once per cooldown."""
        key = self._keys.get(kid)
        if key is not None:
            return key
        if self._inflight is None:
            now = self._clock()
            if now < self._next_miss_refresh:
                return None
            self._next_miss_refresh = now + self._cooldown_s
        await self.refresh()
        return self._keys.get(kid)

    async def refresh(self) -> bool:
        """Fetch the key set (joining a fetch already running); whether it succeeded."""
        task = self._inflight
        if task is None:
            task = self._inflight = tasks.spawn(self._fetch(), name=f"jwks {self.url}")
            task.add_done_callback(self._fetched)
        # wait() leaves the shared fetch running if this caller is cancelled.
        await asyncio.wait([task])
        return not task.cancelled() and task.result()

    def _fetched(self, task: asyncio.Task[bool]) -> None:
        if self._inflight is task:
            self._inflight = None

    async def _fetch(self) -> bool:
        self.fetches += 1
        try:
            get = self._session().get(self.url, timeout=self._timeout, allow_redirects=False)
            async with get as resp:
                if resp.status != 200:
                    raise ValueError(f"status {resp.status}")
                body = await _read_capped(resp, MAX_JWKS_BYTES)
            keys = parse_jwks(body, self._max_keys)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            _log.warning(
                "JWKS fetch failed; keeping %d cached keys",
                len(self._keys),
                extra={"fields": {"url": self.url, "error": str(exc)}},
            )
            return False
        self._keys = keys
        self._loaded = True
        return True

    async def run(self, refresh_s: float) -> None:
        """Refresh every ``refresh_s`` after the start-up fetch; after a failure, retry with
        backoff (1-30 s) until a fetch succeeds again."""
        ok, backoff = self._loaded, 1.0
        while True:
            if ok:
                backoff = 1.0
            await asyncio.sleep(refresh_s if ok else backoff)
            if not ok:
                backoff = min(backoff * 2, 30.0)
            ok = await self.refresh()


def parse_jwks(body: bytes, max_keys: int) -> dict[str, RSAPublicKey]:
    """The usable RSA signing keys of a JWKS document, by ``kid``.

    Raises:
        ValueError: not a JWKS, or no usable key in it.
    """
    doc = orjson.loads(body)
    entries = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise ValueError("not a JWKS document")
    keys: dict[str, RSAPublicKey] = {}
    for entry in entries:
        if len(keys) >= max_keys:
            break
        parsed = _rsa_signing_key(entry)
        if parsed is not None:
            keys[parsed[0]] = parsed[1]
    if not keys:
        raise ValueError("no usable RS256 signing key")
    return keys


def _rsa_signing_key(jwk: Any) -> tuple[str, RSAPublicKey] | None:
    if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or "d" in jwk:
        return None
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_CHARS:
        return None
    if jwk.get("use", "sig") != "sig" or jwk.get("alg", "RS256") != "RS256":
        return None
    try:
        key = RSAAlgorithm.from_jwk(jwk)
    except Exception:  # noqa: BLE001 -- any malformed key is skipped, the rest still count
        return None
    if not isinstance(key, RSAPublicKey) or key.key_size < MIN_RSA_BITS:
        return None
    return kid, key


async def _read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    if resp.content_length is not None and resp.content_length > limit:
        raise ValueError("JWKS body too large")
    body = bytearray()
    async for piece in resp.content.iter_any():
        body += piece
        if len(body) > limit:
            raise ValueError("JWKS body too large")
    return bytes(body)
