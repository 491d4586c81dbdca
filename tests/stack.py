"""A running gateway in front of the fake upstream, served from a background event loop.

Tests talk to it over real loopback sockets, so the synchronous openai-python client works from
plain test functions and the asynchronous one from asyncio tests.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import uvloop
from aiohttp import web

from gateway.app import Services, create_app
from gateway.config import (
    AuthConfig,
    DevIssuerConfig,
    GatewayConfig,
    LimitsConfig,
    ModelConfig,
    Secret,
    ServerConfig,
    TenantConfig,
    UpstreamConfig,
)
from gateway.demo import FakeOpenAI, start_fake
from gateway.keys import LIMITER
from gateway.limits.limiter import Limiter
from gateway.telemetry import Metrics
from tests import identity

_T = TypeVar("_T")
UPSTREAM_KEY = "sk-gateway-own-upstream-key"


class BackgroundLoop:
    """A uvloop event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, _T], timeout: float = 30.0) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def make_config(
    upstream_url: str,
    *,
    server: Mapping[str, Any] | None = None,
    upstream: Mapping[str, Any] | None = None,
    tenant: Mapping[str, Any] | None = None,
    limits: Mapping[str, Any] | None = None,
) -> GatewayConfig:
    """A test configuration: one fake upstream, a chat and an embedding model, the test issuer, and
    tenant ``tests`` allowed every model (``tenant``: more of its settings, e.g. ``limits``)."""
    return GatewayConfig(
        server=ServerConfig(**{"port": 0, "workers": 1, **(server or {})}),
        auth=test_auth(),
        tenants={identity.TENANT: TenantConfig(**{"models": ("*",), **(tenant or {})})},
        limits=LimitsConfig(**(limits or {})),
        upstreams={
            "fake": UpstreamConfig(
                base_url=upstream_url, api_key=Secret(UPSTREAM_KEY), **(upstream or {})
            )
        },
        models={
            "test-chat": ModelConfig(upstream="fake", target="fake-chat", owned_by="tests"),
            "test-embed": ModelConfig(upstream="fake", target="fake-embed", kind="embedding"),
            "hidden": ModelConfig(upstream="fake", target="fake-chat", status="disabled"),
        },
    )


def test_auth(**overrides: Any) -> AuthConfig:
    """Authentication through the session's dev-issuer key (``tests.identity``)."""
    dev = DevIssuerConfig(
        enabled=True,
        issuer=identity.ISSUER,
        key_file=identity.key_file(),
        client_id=identity.CLIENT_ID,
    )
    return AuthConfig(**{"dev_issuer": dev, **overrides})


@dataclass
class Stack:
    """The gateway (``url``) and the fake upstream behind it."""

    url: str
    fake: FakeOpenAI
    fake_url: str
    config: GatewayConfig
    metrics: Metrics
    runners: list[web.AppRunner] = field(default_factory=list)

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"

    @property
    def limiter(self) -> Limiter:
        """The gateway's limiter (its store lives on the background loop)."""
        return self.runners[0].app[LIMITER]


async def start_gateway(config: GatewayConfig, metrics: Metrics) -> tuple[web.AppRunner, int]:
    """Serve the gateway app on loopback port 0 (handler cancellation on, as in production)."""
    runner = web.AppRunner(
        create_app(config, Services(metrics=metrics)),
        handler_cancellation=True,
        access_log=None,
        shutdown_timeout=5.0,
        handle_signals=False,
    )
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, int(runner.addresses[0][1])


def open_stack(
    background: BackgroundLoop,
    *,
    server: Mapping[str, Any] | None = None,
    upstream: Mapping[str, Any] | None = None,
    tenant: Mapping[str, Any] | None = None,
    limits: Mapping[str, Any] | None = None,
) -> Stack:
    """Start the fake upstream and the gateway in front of it."""
    fake = FakeOpenAI()
    fake_runner, fake_port = background.run(start_fake(fake))
    fake_url = f"http://127.0.0.1:{fake_port}"
    config = make_config(fake_url, server=server, upstream=upstream, tenant=tenant, limits=limits)
    metrics = Metrics()
    runner, port = background.run(start_gateway(config, metrics))
    return Stack(
        url=f"http://127.0.0.1:{port}",
        fake=fake,
        fake_url=fake_url,
        config=config,
        metrics=metrics,
        runners=[runner, fake_runner],
    )


def close_stack(background: BackgroundLoop, stack: Stack) -> None:
    for runner in stack.runners:
        background.run(runner.cleanup())
