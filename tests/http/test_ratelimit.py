"""Limits through the gateway over HTTP: headers, 429s, max_tokens policy, token settlement."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import aiohttp
import orjson
import pytest

from gateway.config import LimitRuleConfig, Secret
from gateway.demo import Behaviour
from tests import identity
from tests.http.conftest import read_error
from tests.identity import bearer, default_token
from tests.stack import BackgroundLoop, Stack

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]
GO_DURATION = re.compile(r"^(\d+h)?(\d+m)?(\d+(\.\d+)?s|\d+ms)$")
TENANT_KEY = "t:tests"


def _stack(make_stack: Callable[..., Stack], redis_url: str | None = None, **rule: Any) -> Stack:
    limits: dict[str, Any] = {}
    if redis_url:  # a key prefix of its own: the suite's tests share one Redis
        limits = {"store": "redis", "redis_url": Secret(redis_url), "key_prefix": f"t{uuid4()}:",
                  # exact accounting is asserted here, not the outage path: a busy 2-core CI
                  # machine must not push a call past the 50 ms default into the local fallback
                  "timeout_ms": 2000.0}  # fmt: skip
    return make_stack(tenant={"limits": LimitRuleConfig(**rule)}, limits=limits)


def _seconds(duration: str) -> float:
    """A Go duration (``1h2m3.5s``, ``250ms``) in seconds."""
    match = GO_DURATION.match(duration)
    assert match, duration
    hours, minutes, last = match.group(1), match.group(2), match.group(3)
    value = float(last[:-2]) / 1000 if last.endswith("ms") else float(last[:-1])
    return value + int((hours or "0h")[:-1]) * 3600 + int((minutes or "0m")[:-1]) * 60


@pytest.fixture(autouse=True)
def _signing_key_loaded() -> None:
    """Load the test issuer's key outside the event loop (it reads a file)."""
    default_token()


async def _usage(background: BackgroundLoop, stack: Stack) -> tuple[int, int]:
    """Today's (used, reserved) of the test tenant, read on the gateway's loop."""
    future = asyncio.run_coroutine_threadsafe(
        stack.limiter.store.usage(TENANT_KEY), background.loop
    )
    return await asyncio.wrap_future(future)


async def _settled(background: BackgroundLoop, stack: Stack) -> tuple[int, int]:
    """Usage once no reservation is open (settlement runs in a task after the response)."""
    usage = await _usage(background, stack)
    for _ in range(200):
        if usage[1] == 0:
            break
        await asyncio.sleep(0.01)
        usage = await _usage(background, stack)
    return usage


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_headers_on_every_answer_and_429_after_the_burst(
    make_stack: Callable[..., Stack], http: aiohttp.ClientSession, redis_url: str, store: str
) -> None:
    stack = _stack(
        make_stack, redis_url if store == "redis" else None,
        requests_per_minute=60, burst=2, tokens_per_day=100_000,
    )  # fmt: skip
    body = {"model": "test-chat", "messages": HI}
    remaining = []
    for stream in (False, True):
        async with http.post(stack.url + CHAT, json={**body, "stream": stream}) as response:
            assert response.status == 200
            await response.read()
            headers = response.headers
            assert headers["x-ratelimit-limit-requests"] == "60"
            remaining.append(int(headers["x-ratelimit-remaining-requests"]))
            assert GO_DURATION.match(headers["x-ratelimit-reset-requests"])
            assert headers["x-ratelimit-limit-tokens"] == "100000"
            assert int(headers["x-ratelimit-remaining-tokens"]) < 100_000
            assert 0 < _seconds(headers["x-ratelimit-reset-tokens"]) <= 86_400  # UTC midnight
            assert 0 < _seconds(headers["x-ratelimit-reset-requests"]) <= 2.0  # burst 2 x 1 s
    assert remaining == [1, 0]
    async with http.post(stack.url + CHAT, json=body) as response:
        error = await read_error(response, 429)
        headers = response.headers
    assert error["type"] == "rate_limit_exceeded"
    assert error["code"] == "rate_limit_exceeded"
    assert headers["retry-after"] == "1"
    assert 0 < int(headers["retry-after-ms"]) <= 1000
    assert headers["x-should-retry"] == "true"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert GO_DURATION.match(headers["x-ratelimit-reset-requests"])
    assert len(stack.fake.requests) == 2  # the refused request never reached the upstream


