"""Service API keys, admin groups and the openai-python SDK's view of 401/403 (through HTTP)."""

from __future__ import annotations

import asyncio

import aiohttp
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.auth.site import Site, auth, call, invoke, key, listed, token

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]

# --- service API keys ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [auth(key("k-ta")), {"X-Api-Key": key("k-ta")}, {"authorization": "bearer " + key("k-ta")}],
    ids=["authorization-bearer", "x-api-key", "lower-case"],
)
async def test_api_key_acts_for_its_tenant_within_its_scope(
    site: Site, client: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    assert await listed(client, site.url + "/v1", headers) == {"chat-x"}
    assert (await invoke(client, site.url + "/v1", "chat-x", headers)).status == 200
    # embed-e is in tenant ta's list, but not in the key's scope
    assert (await invoke(client, site.url + "/v1", "embed-e", headers)).status == 404


async def test_api_key_cannot_be_re_tenanted_by_headers(
    site: Site, client: aiohttp.ClientSession
) -> None:
    headers = {"X-Api-Key": key("k-ta"), "X-Tenant-Id": "tc"}
    assert await listed(client, site.url + "/v1", headers) == {"chat-x"}


async def test_authorization_header_wins_over_x_api_key(
    site: Site, client: aiohttp.ClientSession
) -> None:
    headers = {**auth(key("k-ta")), "X-Api-Key": key("k-scribe")}
    assert await listed(client, site.url + "/v1", headers) == {"chat-x"}


@pytest.mark.parametrize(
    ("prefix", "host", "status"),
    [
        ("/api/scribe/v1", None, 200),
        ("/api/chat/v1", None, 403),
        ("/v1", "scribe.example.com", 200),
        ("/v1", "chat.example.com", 403),
    ],
)
async def test_api_key_is_bound_to_its_app(
    site: Site, client: aiohttp.ClientSession, prefix: str, host: str | None, status: int
) -> None:
    headers = {"X-Api-Key": key("k-scribe")}
    if host:
        headers["Host"] = host
    answer = await call(client, f"{site.url}{prefix}/models", headers)
    assert answer.status == status
    if status == 403:
        assert answer.body["error"]["type"] == "permission_error"


async def test_key_without_app_is_refused_on_an_app_route(
    site: Site, client: aiohttp.ClientSession
) -> None:
    answer = await call(client, site.url + "/api/chat/v1/models", {"X-Api-Key": key("k-ta")})
    assert answer.status == 403


@pytest.mark.parametrize(
    "header",
    [
        b"X-Api-Key: gwk_\xff\xfe",
        b"Authorization: Bearer gwk_\xff",
        b"Authorization: Bearer eyJ\xff.e30.e30",
        b"Authorization: Bearer \xc3\xa9",
    ],
    ids=["x-api-key-gwk", "bearer-gwk", "bearer-jwt", "bearer-utf8"],
)
async def test_credential_that_is_not_utf8_is_401_not_500(site: Site, header: bytes) -> None:
    """Header bytes reach the handlers surrogate-escaped; an undecodable credential is still a
    bad credential (401), never a crash (500)."""
    host, port = site.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            b"GET /v1/models HTTP/1.1\r\nHost: gw\r\n%s\r\nConnection: close\r\n\r\n" % header
        )
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        await writer.wait_closed()
    assert data.split(b"\r\n", 1)[0] == b"HTTP/1.1 401 Unauthorized", data[-200:]


# --- admin groups --------------------------------------------------------------------------------

ADMIN_CASES: list[tuple[str, dict[str, str], str, int]] = [
    ("no-group-own-tenant", auth(token("ta")), "ta", 403),
    ("operator-own-tenant", auth(token("ta", groups=("operator", "auditor"))), "ta", 403),
    ("admin-own-tenant", auth(token("ta", groups=("admin",))), "ta", 200),
    ("admin-other-tenant", auth(token("ta", groups=("admin",))), "tb", 403),
    (
        "admin-of-other-app-own-tenant",
        auth(token("ta", app="scribe", groups=("admin",))),
        "ta",
        200,
    ),
    ("super-admin-own-tenant", auth(token("ta", groups=("super_admin",))), "ta", 200),
    ("super-admin-other-tenant", auth(token("ta", groups=("super_admin",))), "tb", 200),
    ("super-admin-unknown-tenant", auth(token("ta", groups=("super_admin",))), "tz", 404),
    ("super-admin-of-unlisted-tenant", auth(token("tz", groups=("super_admin",))), "ta", 403),
    ("group-name-case", auth(token("ta", groups=("Super_Admin", "ADMIN"))), "ta", 403),
    ("api-key-own-tenant", {"X-Api-Key": key("k-ta")}, "ta", 403),
]


@pytest.mark.parametrize(
    ("headers", "tenant", "status"), [c[1:] for c in ADMIN_CASES], ids=[c[0] for c in ADMIN_CASES]
)
async def test_admin_routes_need_configured_permissions(
    site: Site, client: aiohttp.ClientSession, headers: dict[str, str], tenant: str, status: int
) -> None:
    answer = await call(client, f"{site.url}/admin/v1/tenants/{tenant}/models", headers)
    assert answer.status == status, answer.body
    if status == 403:
        assert answer.body["error"]["type"] == "permission_error"
    if status == 200:
        assert answer.body["tenant"] == tenant


async def test_super_admin_sees_the_other_tenants_models_on_admin_routes_only(
    site: Site, client: aiohttp.ClientSession
) -> None:
    headers = auth(token("ta", groups=("super_admin",)))
    admin = await call(client, f"{site.url}/admin/v1/tenants/tb/models", headers)
    assert {m["id"] for m in admin.body["data"]} == {"chat-y"}
    assert await listed(client, site.url + "/v1", headers) == {"chat-x", "embed-e"}
    assert (await invoke(client, site.url + "/v1", "chat-y", headers)).status == 404


# --- the openai-python SDK -----------------------------------------------------------------------


def test_sdk_bad_token_is_authentication_error(site: Site) -> None:
    sdk = openai.OpenAI(base_url=site.url + "/v1", api_key="bad-token", max_retries=0)
    with sdk, pytest.raises(openai.AuthenticationError) as info:
        sdk.models.list()
    assert info.value.status_code == 401
    assert "bad-token" not in str(info.value.body)


def test_sdk_cross_app_is_permission_denied(site: Site) -> None:
    chat_token = token("ta", app="chat")
    with (
        openai.OpenAI(
            base_url=site.url + "/api/scribe/v1", api_key=chat_token, max_retries=0
        ) as sdk,
        pytest.raises(openai.PermissionDeniedError),
    ):
        sdk.chat.completions.create(model="chat-x", messages=MESSAGES)
    with openai.OpenAI(
        base_url=site.url + "/api/chat/v1", api_key=chat_token, max_retries=0
    ) as sdk:
        completion = sdk.chat.completions.create(model="chat-x", messages=MESSAGES)
        assert completion.choices[0].message.content
        with pytest.raises(openai.NotFoundError):
            sdk.chat.completions.create(model="chat-y", messages=MESSAGES)
