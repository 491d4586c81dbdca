"""Shared fixtures: a gateway in front of the fake upstream, and blocking-call detection."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from blockbuster import BlockBuster, blockbuster_ctx

from tests import identity
from tests.postgres_server import ENV_DSN, PostgresServer
from tests.redis_server import ENV_URL, RedisServer
from tests.stack import BackgroundLoop, Stack, close_stack, open_stack


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """Blocking calls inside any running event loop fail the test."""
    with blockbuster_ctx(scanned_modules=["gateway"]) as bb:
        yield bb


@pytest.fixture(scope="session", autouse=True)
def test_identity() -> None:
    """Create the session's dev-issuer key and default token before any event loop runs (the key
    file is read with blocking calls)."""
    identity.default_token()


@pytest.fixture(scope="session")
def background() -> Iterator[BackgroundLoop]:
    loop = BackgroundLoop()
    yield loop
    loop.close()


@pytest.fixture
def make_stack(background: BackgroundLoop) -> Iterator[Callable[..., Stack]]:
    """Factory: ``make_stack(server={...}, upstream={...})`` with config overrides."""
    opened: list[Stack] = []

    def make(**overrides: Any) -> Stack:
        stack = open_stack(background, **overrides)
        opened.append(stack)
        return stack

    yield make
    for stack in opened:
        close_stack(background, stack)


@pytest.fixture
def stack(make_stack: Callable[..., Stack]) -> Stack:
    """The gateway with default test settings."""
    return make_stack()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The suite's Redis (``scripts/test`` starts it), else one started here for the session."""
    url = os.environ.get(ENV_URL)
    if url:
        yield url
        return
    server = RedisServer().start()
    yield server.url
    server.close()


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """The suite's PostgreSQL (``scripts/test`` starts it), else one started for the session."""
    dsn = os.environ.get(ENV_DSN)
    if dsn:
        yield dsn
        return
    server = PostgresServer().start()
    yield server.dsn()
    server.close()