async def test_callers_without_limits_get_no_headers(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    async with http.post(stack.url + CHAT, json={"model": "test-chat", "messages": HI}) as r:
        assert r.status == 200
        assert not [h for h in r.headers if h.lower().startswith("x-ratelimit")]
    assert "max_tokens" not in stack.fake.requests[-1][1]


async def test_max_tokens_clamped_injected_or_rejected(
    make_stack: Callable[..., Stack], http: aiohttp.ClientSession
) -> None:
    stack = _stack(make_stack, max_tokens_per_request=100)
    for asked, sent in ((5000, 100), (None, 100), (40, 40)):
        body: dict[str, Any] = {"model": "test-chat", "messages": HI}
        if asked is not None:
            body["max_tokens"] = asked
        async with http.post(stack.url + CHAT, json=body) as response:
            assert response.status == 200
        assert stack.fake.requests[-1][1]["max_tokens"] == sent
    strict = _stack(make_stack, max_tokens_per_request=100, max_tokens_mode="reject")
    body = {"model": "test-chat", "messages": HI, "max_completion_tokens": 101}
    async with http.post(strict.url + CHAT, json=body) as response:
        error = await read_error(response, 400)
    assert error["param"] == "max_completion_tokens"
    assert not strict.fake.requests


async def test_spent_daily_quota_is_insufficient_quota(
    make_stack: Callable[..., Stack], http: aiohttp.ClientSession, background: BackgroundLoop
) -> None:
    stack = _stack(make_stack, tokens_per_day=120, max_tokens_per_request=30)
    body = {"model": "test-chat", "messages": HI}
    statuses = []
    error: dict[str, Any] = {}
    headers: Any = {}
    for _ in range(10):
        async with http.post(stack.url + CHAT, json=body) as response:
            statuses.append(response.status)
            if response.status == 429:
                error = await read_error(response, 429)
                headers = response.headers
                break
            payload = orjson.loads(await response.read())
            assert payload["usage"]["total_tokens"] > 0
        await _settled(background, stack)
    assert statuses[-1] == 429
    assert statuses.count(200) >= 1
    assert error["type"] == "insufficient_quota"
    assert headers["x-should-retry"] == "false"
    assert int(headers["retry-after"]) > 0
    assert headers["x-ratelimit-remaining-tokens"] == "0"
    used, reserved = await _settled(background, stack)
    assert reserved == 0
    assert 120 - 31 < used <= 120  # one more request (estimate 1 + 30) would not fit


async def _stream_usage(http: aiohttp.ClientSession, url: str) -> int:
    body = {"model": "test-chat", "messages": HI, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    async with http.post(url + CHAT, json=body) as response:
        assert response.status == 200
        raw = await response.read()
    events = [e[6:] for e in raw.split(b"\n\n") if e.startswith(b"data: {")]
    usage = [orjson.loads(e)["usage"] for e in events if b'"usage":{' in e]
    assert len(usage) == 1
    return int(usage[0]["total_tokens"])


async def test_day_usage_is_the_exact_sum_of_50_concurrent_streams(
    make_stack: Callable[..., Stack],
    http: aiohttp.ClientSession,
    background: BackgroundLoop,
    redis_url: str,
) -> None:
    stack = _stack(make_stack, redis_url, tokens_per_day=1_000_000, max_tokens_per_request=200)
    stack.fake.behaviours["fake-chat"] = Behaviour(chunk_delay_s=0.005)
    totals = await asyncio.gather(*(_stream_usage(http, stack.url) for _ in range(50)))
    assert all(t > 0 for t in totals)
    used, reserved = await _settled(background, stack)
    assert reserved == 0
    assert used == sum(totals)
    assert all(body["max_tokens"] == 200 for _, body in stack.fake.requests)


async def test_failed_and_cancelled_streams_release_their_surplus(
    make_stack: Callable[..., Stack],
    http: aiohttp.ClientSession,
    background: BackgroundLoop,
    redis_url: str,
) -> None:
    stack = _stack(make_stack, redis_url, tokens_per_day=1_000_000, max_tokens_per_request=200)
    body = {"model": "test-chat", "messages": HI, "stream": True}
    # Failed upstream streams: "word", " word", " word" (14 bytes -> 4 tokens) + prompt "hi" (1).
    stack.fake.behaviours["fake-chat"] = Behaviour(error_after=3, text="word " * 50)
    for _ in range(5):
        async with http.post(stack.url + CHAT, json=body) as response:
            assert b'"error"' in await response.read()
    assert await _settled(background, stack) == (5 * 5, 0)
    # Client disconnects after three events of a long, slow stream.
    stack.fake.behaviours["fake-chat"] = Behaviour(chunk_delay_s=0.02, text="word " * 200)
    for _ in range(5):
        async with http.post(stack.url + CHAT, json=body) as response:
            for _ in range(3):
                await response.content.readuntil(b"\n\n")
            response.close()
    used, reserved = await _settled(background, stack)
    assert reserved == 0
    assert 25 + 5 * 2 <= used < 25 + 5 * 201 // 4  # charged what was streamed, far below 201


async def test_concurrent_stream_limit(
    make_stack: Callable[..., Stack], http: aiohttp.ClientSession, background: BackgroundLoop
) -> None:
    stack = _stack(make_stack, max_concurrent_streams=2)
    stack.fake.behaviours["fake-chat"] = Behaviour(chunk_delay_s=0.02, text="word " * 200)
    body = {"model": "test-chat", "messages": HI, "stream": True}
    first = await http.post(stack.url + CHAT, json=body)
    second = await http.post(stack.url + CHAT, json=body)
    assert (first.status, second.status) == (200, 200)
    async with http.post(stack.url + CHAT, json=body) as third:
        error = await read_error(third, 429)
    assert "concurrent streams" in error["message"]
    async with http.post(stack.url + CHAT, json={**body, "stream": False}) as plain:
        assert plain.status == 200  # not a stream
    first.close()
    status = 0
    for _ in range(100):  # the slot is freed by the settle task
        async with http.post(stack.url + CHAT, json={**body, "max_tokens": 1}) as again:
            status = again.status
        if status == 200:
            break
        await asyncio.sleep(0.01)
    assert status == 200
    second.close()


async def test_embeddings_are_admitted_and_settled_with_their_usage(
    make_stack: Callable[..., Stack], http: aiohttp.ClientSession, background: BackgroundLoop
) -> None:
    stack = _stack(make_stack, requests_per_minute=60, burst=1, tokens_per_day=1000)
    body = {"model": "test-embed", "input": ["alpha", "beta"]}
    async with http.post(stack.url + "/v1/embeddings", json=body) as response:
        assert response.status == 200
        assert response.headers["x-ratelimit-remaining-requests"] == "0"
        usage = orjson.loads(await response.read())["usage"]
    assert await _settled(background, stack) == (usage["total_tokens"], 0)
    async with http.post(stack.url + "/v1/embeddings", json=body) as response:
        error = await read_error(response, 429)
    assert error["type"] == "rate_limit_exceeded"


async def test_user_limits_are_per_user_and_headers_or_body_cannot_move_the_charge(
    make_stack: Callable[..., Stack],
) -> None:
    rule = LimitRuleConfig(requests_per_minute=60, burst=1)
    stack = make_stack(tenant={"user_limits": rule})
    alice = bearer(identity.token(subject="alice-sub", app_user="alice"))
    bob = bearer(identity.token(subject="bob-sub", app_user="bob"))
    url = stack.url + CHAT
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json={"model": "test-chat", "messages": HI}, headers=alice) as r:
            assert r.status == 200
        # Alice posing as Bob (body `user`) or as another tenant (header) is still Alice.
        body = {"model": "test-chat", "messages": HI, "user": "bob"}
        spoof = {**alice, "X-Tenant-Id": "other"}
        async with http.post(url, json=body, headers=spoof) as r:
            assert r.status == 429
        async with http.post(url, json={"model": "test-chat", "messages": HI}, headers=bob) as r:
            assert r.status == 200  # Bob's own bucket is untouched
            assert r.headers["x-ratelimit-remaining-requests"] == "0"
