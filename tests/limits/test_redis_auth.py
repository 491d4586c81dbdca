"""``limits.redis_password`` against a real redis-server that requires AUTH (``--requirepass``).

The server is started here on its own loopback port (the suite's shared Redis has no password)
and stopped by this module's fixture only.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis

from gateway.config import GatewayConfig, load_config
from gateway.errors import ConfigError
from gateway.limits.fallback import FallbackStore
from gateway.limits.limiter import open_store
from gateway.limits.redis_store import RedisStore
from gateway.limits.rules import Admission, Bucket
from gateway.limits.store import StoreAuthFailed
from gateway.telemetry import Metrics
from tests.redis_server import RedisServer

PASSWORD = secrets.token_urlsafe(24)
CONFIG = """
[server]
workers = 2

[auth.issuers.users]
issuer = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123"
client_ids = ["app-client-1"]

[tenants.acme]
models = ["*"]
limits = { requests_per_minute = 60, burst = 2 }

[limits]
store = "redis"
replicas = 2
timeout_ms = 1000

[upstreams.litellm]
base_url = "http://127.0.0.1:4000"

[models.chat]
upstream = "litellm"
target = "gpt-4o-mini"
"""


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    started = RedisServer(password=PASSWORD).start()
    yield started
    started.close()


@pytest.fixture
def prefix() -> str:
    """A fresh key prefix per test (the module's server is shared)."""
    return f"test:{uuid.uuid4().hex}:"


def _admission() -> Admission:
    bucket = Bucket("t:acme", requests_per_minute=60, burst=2)
    return Admission(f"req_{uuid.uuid4().hex}", (bucket,), 0, is_stream=False)


def _config(url: str, password: str | None, prefix: str) -> GatewayConfig:
    env = {"GATEWAY__LIMITS__REDIS_URL": url, "GATEWAY__LIMITS__KEY_PREFIX": prefix}
    if password is not None:
        env["GATEWAY__LIMITS__REDIS_PASSWORD"] = password
    return load_config(CONFIG, env)


async def _keys(server: RedisServer, prefix: str) -> list[str]:
    client = aioredis.Redis.from_url(server.url, password=PASSWORD, decode_responses=True)
    try:
        return sorted(str(key) for key in await client.keys(prefix + "*"))
    finally:
        await client.aclose()


async def test_the_password_reaches_redis_and_admission_is_shared(
    server: RedisServer, prefix: str
) -> None:
    config = _config(server.url, PASSWORD, prefix)
    assert config.limits.redis_password is not None
    assert PASSWORD not in repr(config)
    store = open_store(config, Metrics())
    assert isinstance(store, FallbackStore)
    try:
        verdicts = [await store.admit(_admission()) for _ in range(3)]
    finally:
        await store.aclose()
    assert not store.degraded
    assert [v.is_local for v in verdicts] == [False, False, False]
    assert [v.allowed for v in verdicts] == [True, True, False]  # burst 2, decided by Redis
    assert await _keys(server, prefix) == [f"{prefix}t:acme:tat"]


@pytest.mark.parametrize("password", [None, "not-the-password"])
async def test_missing_or_wrong_password_is_an_auth_failure(
    server: RedisServer, prefix: str, password: str | None
) -> None:
    store = RedisStore(server.url, key_prefix=prefix, reservation_ttl_s=60, password=password)
    try:
        with pytest.raises(StoreAuthFailed):
            await store.admit(_admission())
    finally:
        await store.aclose()
    assert await _keys(server, prefix) == []


async def test_without_the_password_the_fallback_decides_and_says_why(
    server: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.limits")
    metrics = Metrics()
    store = open_store(_config(server.url, None, prefix), metrics)
    try:
        verdicts = [await store.admit(_admission()) for _ in range(3)]
    finally:
        await store.aclose()
    assert isinstance(store, FallbackStore)
    assert store.degraded
    assert all(v.is_local for v in verdicts)
    # The local share: burst 2 / 2 replicas = 1 at once.
    assert [v.allowed for v in verdicts] == [True, False, False]
    assert metrics.ratelimit_degraded.values[()] == 1.0
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1  # once per transition, not per request
    assert "refused authentication" in errors[0].getMessage()
    assert "limits.redis_password" in errors[0].getMessage()
    assert PASSWORD not in caplog.text
    assert await _keys(server, prefix) == []


def test_password_without_the_redis_store_is_refused() -> None:
    memory = CONFIG.replace('store = "redis"', 'store = "memory"')
    memory = memory.replace("workers = 2", "workers = 1")
    with pytest.raises(ConfigError, match=r"limits\.redis_password: only used with store"):
        load_config(memory, {"GATEWAY__LIMITS__REDIS_PASSWORD": "pw"})
    assert load_config(memory, {}).limits.redis_password is None


def test_a_password_in_both_places_is_refused() -> None:
    env = {"GATEWAY__LIMITS__REDIS_URL": "rediss://:other@cache.internal:6380/0",
           "GATEWAY__LIMITS__REDIS_PASSWORD": "pw"}  # fmt: skip
    with pytest.raises(ConfigError, match="the redis_url carries a password too"):
        load_config(CONFIG, env)
    env["GATEWAY__LIMITS__REDIS_URL"] = "rediss://cache.internal:6380/0"
    config = load_config(CONFIG, env)
    assert config.limits.redis_password is not None
    assert config.limits.redis_password.reveal() == "pw"
