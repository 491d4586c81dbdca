"""Redis stopped mid-run: no limiter 5xx, a local share decides, shared limits return with Redis."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator

import aiohttp
import pytest

from gateway.config import LimitRuleConfig, Secret
from tests.identity import default_token
from tests.redis_server import RedisServer
from tests.stack import Stack

CHAT = "/v1/chat/completions"
BODY = {"model": "test-chat", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, to stop and restart (by PID)."""
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _signing_key_loaded() -> None:
    default_token()


async def _post(http: aiohttp.ClientSession, url: str) -> tuple[int, float, dict[str, str]]:
    started = time.monotonic()
    async with http.post(url + CHAT, json=BODY) as response:
        await response.read()
        return response.status, time.monotonic() - started, dict(response.headers)


async def test_redis_outage_falls_back_to_the_local_share_and_recovers(
    make_stack: Callable[..., Stack],
    http: aiohttp.ClientSession,
    own_redis: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.limits")
    stack = make_stack(
        tenant={"limits": LimitRuleConfig(requests_per_minute=600, burst=20)},
        limits={"store": "redis", "redis_url": Secret(own_redis.url), "replicas": 2,
                "timeout_ms": 50.0, "retry_interval_s": 0.2},
    )  # fmt: skip
    degraded = stack.metrics.ratelimit_degraded.values
    fallbacks = stack.metrics.ratelimit_fallbacks.values
    first = [await _post(http, stack.url) for _ in range(5)]
    assert [status for status, _, _ in first] == [200] * 5
    headers = first[-1][2]
    assert headers["x-ratelimit-remaining-requests"] == "15"  # shared: 20 - 5
    assert degraded.get((), 0.0) == 0.0

    own_redis.stop()
    outage = [await _post(http, stack.url) for _ in range(40)]
    statuses = [status for status, _, _ in outage]
    assert set(statuses) <= {200, 429}  # never a 5xx from the limiter
    admitted = statuses.count(200)
    # Local share: burst 20 / 2 replicas = 10 at once, then 300/min (5/s) for a short run.
    assert 5 <= admitted <= 10 + 5 * 2
    assert 429 in statuses  # limited, not let through
    assert max(elapsed for _, elapsed, _ in outage) < 0.5  # bounded by timeout_ms, not hanging
    assert degraded[()] == 1.0
    assert fallbacks[()] >= 39
    unreachable = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(unreachable) == 1  # logged once per transition, not per request

    own_redis.start()  # same port, empty: counters start afresh
    recovered = False
    for _ in range(100):  # the breaker probes Redis every 0.2 s
        status, _, headers = await _post(http, stack.url)
        assert status in (200, 429)
        if degraded[()] == 0.0:
            recovered = True
            break
        await asyncio.sleep(0.05)
    assert recovered
    status, _, headers = await _post(http, stack.url)
    assert status == 200
    assert int(headers["x-ratelimit-remaining-requests"]) >= 15  # the shared burst of 20 again
    assert any("answers again" in r.getMessage() for r in caplog.records)
