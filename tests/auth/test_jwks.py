"""``JWKSCache`` and the ``Authenticator`` against a fake IdP on loopback: warm start, rotation,
outages, unknown-``kid`` floods, single flight, deadlines and bounds (reliability.md 1.4)."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from gateway.auth.authenticator import Authenticator
from gateway.auth.jwks import JWKSCache, parse_jwks
from gateway.errors import AuthenticationFailed
from gateway.keys import AUTHENTICATOR
from gateway.telemetry import Metrics
from tests import stack
from tests.auth.conftest import auth_config, jwks_a
from tests.auth.tokens import access_claims, b64, public_jwk, rsa_key, sign
from tests.fakes.idp import FakeIdP, Mode


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def make_cache(
    idp: FakeIdP,
    session: aiohttp.ClientSession,
    *,
    clock: Clock | None = None,
    timeout_s: float = 5.0,
    max_keys: int = 16,
) -> JWKSCache:
    return JWKSCache(
        idp.jwks_url,
        lambda: session,
        cooldown_s=30.0,
        timeout_s=timeout_s,
        max_keys=max_keys,
        clock=clock or Clock(),
    )


def a2_jwk() -> dict[str, Any]:
    return public_jwk(rsa_key("a2"), "a2")


# --- start-up and readiness ----------------------------------------------------------------------


async def test_warm_at_start_with_one_fetch_per_issuer(
    authenticator: Authenticator, idp_a: FakeIdP, idp_b: FakeIdP
) -> None:
    assert authenticator.ready()
    assert (len(idp_a.requests), len(idp_b.requests)) == (1, 1)
    cache_a = authenticator.jwks[0]
    assert cache_a.loaded
    assert cache_a.fetches == 1
    assert cache_a.cached("a1") is not None
    # a token of the warm key needs no further fetch
    await authenticator.authenticate(sign(access_claims()))
    assert len(idp_a.requests) == 1


def test_only_rsa_signing_keys_of_2048_bits_or_more_are_kept() -> None:
    keys = parse_jwks(orjson.dumps({"keys": jwks_a()}), 16)
    assert set(keys) == {"a1", "dup"}  # not: oct, alg HS256, 1024-bit, private d, use enc


def test_kid_longer_than_128_characters_is_ignored_in_the_jwks() -> None:
    body = orjson.dumps({"keys": [public_jwk(rsa_key("a1"), "k" * 129), a2_jwk()]})
    assert set(parse_jwks(body, 16)) == {"a2"}


async def test_max_keys_bounds_the_key_set(idp_a: FakeIdP, session: aiohttp.ClientSession) -> None:
    idp_a.set_keys(*(public_jwk(rsa_key("a1"), f"k{i}") for i in range(6)))
    cache = make_cache(idp_a, session, max_keys=3)
    assert await cache.refresh()
    assert [kid for kid in (f"k{i}" for i in range(6)) if cache.cached(kid)] == ["k0", "k1", "k2"]


async def test_never_loaded_is_not_ready(idp_a: FakeIdP, idp_b: FakeIdP) -> None:
    idp_a.mode = "error"
    auth = Authenticator(auth_config(idp_a, idp_b), {})
    await auth.start()
    try:
        assert not auth.ready()
        with pytest.raises(AuthenticationFailed):
            await auth.authenticate(sign(access_claims()))
        idp_a.mode = "ok"
        assert await auth.jwks[0].refresh()
        assert auth.ready()
        assert (await auth.authenticate(sign(access_claims()))).tenant_id == "t1"
    finally:
        await auth.aclose()


async def test_readyz_is_503_until_keys_were_loaded(idp_a: FakeIdP, idp_b: FakeIdP) -> None:
    idp_a.mode = "error"
    base = stack.make_config("http://127.0.0.1:9")
    issuers = auth_config(idp_a, idp_b).issuers
    config = dataclasses.replace(base, auth=stack.test_auth(issuers=issuers))
    runner, port = await stack.start_gateway(config, Metrics())
    try:
        async with aiohttp.ClientSession() as client:
            async with client.get(f"http://127.0.0.1:{port}/readyz") as response:
                assert response.status == 503
            async with client.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 200
            idp_a.mode = "ok"
            assert await runner.app[AUTHENTICATOR].jwks[0].refresh()
            async with client.get(f"http://127.0.0.1:{port}/readyz") as response:
                assert response.status == 200
    finally:
        await runner.cleanup()


# --- rotation and outages ------------------------------------------------------------------------


async def test_rotation_new_kid_is_picked_up_with_one_fetch(
    authenticator: Authenticator, idp_a: FakeIdP
) -> None:
    idp_a.set_keys(public_jwk(rsa_key("a1"), "a1"), a2_jwk())
    principal = await authenticator.authenticate(sign(access_claims(), "a2", kid="a2"))
    assert principal.tenant_id == "t1"
    assert len(idp_a.requests) == 2
    await authenticator.authenticate(sign(access_claims(sub="other"), "a2", kid="a2"))
    await authenticator.authenticate(sign(access_claims(sub="third")))
    assert len(idp_a.requests) == 2


async def test_endpoint_down_keeps_cached_keys(idp_a: FakeIdP, idp_b: FakeIdP) -> None:
    auth = Authenticator(auth_config(idp_a, idp_b, token_cache_size=0), {})
    await auth.start()
    try:
        idp_a.mode = "error"
        assert not await auth.jwks[0].refresh()
        with pytest.raises(AuthenticationFailed):  # unknown kid: one failed fetch
            await auth.authenticate(sign(access_claims(), "a2", kid="a2"))
        for sub in ("u1", "u2"):
            assert (await auth.authenticate(sign(access_claims(sub=sub)))).subject == sub
        assert auth.ready()
        assert len(idp_a.requests) == 3  # start-up, explicit refresh, one miss
    finally:
        await auth.aclose()


@pytest.mark.parametrize("mode", ["error", "garbage", "oversize", "oversize_chunked"])
async def test_bad_response_keeps_last_good_keys(
    idp_a: FakeIdP, session: aiohttp.ClientSession, mode: Mode
) -> None:
    cache = make_cache(idp_a, session)
    assert await cache.refresh()
    idp_a.mode = mode
    assert not await cache.refresh()
    assert cache.loaded
    assert cache.cached("a1") is not None
    assert cache.fetches == 2


@pytest.mark.parametrize(
    "document",
    [{"keys": []}, {"keys": "a1"}, {"nokeys": 1}, [1, 2], {"keys": [{"kty": "oct", "kid": "x"}]}],
    ids=["empty", "keys-not-list", "no-keys", "array", "only-unusable"],
)
async def test_document_without_usable_keys_keeps_last_good_keys(
    idp_a: FakeIdP, session: aiohttp.ClientSession, document: Any
) -> None:
    cache = make_cache(idp_a, session)
    assert await cache.refresh()
    idp_a.jwks = document
    assert not await cache.refresh()
    assert cache.cached("a1") is not None


async def test_oversize_body_is_never_loaded(
    idp_a: FakeIdP, session: aiohttp.ClientSession
) -> None:
    idp_a.mode = "oversize_chunked"
    cache = make_cache(idp_a, session)
    assert not await cache.refresh()
    assert not cache.loaded


async def test_hung_endpoint_is_bounded_by_the_timeout(
    idp_a: FakeIdP, session: aiohttp.ClientSession
) -> None:
    cache = make_cache(idp_a, session, timeout_s=0.2)
    assert await cache.refresh()
    idp_a.mode = "hang"
    assert not await asyncio.wait_for(cache.refresh(), 5.0)
    assert cache.cached("a1") is not None


async def test_hung_endpoint_does_not_hang_start_up(idp_a: FakeIdP, idp_b: FakeIdP) -> None:
    idp_a.mode = "hang"
    auth = Authenticator(auth_config(idp_a, idp_b, jwks_timeout_s=0.2), {})
    try:
        await asyncio.wait_for(auth.start(), 5.0)
        assert not auth.ready()
    finally:
        await auth.aclose()


# --- floods and single flight --------------------------------------------------------------------


async def test_unknown_kid_flood_costs_one_fetch_per_cooldown(
    idp_a: FakeIdP, session: aiohttp.ClientSession
) -> None:
    clock = Clock()
    cache = make_cache(idp_a, session, clock=clock)
    assert await cache.refresh()
    for _ in range(200):
        assert await cache.key(secrets.token_hex(8)) is None
    assert cache.fetches == 2  # start-up + the first miss
    clock.now += 29.0
    assert await cache.key("still-in-window") is None
    assert cache.fetches == 2
    clock.now += 1.5
    idp_a.set_keys(a2_jwk())
    assert await cache.key("a2") is not None  # next window: one fetch, and it finds the new key
    assert cache.fetches == 3
    assert len(idp_a.requests) == 3


async def test_unknown_kid_flood_through_the_authenticator(
    authenticator: Authenticator, idp_a: FakeIdP
) -> None:
    claims = access_claims()
    for _ in range(200):
        with pytest.raises(AuthenticationFailed, match="unknown signing key"):
            await authenticator.authenticate(sign(claims, kid=b64(secrets.token_bytes(12))))
    assert len(idp_a.requests) == 2
    assert (await authenticator.authenticate(sign(claims))).tenant_id == "t1"


async def test_concurrent_misses_share_one_fetch(
    idp_a: FakeIdP, session: aiohttp.ClientSession
) -> None:
    idp_a.mode = "slow"
    cache = make_cache(idp_a, session)
    kids = ["a1"] * 30 + [secrets.token_hex(4) for _ in range(30)]
    found = await asyncio.gather(*(cache.key(kid) for kid in kids))
    assert len(idp_a.requests) == 1
    assert all(key is not None for key in found[:30])
    assert all(key is None for key in found[30:])


async def test_concurrent_refreshes_share_one_fetch(
    idp_a: FakeIdP, session: aiohttp.ClientSession
) -> None:
    idp_a.mode = "slow"
    cache = make_cache(idp_a, session)
    assert all(await asyncio.gather(*(cache.refresh() for _ in range(20))))
    assert len(idp_a.requests) == 1


async def test_cancelled_caller_does_not_cancel_the_shared_fetch(
    idp_a: FakeIdP, session: aiohttp.ClientSession
) -> None:
    idp_a.mode = "slow"
    idp_a.delay_s = 0.2
    cache = make_cache(idp_a, session)
    first = asyncio.ensure_future(cache.key("a1"))
    second = asyncio.ensure_future(cache.key("a1"))
    await asyncio.sleep(0.05)
    first.cancel()
    assert await second is not None
    assert first.cancelled()
    assert len(idp_a.requests) == 1


async def test_redirects_are_not_followed(idp_a: FakeIdP, session: aiohttp.ClientSession) -> None:
    async def redirect(request: aiohttp.web.Request) -> aiohttp.web.Response:
        raise aiohttp.web.HTTPFound(idp_a.jwks_url)

    runner, port = await stack.serve_get("/jwks.json", redirect)
    try:
        cache = make_cache(idp_a, session)
        cache.url = f"http://127.0.0.1:{port}/jwks.json"
        before = len(idp_a.requests)
        assert not await cache.refresh()
        assert not cache.loaded
        assert len(idp_a.requests) == before  # the redirect target was never fetched
    finally:
        await runner.cleanup()
