"""A gateway with several tenants, apps, service keys and admin groups (for the isolation tests).

| tenant | models                      |   | app    | models          |
|--------|-----------------------------|---|--------|-----------------|
| ta     | chat-x, embed-e, off        |   | chat   | *               |
| tb     | chat-y                      |   | scribe | chat-z, chat-x  |
| tc     | *                           |   |        |                 |

``off`` is disabled. Keys: ``k-ta`` (tenant ta, models chat-x), ``k-scribe`` (tenant tc, app
scribe), ``k-revoked`` (tenant ta, revoked). Groups: ``admin`` (admin:read), ``super_admin``
(admin:read, tenants:all), ``operator`` and ``auditor`` (nothing).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import orjson
from aiohttp import web

from gateway.auth.apikeys import new_key
from gateway.config import (
    ApiKeyConfig,
    AppConfig,
    GatewayConfig,
    GroupConfig,
    ModelConfig,
    Secret,
    TenantConfig,
)
from gateway.demo import FakeOpenAI, start_fake
from gateway.telemetry import Metrics
from tests import identity, stack

CHAT_MODELS: Final = ("chat-x", "chat-y", "chat-z", "off")
EMBED_MODELS: Final = ("embed-e",)
ALL_MODELS: Final = (*CHAT_MODELS, *EMBED_MODELS, "no-such-model")
KEYS: Final = {name: new_key() for name in ("k-ta", "k-scribe", "k-revoked")}
HI: Final = [{"role": "user", "content": "hi"}]


def config(upstream_url: str) -> GatewayConfig:
    base = stack.make_config(upstream_url)
    models = {alias: ModelConfig(upstream="fake", target="fake-chat") for alias in CHAT_MODELS[:3]}
    models["off"] = ModelConfig(upstream="fake", target="fake-chat", status="disabled")
    models["embed-e"] = ModelConfig(upstream="fake", target="fake-embed", kind="embedding")

    def key(name: str, tenant: str, **more: Any) -> ApiKeyConfig:
        return ApiKeyConfig(sha256=Secret(KEYS[name][1]), tenant=tenant, **more)

    groups = {
        "admin": GroupConfig(permissions=("admin:read",)),
        "super_admin": GroupConfig(permissions=("admin:read", "tenants:all")),
        "operator": GroupConfig(),
        "auditor": GroupConfig(),
    }
    return dataclasses.replace(
        base,
        auth=stack.test_auth(groups=groups),
        models=models,
        tenants={
            "ta": TenantConfig(models=("chat-x", "embed-e", "off")),
            "tb": TenantConfig(models=("chat-y",)),
            "tc": TenantConfig(models=("*",)),
        },
        apps={"chat": AppConfig(), "scribe": AppConfig(models=("chat-z", "chat-x"))},
        api_keys={
            "k-ta": key("k-ta", "ta", models=("chat-x",)),
            "k-scribe": key("k-scribe", "tc", app="scribe"),
            "k-revoked": key("k-revoked", "ta", revoked=True),
        },
    )


@dataclass
class Site:
    url: str
    fake: FakeOpenAI
    runners: list[web.AppRunner]


def open_site(background: stack.BackgroundLoop) -> Site:
    fake = FakeOpenAI()
    fake_runner, fake_port = background.run(start_fake(fake))
    cfg = config(f"http://127.0.0.1:{fake_port}")
    runner, port = background.run(stack.start_gateway(cfg, Metrics()))
    return Site(f"http://127.0.0.1:{port}", fake, [runner, fake_runner])


def close_site(background: stack.BackgroundLoop, site: Site) -> None:
    for runner in site.runners:
        background.run(runner.cleanup())


def key(name: str) -> str:
    """The plaintext of service key ``name``."""
    return KEYS[name][0]


def token(tenant: str = "ta", **claims: Any) -> str:
    return identity.token(tenant, **claims)


def auth(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


async def call(
    client: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    body: dict[str, Any] | None = None,
) -> Answer:
    """GET (no body) or POST ``body``; the status, JSON body and headers (lower-case names)."""
    if body is None:
        request = client.get(url, headers=headers)
    else:
        request = client.post(url, data=orjson.dumps(body), headers=headers)
    async with request as response:
        raw = await response.read()
        answer = {k.lower(): v for k, v in response.headers.items()}
        return Answer(response.status, orjson.loads(raw) if raw else {}, answer)


async def invoke(
    client: aiohttp.ClientSession, base: str, alias: str, headers: dict[str, str]
) -> Answer:
    """Call ``alias`` the way its kind is called (unknown aliases as chat)."""
    if alias in EMBED_MODELS:
        return await call(client, f"{base}/embeddings", headers, {"model": alias, "input": "x"})
    return await call(client, f"{base}/chat/completions", headers, {"model": alias, "messages": HI})


async def listed(client: aiohttp.ClientSession, base: str, headers: dict[str, str]) -> set[str]:
    answer = await call(client, f"{base}/models", headers)
    assert answer.status == 200, answer.body
    return {model["id"] for model in answer.body["data"]}
