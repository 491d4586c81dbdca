"""Tenant and app isolation through the HTTP app: 401s, public paths, host/path app targeting,
tenant spoofing, and "the model list is exactly what invocation accepts"."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from tests.auth.site import (
    ALL_MODELS,
    HI,
    Site,
    auth,
    call,
    invoke,
    key,
    listed,
    token,
)

# --- 401 -----------------------------------------------------------------------------------------

EXPIRED = token(now=time.time() - 7200, lifetime_s=3600)
CREDENTIALS: dict[str, dict[str, str]] = {
    "missing": {},
    "malformed": auth("not-a-jwt"),
    "expired": auth(EXPIRED),
    "basic": {"Authorization": "Basic dXNlcjpwYXNzd29yZA=="},
    "basic-with-valid-token": {"Authorization": f"Basic {token()}"},
    "bearer-empty": {"Authorization": "Bearer"},
    "bearer-two-values": {"Authorization": f"Bearer {token()} extra"},
    "unknown-key-bearer": auth("gwk_" + "A" * 43),
    "unknown-key-header": {"X-Api-Key": "gwk_" + "B" * 43},
    "revoked-key-bearer": auth(key("k-revoked")),
    "revoked-key-header": {"X-Api-Key": key("k-revoked")},
    "token-in-x-api-key-and-bad-authorization": {
        "Authorization": "Token abc",
        "X-Api-Key": key("k-ta"),
    },
}


@pytest.mark.parametrize("name", list(CREDENTIALS))
@pytest.mark.parametrize(
    "route", ["/v1/models", "/v1/chat/completions", "/admin/v1/tenants/ta/models"]
)
async def test_bad_credentials_are_401_with_challenge(
    site: Site, client: aiohttp.ClientSession, name: str, route: str
) -> None:
    headers = CREDENTIALS[name]
    body = {"model": "chat-x", "messages": HI} if route.endswith("completions") else None
    answer = await call(client, site.url + route, headers, body)
    assert answer.status == 401, answer.body
    assert answer.headers["www-authenticate"].startswith("Bearer")
    error = answer.body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "authentication_error"
    for value in headers.values():
        secret = value.rpartition(" ")[2]
        assert len(secret) < 8 or secret not in str(answer.body)


async def test_expired_token_names_expiry(site: Site, client: aiohttp.ClientSession) -> None:
    answer = await call(client, site.url + "/v1/models", auth(EXPIRED))
    assert answer.status == 401
    assert answer.body["error"]["code"] == "token_expired"


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/api/v2/health"])
async def test_public_paths_need_no_credentials(
    site: Site, client: aiohttp.ClientSession, path: str
) -> None:
    async with client.get(site.url + path) as response:
        assert response.status == 200


async def test_bearer_scheme_is_case_insensitive(site: Site, client: aiohttp.ClientSession) -> None:
    answer = await call(client, site.url + "/v1/models", {"Authorization": f"bEaReR {token()}"})
    assert answer.status == 200


# --- app targeting -------------------------------------------------------------------------------

APP_CASES: list[tuple[str, str | None, str, str | None, int]] = [
    # (id, Host header, path prefix, token app, status)
    ("host-match", "chat.example.com", "/v1", "chat", 200),
    ("host-mismatch", "scribe.example.com", "/v1", "chat", 403),
    ("host-upper-case-mismatch", "SCRIBE.example.com:8443", "/v1", "chat", 403),
    ("host-app-but-token-without-app", "chat.example.com", "/v1", None, 403),
    ("path-match", None, "/api/chat/v1", "chat", 200),
    ("path-mismatch", None, "/api/scribe/v1", "chat", 403),
    ("path-app-but-token-without-app", None, "/api/scribe/v1", None, 403),
    ("host-and-path-disagree", "scribe.example.com", "/api/chat/v1", "chat", 403),
    ("host-not-an-app", "gateway.example.com", "/v1", "chat", 200),
    ("no-target-app", None, "/v1", "scribe", 200),
    ("token-app-not-configured", None, "/v1", "nope", 403),
]


@pytest.mark.parametrize(
    ("host", "prefix", "app", "status"), [c[1:] for c in APP_CASES], ids=[c[0] for c in APP_CASES]
)
async def test_app_isolation(
    site: Site,
    client: aiohttp.ClientSession,
    host: str | None,
    prefix: str,
    app: str | None,
    status: int,
) -> None:
    headers = auth(token("ta", app=app) if app else token("ta"))
    if host:
        headers["Host"] = host
    before = len(site.fake.requests)
    chat = await invoke(client, site.url + prefix, "chat-x", headers)
    models = await call(client, f"{site.url}{prefix}/models", headers)
    assert (chat.status, models.status) == (status, status), (chat.body, models.body)
    if status == 403:
        assert chat.body["error"]["type"] == "permission_error"
        assert len(site.fake.requests) == before


async def test_unknown_app_in_path_is_404(site: Site, client: aiohttp.ClientSession) -> None:
    answer = await call(client, site.url + "/api/nope/v1/models", auth(token("ta", app="nope")))
    assert answer.status == 404
    assert answer.body["error"]["type"] == "invalid_request_error"


async def test_unlisted_tenant_is_403(site: Site, client: aiohttp.ClientSession) -> None:
    for route in ("/v1/models", "/v1/chat/completions"):
        body = {"model": "chat-x", "messages": HI} if "chat" in route else None
        answer = await call(client, site.url + route, auth(token("tz")), body)
        assert answer.status == 403
        assert answer.body["error"]["type"] == "permission_error"


# --- tenant spoofing -----------------------------------------------------------------------------

SPOOFS: dict[str, tuple[dict[str, str], dict[str, Any]]] = {
    "x-tenant-id": ({"X-Tenant-Id": "tb"}, {}),
    "x-tenant-and-app": ({"X-Tenant-Id": "tb", "X-App-Id": "scribe", "X-User-Id": "x"}, {}),
    "user-field": ({}, {"user": "tb"}),
    "metadata": ({}, {"metadata": {"tenant_id": "tb", "tenantId": "tb", "app_id": "scribe"}}),
    "all": ({"X-Tenant-Id": "tb"}, {"user": "tb", "metadata": {"tenant_id": "tb"}}),
}


@pytest.mark.parametrize("name", list(SPOOFS))
async def test_headers_and_body_never_change_the_tenant(
    site: Site, client: aiohttp.ClientSession, name: str
) -> None:
    extra_headers, extra_body = SPOOFS[name]
    headers = {**auth(token("ta")), **extra_headers}
    assert await listed(client, site.url + "/v1", headers) == {"chat-x", "embed-e"}
    before = len(site.fake.requests)
    url = site.url + "/v1/chat/completions"
    denied = await call(client, url, headers, {"model": "chat-y", "messages": HI, **extra_body})
    assert denied.status == 404
    assert denied.body["error"]["code"] == "model_not_found"
    assert len(site.fake.requests) == before
    allowed = await call(client, url, headers, {"model": "chat-x", "messages": HI, **extra_body})
    assert allowed.status == 200, allowed.body
    retrieve = await call(client, site.url + "/v1/models/chat-y", headers)
    assert retrieve.status == 404


# --- the model list is exactly what invocation accepts ------------------------------------------

PRINCIPALS: dict[str, tuple[dict[str, str], set[str]]] = {
    "ta": (auth(token("ta")), {"chat-x", "embed-e"}),
    "ta-app-chat": (auth(token("ta", app="chat")), {"chat-x", "embed-e"}),
    "ta-app-scribe": (auth(token("ta", app="scribe")), {"chat-x"}),
    "tb": (auth(token("tb")), {"chat-y"}),
    "tb-app-scribe": (auth(token("tb", app="scribe")), set()),
    "tc": (auth(token("tc")), {"chat-x", "chat-y", "chat-z", "embed-e"}),
    "tc-app-scribe": (auth(token("tc", app="scribe")), {"chat-x", "chat-z"}),
    "tc-super-admin": (
        auth(token("tc", groups=("super_admin",))),
        {"chat-x", "chat-y", "chat-z", "embed-e"},
    ),
    "key-ta-bearer": (auth(key("k-ta")), {"chat-x"}),
    "key-ta-header": ({"X-Api-Key": key("k-ta")}, {"chat-x"}),
    "key-scribe": ({"X-Api-Key": key("k-scribe")}, {"chat-x", "chat-z"}),
}


@pytest.mark.parametrize("name", list(PRINCIPALS))
async def test_model_list_equals_invocation(
    site: Site, client: aiohttp.ClientSession, name: str
) -> None:
    headers, expected = PRINCIPALS[name]
    base = site.url + "/v1"
    accepted, retrievable = set(), set()
    for alias in ALL_MODELS:
        answer = await invoke(client, base, alias, headers)
        assert answer.status in (200, 404), answer.body
        if answer.status == 200:
            accepted.add(alias)
        if (await call(client, f"{base}/models/{alias}", headers)).status == 200:
            retrievable.add(alias)
    assert await listed(client, base, headers) == accepted == retrievable == expected


async def test_forbidden_model_looks_exactly_like_an_unknown_one(
    site: Site, client: aiohttp.ClientSession
) -> None:
    headers = auth(token("tb"))
    answers = {
        alias: await invoke(client, site.url + "/v1", alias, headers)
        for alias in ("chat-x", "off", "no-such-model")
    }
    shapes = set()
    for alias, answer in answers.items():
        assert answer.status == 404
        error = dict(answer.body["error"])
        error["message"] = error["message"].replace(alias, "<alias>")
        shapes.add(tuple(sorted(error.items())))
    assert len(shapes) == 1
