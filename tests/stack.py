"""A running gateway in front of the fake upstream, served from a background event loop.

Tests talk to it over real loopback sockets, so the synchronous openai-python client works from
plain test functions and the asynchronous one from asyncio tests. With ``sagemaker=...`` the stack
also runs the fake SageMaker runtime (``tests/fakes/sagemaker.py``) behind a ``sagemaker`` upstream
reached by the real aioboto3 client, with one model per container dialect (``SAGEMAKER_MODELS``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import tempfile
import threading
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import uvloop
from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.app import Services, create_app
from gateway.config import (
    AuthConfig,
    DevIssuerConfig,
    GatewayConfig,
    LimitsConfig,
    MeteringConfig,
    ModelConfig,
    PhiConfig,
    PricingConfig,
    SageMakerModelConfig,
    Secret,
    ServerConfig,
    TenantConfig,
    UpstreamConfig,
)
from gateway.demo import FakeOpenAI, start_fake
from gateway.keys import LEDGER, LIMITER
from gateway.limits.limiter import Limiter
from gateway.metering.ledger import Ledger
from gateway.metering.records import UsageRecord
from gateway.metering.sink import UsageQuery
from gateway.phi.vault import Vault
from gateway.telemetry import Metrics
from tests import identity
from tests.fakes.sagemaker import FakeEndpoint, FakeSageMaker, start_fake_sagemaker

_T = TypeVar("_T")
EVERYTHING = UsageQuery(None, dt.date(2000, 1, 1), dt.date(2100, 1, 1))
UPSTREAM_KEY = "sk-gateway-own-upstream-key"
#: Model alias -> (endpoint name, dialect, chat template) of the SageMaker models in a stack.
SAGEMAKER_MODELS: dict[str, tuple[str, Any, Any]] = {
    "sm-tgi": ("ep-tgi", "tgi", "llama3"),
    "sm-messages": ("ep-messages", "messages", None),
    "sm-lmi": ("ep-lmi", "lmi", "chatml"),
    "sm-vllm": ("ep-vllm", "vllm", None),
}


#: The price of ``test-chat`` (``test-embed`` is free).
TEST_PRICING = PricingConfig(
    input_per_million=Decimal("2.5"), output_per_million=Decimal(10), markup=Decimal("0.25")
)


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


def make_config(  # noqa: PLR0913 -- one keyword per overridable section
    upstream_url: str,
    *,
    server: Mapping[str, Any] | None = None,
    upstream: Mapping[str, Any] | None = None,
    sagemaker_url: str | None = None,
    sagemaker: Mapping[str, Any] | None = None,
    sagemaker_model: Mapping[str, Any] | None = None,
    tenant: Mapping[str, Any] | None = None,
    limits: Mapping[str, Any] | None = None,
    metering: Mapping[str, Any] | None = None,
    phi: Mapping[str, Any] | None = None,
) -> GatewayConfig:
    """A test configuration: the test issuer, tenant ``tests`` allowed every model (``tenant``: more
    of its settings, e.g. ``limits``), one fake upstream, a chat and an embedding model; with
    ``sagemaker_url``, a SageMaker upstream (``sagemaker`` overrides its settings) and models;
    with ``phi`` (``[phi]`` settings), also ``test-hipaa``, a HIPAA-eligible chat model."""
    upstreams = {
        "fake": UpstreamConfig(
            base_url=upstream_url, api_key=Secret(UPSTREAM_KEY), **(upstream or {})
        )
    }
    models = {
        "test-chat": ModelConfig(
            upstream="fake", target="fake-chat", owned_by="tests", pricing=TEST_PRICING
        ),
        "test-embed": ModelConfig(upstream="fake", target="fake-embed", kind="embedding"),
        "hidden": ModelConfig(upstream="fake", target="fake-chat", status="disabled"),
    }
    if phi is not None:
        models["test-hipaa"] = ModelConfig(upstream="fake", target="fake-chat", hipaa_eligible=True)
    if sagemaker_url is not None:
        settings = {"region": "us-east-1", "max_retries": 0, **(sagemaker or {})}
        upstreams["sm"] = UpstreamConfig(kind="sagemaker", endpoint_url=sagemaker_url, **settings)
        for alias, (endpoint, dialect, template) in SAGEMAKER_MODELS.items():
            models[alias] = ModelConfig(
                upstream="sm",
                target=f"{dialect}-model",
                hipaa_eligible=phi is not None,
                sagemaker=SageMakerModelConfig(
                    endpoint_name=endpoint,
                    dialect=dialect,
                    chat_template=template,
                    **(sagemaker_model or {}),
                ),
            )
    return GatewayConfig(
        server=ServerConfig(**{"port": 0, "workers": 1, **(server or {})}),
        auth=test_auth(),
        tenants={identity.TENANT: TenantConfig(**{"models": ("*",), **(tenant or {})})},
        limits=LimitsConfig(**(limits or {})),
        metering=test_metering(**(metering or {})),
        phi=PhiConfig(**(phi or {})),
        upstreams=upstreams,
        models=models,
    )


def test_metering(**overrides: Any) -> MeteringConfig:
    """The file ledger in a fresh temporary directory (``overrides``: other settings)."""
    folder = Path(tempfile.mkdtemp(prefix="gateway-ledger-"))
    settings = {"path": str(folder / "usage.jsonl"), "spill_dir": str(folder / "spill"),
                "batch_interval_s": 0.05, **overrides}  # fmt: skip
    return MeteringConfig(**settings)


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
    sagemaker: FakeSageMaker | None = None
    """The fake SageMaker runtime, when the stack was opened with one."""
    api_key: str = field(default_factory=identity.default_token)
    """The credential clients present to the gateway (the session's default test token)."""

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"

    @property
    def headers(self) -> dict[str, str]:
        """Headers that authenticate a raw HTTP request to the gateway."""
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def ledger(self) -> Ledger:
        """The gateway's usage ledger (lives on the background loop)."""
        return self.runners[0].app[LEDGER]

    def usage(self, background: BackgroundLoop) -> list[UsageRecord]:
        """Every usage record so far (the queue flushed first)."""
        return background.run(_read_usage(self.ledger))

    async def usage_async(self, background: BackgroundLoop) -> list[UsageRecord]:
        """``usage`` from a test's own event loop."""
        future = asyncio.run_coroutine_threadsafe(_read_usage(self.ledger), background.loop)
        return await asyncio.wrap_future(future)

    @property
    def limiter(self) -> Limiter:
        """The gateway's limiter (its store lives on the background loop)."""
        return self.runners[0].app[LIMITER]


async def _read_usage(ledger: Ledger) -> list[UsageRecord]:
    await ledger.flush()
    return await ledger.sink.records(EVERYTHING)


async def serve_post(path: str, handler: Handler) -> tuple[web.AppRunner, int]:
    """A one-route upstream on loopback port 0 (for tests that need a special fake)."""
    return await _serve_one(web.post(path, handler))


async def serve_get(path: str, handler: Handler) -> tuple[web.AppRunner, int]:
    """A one-route ``GET`` server on loopback port 0."""
    return await _serve_one(web.get(path, handler))


async def _serve_one(route: web.RouteDef) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.add_routes([route])
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, int(runner.addresses[0][1])


async def start_gateway(
    config: GatewayConfig, metrics: Metrics, vault: Vault | None = None
) -> tuple[web.AppRunner, int]:
    """Serve the gateway app on loopback port 0 (handler cancellation on, as in production)."""
    runner = web.AppRunner(
        create_app(config, Services(metrics=metrics, vault=vault)),
        handler_cancellation=True,
        access_log=None,
        shutdown_timeout=5.0,
        handle_signals=False,
    )
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, int(runner.addresses[0][1])


def open_stack(  # noqa: PLR0913 -- one keyword per overridable section
    background: BackgroundLoop,
    *,
    server: Mapping[str, Any] | None = None,
    upstream: Mapping[str, Any] | None = None,
    sagemaker: Mapping[str, Any] | None = None,
    sagemaker_model: Mapping[str, Any] | None = None,
    tenant: Mapping[str, Any] | None = None,
    limits: Mapping[str, Any] | None = None,
    metering: Mapping[str, Any] | None = None,
    phi: Mapping[str, Any] | None = None,
    vault: Vault | None = None,
) -> Stack:
    """Start the fake upstream and the gateway in front of it; with ``sagemaker`` (upstream
    settings, ``{}`` for the defaults) also the fake SageMaker runtime, one endpoint per dialect.
    AWS credentials come from the default chain: set dummy ones in the environment first."""
    fake = FakeOpenAI()
    fake_runner, fake_port = background.run(start_fake(fake))
    fake_url = f"http://127.0.0.1:{fake_port}"
    runners = [fake_runner]
    fake_sm = sm_url = None
    if sagemaker is not None:
        fake_sm = FakeSageMaker()
        for endpoint, dialect, _ in SAGEMAKER_MODELS.values():
            fake_sm.endpoints[endpoint] = FakeEndpoint(dialect=dialect)
        sm_runner, sm_port = background.run(start_fake_sagemaker(fake_sm))
        runners.append(sm_runner)
        sm_url = f"http://127.0.0.1:{sm_port}"
    config = make_config(
        fake_url,
        server=server,
        upstream=upstream,
        sagemaker_url=sm_url,
        sagemaker=sagemaker,
        sagemaker_model=sagemaker_model,
        tenant=tenant,
        limits=limits,
        metering=metering,
        phi=phi,
    )
    metrics = Metrics()
    runner, port = background.run(start_gateway(config, metrics, vault))
    return Stack(
        url=f"http://127.0.0.1:{port}",
        fake=fake,
        fake_url=fake_url,
        config=config,
        metrics=metrics,
        runners=[runner, *runners],
        sagemaker=fake_sm,
    )


def close_stack(background: BackgroundLoop, stack: Stack) -> None:
    for runner in stack.runners:
        background.run(runner.cleanup())
