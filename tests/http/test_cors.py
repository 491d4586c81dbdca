"""CORS for browser chat UIs: exact origins only, preflights, exposed headers, never a wildcard."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
import pytest
from multidict import CIMultiDictProxy

from gateway.demo import Behaviour
from tests.identity import bearer
from tests.stack import Stack

ORIGIN = "https://chat.example.com"
CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]
ASKED = ["authorization", "content-type", "x-stainless-os", "openai-organization"]
EXPOSED = {
    "x-request-id",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
}


@pytest.fixture
def cors_stack(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack(server={"cors_origins": (ORIGIN,)})


def _names(value: str) -> list[str]:
    return [part.strip().lower() for part in value.split(",") if part.strip()]


def _preflight_headers(
    origin: str, method: str = "POST", asked: list[str] | None = None
) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": ", ".join(ASKED if asked is None else asked),
    }


def _assert_no_wildcard(headers: CIMultiDictProxy[str]) -> None:
    assert "*" not in headers.getall("Access-Control-Allow-Origin", [])
    assert "*" not in _names(headers.get("Access-Control-Allow-Headers", ""))
    assert "*" not in _names(headers.get("Access-Control-Expose-Headers", ""))
    assert headers.get("Access-Control-Allow-Credentials") != "true"


def _assert_cors_response(headers: CIMultiDictProxy[str]) -> None:
    assert headers.getall("Access-Control-Allow-Origin") == [ORIGIN]
    assert set(_names(headers["Access-Control-Expose-Headers"])) >= EXPOSED
    assert "origin" in _names(",".join(headers.getall("Vary", [])))
    _assert_no_wildcard(headers)


# --- preflight -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "method"),
    [(CHAT, "POST"), ("/v1/embeddings", "POST"), ("/v1/models", "GET"), ("/api/v2/models", "GET")],
)
async def test_preflight_allowed(
    cors_stack: Stack, http: aiohttp.ClientSession, path: str, method: str
) -> None:
    async with http.options(
        cors_stack.url + path, headers=_preflight_headers(ORIGIN, method)
    ) as response:
        assert response.status == 204
        assert await response.read() == b""
        headers = response.headers
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    assert method.lower() in _names(headers["Access-Control-Allow-Methods"])
    assert set(_names(headers["Access-Control-Allow-Headers"])) >= set(ASKED)
    assert int(headers["Access-Control-Max-Age"]) > 0
    assert "origin" in _names(",".join(headers.getall("Vary", [])))
    _assert_no_wildcard(headers)


async def test_preflight_allows_every_sdk_header(
    cors_stack: Stack, http: aiohttp.ClientSession
) -> None:
    asked = [
        "Authorization", "Content-Type", "OpenAI-Organization", "OpenAI-Project", "OpenAI-Beta",
        "X-Stainless-Lang", "X-Stainless-Package-Version", "X-Stainless-OS", "X-Stainless-Arch",
        "X-Stainless-Runtime", "X-Stainless-Runtime-Version", "X-Stainless-Async",
        "x-stainless-retry-count", "x-stainless-read-timeout", "X-Stainless-Timeout",
        "X-Stainless-Helper-Method",
    ]  # fmt: skip
    async with http.options(
        cors_stack.url + CHAT, headers=_preflight_headers(ORIGIN, asked=asked)
    ) as response:
        assert response.status == 204
        allowed = set(_names(response.headers["Access-Control-Allow-Headers"]))
    assert allowed >= {name.lower() for name in asked}


async def _refused(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> CIMultiDictProxy[str]:
    async with http.options(url, headers=headers) as response:
        raw = await response.read()
        assert response.status == 403
        assert response.content_type == "application/json"
        assert response.headers["x-request-id"].startswith("req_")
        assert "Access-Control-Allow-Methods" not in response.headers
        assert "Access-Control-Allow-Headers" not in response.headers
        _assert_no_wildcard(response.headers)
        result = response.headers
    error = orjson.loads(raw)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "permission_error"
    return result


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example.com",
        "https://chat.example.com.evil.example",
        "http://chat.example.com",
        "https://CHAT.example.com:443",
        "null",
    ],
    ids=["other-origin", "suffix", "http-scheme", "case-and-port", "null-origin"],
)
async def test_preflight_refused_for_other_origins(
    cors_stack: Stack, http: aiohttp.ClientSession, origin: str
) -> None:
    headers = await _refused(http, cors_stack.url + CHAT, _preflight_headers(origin))
    assert "Access-Control-Allow-Origin" not in headers


@pytest.mark.parametrize(
    "headers",
    [
        _preflight_headers(ORIGIN, method="DELETE"),
        _preflight_headers(ORIGIN, asked=["authorization", "x-forwarded-for"]),
    ],
    ids=["delete", "odd-header"],
)
async def test_preflight_refused_for_other_methods_and_headers(
    cors_stack: Stack, http: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    await _refused(http, cors_stack.url + CHAT, headers)


async def test_preflight_refused_when_no_origin_is_configured(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    async with http.options(stack.url + CHAT, headers=_preflight_headers(ORIGIN)) as response:
        await response.read()
        assert response.status == 403
        assert "Access-Control-Allow-Origin" not in response.headers
    body = {"model": "test-chat", "messages": HI}
    async with http.post(stack.url + CHAT, json=body, headers={"Origin": ORIGIN}) as response:
        await response.read()
        assert response.status == 200
        assert "Access-Control-Allow-Origin" not in response.headers
        assert "Access-Control-Expose-Headers" not in response.headers


# --- actual requests -----------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_post_from_allowed_origin(
    cors_stack: Stack, http: aiohttp.ClientSession, stream: bool
) -> None:
    body = {"model": "test-chat", "messages": HI, "stream": stream}
    headers = {"Origin": ORIGIN, **bearer()}
    async with http.post(cors_stack.url + CHAT, json=body, headers=headers) as response:
        raw = await response.read()
        assert response.status == 200
        assert response.content_type == ("text/event-stream" if stream else "application/json")
        _assert_cors_response(response.headers)
    assert raw.endswith(b"data: [DONE]\n\n") == stream


async def test_errors_are_readable_by_the_allowed_origin(
    cors_stack: Stack, http: aiohttp.ClientSession
) -> None:
    cors_stack.fake.behaviours["fake-chat"] = Behaviour(status=429)
    requests: list[tuple[str, dict[str, Any], int]] = [
        (CHAT, {"model": "nope", "messages": HI}, 404),
        (CHAT, {"model": "test-chat", "messages": []}, 400),
        (CHAT, {"model": "test-chat", "messages": HI, "stream": True}, 429),
        ("/v1/nope", {}, 404),
    ]
    for path, body, status in requests:
        async with http.post(cors_stack.url + path, json=body, headers={"Origin": ORIGIN}) as resp:
            await resp.read()
            assert resp.status == status
            _assert_cors_response(resp.headers)


async def test_get_models_from_allowed_origin(
    cors_stack: Stack, http: aiohttp.ClientSession
) -> None:
    async with http.get(cors_stack.v1 + "/models", headers={"Origin": ORIGIN}) as response:
        await response.read()
        assert response.status == 200
        _assert_cors_response(response.headers)


async def test_post_from_other_origin_gets_no_cors_headers(
    cors_stack: Stack, http: aiohttp.ClientSession
) -> None:
    body = {"model": "test-chat", "messages": HI, "stream": True}
    for origin in ("https://evil.example.com", "null"):
        async with http.post(
            cors_stack.url + CHAT, json=body, headers={"Origin": origin}
        ) as response:
            await response.read()
            assert "Access-Control-Allow-Origin" not in response.headers
            assert "Access-Control-Expose-Headers" not in response.headers
            _assert_no_wildcard(response.headers)
    async with http.post(cors_stack.url + CHAT, json=body) as response:  # no Origin at all
        await response.read()
        assert "Access-Control-Allow-Origin" not in response.headers
