"""Raw HTTP: every error is an OpenAI error object; the /api/v2 aliases, health and metrics."""

from __future__ import annotations

import gzip
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson
import pytest

from gateway.demo import Behaviour
from tests.http.conftest import read_error
from tests.identity import bearer
from tests.stack import Stack

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]


async def _error(response: aiohttp.ClientResponse, status: int) -> dict[str, Any]:
    """Check the OpenAI error envelope of ``response``; returns the inner error object."""
    error = await read_error(response, status)
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["type"], str)
    assert error["param"] is None or isinstance(error["param"], str)
    assert error["code"] is None or isinstance(error["code"], str)
    return dict(error)


async def _post(http: aiohttp.ClientSession, url: str, body: bytes, status: int) -> dict[str, Any]:
    headers = {"Content-Type": "application/json", **bearer()}
    async with http.post(url, data=body, headers=headers) as response:
        return await _error(response, status)


# --- 400: malformed bodies -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"", b'{"model": "test-chat",', b"\xff\xfe", b"[1, 2]", b'"a string"', b"3"],
    ids=["malformed", "empty", "truncated", "not-utf8", "array", "string", "number"],
)
async def test_body_not_a_json_object_is_400(
    stack: Stack, http: aiohttp.ClientSession, raw: bytes
) -> None:
    error = await _post(http, stack.url + CHAT, raw, 400)
    assert error["type"] == "invalid_request_error"
    assert len(stack.fake.requests) == 0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "test-chat", "messages": HI, "stream": "yes"}, "stream"),
        ({"model": "test-chat", "messages": HI, "n": 0}, "n"),
        ({"model": "test-chat", "messages": HI, "n": True}, "n"),
        ({"model": "test-chat", "messages": HI, "temperature": 5}, "temperature"),
        ({"model": "test-chat", "messages": HI, "temperature": "hot"}, "temperature"),
        ({"model": "test-chat", "messages": "hi"}, "messages"),
        ({"model": "test-chat", "messages": [{"content": "hi"}]}, "messages[0].role"),
        ({"model": "test-chat", "messages": [{"role": "bot", "content": "x"}]}, "messages[0].role"),
        ({"model": "test-chat", "messages": ["hi"]}, "messages[0]"),
        ({"model": "test-chat"}, "messages"),
        ({"model": "test-chat", "messages": []}, "messages"),
        ({"messages": HI}, "model"),
        ({"model": 42, "messages": HI}, "model"),
        ({"model": "test-chat", "messages": HI, "stop": 3}, "stop"),
        ({"model": "test-chat", "messages": HI, "tools": "all"}, "tools"),
    ],
    ids=[
        "stream-yes", "n-0", "n-bool", "temperature-5", "temperature-str", "messages-str",
        "no-role", "bad-role", "message-not-object", "missing-messages", "empty-messages",
        "missing-model", "model-int", "stop-int", "tools-str",
    ],
)  # fmt: skip
async def test_invalid_chat_body_is_400_with_param(
    stack: Stack, http: aiohttp.ClientSession, body: dict[str, Any], param: str
) -> None:
    error = await _post(http, stack.url + CHAT, orjson.dumps(body), 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert len(stack.fake.requests) == 0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "test-embed", "input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"model": "test-embed"}, "input"),
        ({"model": "test-embed", "input": ""}, "input"),
        ({"model": "test-embed", "input": []}, "input"),
        ({"model": "test-embed", "input": "x", "dimensions": 0}, "dimensions"),
    ],
    ids=["encoding-format", "missing-input", "empty-input", "empty-list", "dimensions-0"],
)
async def test_invalid_embeddings_body_is_400(
    stack: Stack, http: aiohttp.ClientSession, body: dict[str, Any], param: str
) -> None:
    error = await _post(http, stack.url + "/v1/embeddings", orjson.dumps(body), 400)
    assert error["param"] == param
    assert len(stack.fake.requests) == 0


# --- 404 / 405 / 413 -----------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["gpt-nope", "hidden", "test-embed"])
async def test_unknown_disabled_or_wrong_kind_model_is_404(
    stack: Stack, http: aiohttp.ClientSession, model: str
) -> None:
    body = orjson.dumps({"model": model, "messages": HI})
    error = await _post(http, stack.url + CHAT, body, 404)
    assert error["code"] == "model_not_found"
    assert error["param"] == "model"
    assert error["type"] == "invalid_request_error"
    assert len(stack.fake.requests) == 0


async def test_stream_request_for_unknown_model_is_404_json(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    body = orjson.dumps({"model": "hidden", "messages": HI, "stream": True})
    error = await _post(http, stack.url + CHAT, body, 404)
    assert error["code"] == "model_not_found"


async def test_retrieve_unknown_model_is_404(stack: Stack, http: aiohttp.ClientSession) -> None:
    for model in ("nope", "hidden"):
        async with http.get(f"{stack.v1}/models/{model}") as response:
            error = await _error(response, 404)
        assert error["code"] == "model_not_found"


async def test_body_over_limit_is_413(
    make_stack: Callable[..., Stack], http: aiohttp.ClientSession
) -> None:
    stack = make_stack(server={"max_body_bytes": 2048})
    body = orjson.dumps(
        {"model": "test-chat", "messages": [{"role": "user", "content": "x" * 3000}]}
    )
    error = await _post(http, stack.url + CHAT, body, 413)
    assert error["type"] == "invalid_request_error"
    assert "2048" in error["message"]
    assert len(stack.fake.requests) == 0


async def test_get_on_chat_completions_is_405(stack: Stack, http: aiohttp.ClientSession) -> None:
    async with http.get(stack.url + CHAT) as response:
        error = await _error(response, 405)
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize("path", ["/v1/nope", "/", "/v2/chat/completions", "/v1/completions"])
async def test_unknown_path_is_404(stack: Stack, http: aiohttp.ClientSession, path: str) -> None:
    async with http.post(stack.url + path, json={"model": "test-chat"}) as response:
        error = await _error(response, 404)
    assert error["type"] == "invalid_request_error"
    assert path in error["message"]


# --- /api/v2 aliases, health ---------------------------------------------------------------------


async def test_api_v2_chat_completions_matches_v1(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    stack.fake.behaviours["fake-chat"] = Behaviour(text="same answer")
    body = {"model": "test-chat", "messages": HI}
    results = []
    for prefix in ("/v1", "/api/v2"):
        async with http.post(f"{stack.url}{prefix}/chat/completions", json=body) as response:
            assert response.status == 200
            assert response.content_type == "application/json"
            assert response.headers["x-request-id"].startswith("req_")
            results.append(orjson.loads(await response.read()))
    v1, v2 = results
    assert v1["choices"] == v2["choices"]
    assert v2["choices"][0]["message"]["content"] == "same answer"
    async with http.post(
        f"{stack.url}/api/v2/chat/completions", json={**body, "stream": True}
    ) as response:
        assert response.status == 200
        assert response.content_type == "text/event-stream"
        raw = await response.read()
    assert raw.endswith(b"data: [DONE]\n\n")
    async with http.post(f"{stack.url}/api/v2/chat/completions", json={"model": "x"}) as response:
        error = await _error(response, 400)
    assert error["param"] == "messages"


async def test_api_v2_models_matches_v1(stack: Stack, http: aiohttp.ClientSession) -> None:
    bodies = []
    for prefix in ("/v1", "/api/v2"):
        async with http.get(f"{stack.url}{prefix}/models") as response:
            assert response.status == 200
            assert response.content_type == "application/json"
            bodies.append(orjson.loads(await response.read()))
    assert bodies[0] == bodies[1]
    assert bodies[0]["object"] == "list"
    assert {m["id"] for m in bodies[0]["data"]} == {"test-chat", "test-embed"}
    for model in bodies[0]["data"]:
        assert set(model) == {"id", "object", "created", "owned_by"}
        assert model["object"] == "model"
    async with http.get(f"{stack.url}/api/v2/models/test-chat") as response:
        assert response.status == 200
        assert orjson.loads(await response.read())["id"] == "test-chat"
    async with http.get(f"{stack.url}/api/v2/models/hidden") as response:
        await _error(response, 404)


async def test_health_endpoints(stack: Stack, http: aiohttp.ClientSession) -> None:
    bodies = []
    for path in ("/healthz", "/api/v2/health"):
        async with http.get(stack.url + path) as response:
            assert response.status == 200
            assert response.content_type == "application/json"
            bodies.append(orjson.loads(await response.read()))
    assert bodies[0] == bodies[1] == {"status": "ok"}
    async with http.get(stack.url + "/readyz") as response:
        assert response.status == 200
        assert orjson.loads(await response.read())["status"] == "ready"


# --- /metrics ------------------------------------------------------------------------------------


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of the series ``name`` whose labels include ``labels``."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_]+)(\{(.*)\})? (\S+)", line)
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(3) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(4))
    raise AssertionError(f"no sample {name} {labels}")


async def test_metrics_after_traffic(stack: Stack, http: aiohttp.ClientSession) -> None:
    url = stack.url + CHAT
    body = {"model": "test-chat", "messages": HI}
    async with http.post(url, json=body) as response:
        assert response.status == 200
        await response.read()
    async with http.post(url, json={**body, "stream": True}) as response:
        assert response.status == 200
        await response.read()
    stack.fake.behaviours["fake-chat"] = Behaviour(status=500)
    async with http.post(url, json=body) as response:
        await _error(response, 502)
    async with http.get(stack.url + "/v1/nope") as response:
        await _error(response, 404)

    async with http.get(stack.url + "/metrics") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
    for family in (
        "gateway_requests_total",
        "gateway_request_duration_seconds_bucket",
        "gateway_time_to_first_token_seconds",
        "gateway_open_streams",
        "gateway_upstream_errors_total",
    ):
        assert family in text
    for line in text.splitlines():
        assert line.startswith("#") or re.fullmatch(r"[a-z_]+(\{[^}]*\})? [0-9.e+-]+|.*Inf.*", line)
    assert "# TYPE gateway_requests_total counter" in text
    assert "# TYPE gateway_request_duration_seconds histogram" in text
    assert _sample(text, "gateway_requests_total", route=CHAT, status="200") == 2
    assert _sample(text, "gateway_requests_total", route=CHAT, status="502") == 1
    assert _sample(text, "gateway_upstream_errors_total", upstream="fake") == 1
    assert _sample(text, "gateway_time_to_first_token_seconds_count", model="test-chat") == 1
    assert _sample(text, "gateway_open_streams") == 0
    assert _sample(text, "gateway_request_duration_seconds_count", route=CHAT) == 3
    assert _sample(text, "gateway_request_duration_seconds_bucket", route=CHAT, le="+Inf") == 3


# --- 405 details, bodies that only grow past the limit while being read --------------------------


async def test_405_names_the_allowed_method(stack: Stack, http: aiohttp.ClientSession) -> None:
    """RFC 9110 §15.5.6: a 405 response MUST carry ``Allow`` with the supported methods."""
    for method in ("GET", "PUT", "DELETE"):
        async with http.request(method, stack.url + CHAT) as response:
            await _error(response, 405)
            allow = {m.strip() for m in response.headers.get("Allow", "").split(",")}
        assert "POST" in allow, method


async def test_chunked_body_over_limit_is_413(
    make_stack: Callable[..., Stack], http: aiohttp.ClientSession
) -> None:
    """No Content-Length to check up front: the limit holds while the body streams in."""
    stack = make_stack(server={"max_body_bytes": 2048})
    body = orjson.dumps(
        {"model": "test-chat", "messages": [{"role": "user", "content": "x" * 8000}]}
    )

    async def parts() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 1000):
            yield body[i : i + 1000]

    async with http.post(stack.url + CHAT, data=parts()) as response:
        assert "Content-Length" not in response.request_info.headers
        await _error(response, 413)
    assert len(stack.fake.requests) == 0


async def test_compressed_body_is_limited_by_its_decoded_size(
    make_stack: Callable[..., Stack], http: aiohttp.ClientSession
) -> None:
    """A small gzip body that inflates past ``max_body_bytes`` is refused (no zip bomb)."""
    stack = make_stack(server={"max_body_bytes": 2048})
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    small = orjson.dumps({"model": "test-chat", "messages": HI})
    async with http.post(stack.url + CHAT, data=gzip.compress(small), headers=headers) as response:
        assert response.status == 200
        await response.read()
    bomb = orjson.dumps(
        {"model": "test-chat", "messages": [{"role": "user", "content": "x" * 1_000_000}]}
    )
    compressed = gzip.compress(bomb)
    assert len(compressed) < 2048
    async with http.post(stack.url + CHAT, data=compressed, headers=headers) as response:
        error = await _error(response, 413)
    assert "2048" in error["message"]
    assert len(stack.fake.requests) == 1


# --- upstream statuses (non-stream) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("upstream", "status", "passes_message"),
    [
        (400, 400, True),
        (404, 404, True),
        (409, 400, True),
        (413, 413, True),
        (422, 422, True),
        (401, 502, False),
        (403, 502, False),
        (408, 504, False),
        (500, 502, False),
        (502, 502, False),
        (503, 503, False),
        (504, 502, False),
    ],
)
async def test_upstream_status_mapping(
    stack: Stack, http: aiohttp.ClientSession, upstream: int, status: int, passes_message: bool
) -> None:
    stack.fake.behaviours["fake-chat"] = Behaviour(status=upstream)
    body = orjson.dumps({"model": "test-chat", "messages": HI})
    error = await _post(http, stack.url + CHAT, body, status)
    # The upstream's own 4xx message helps the caller; its 5xx/auth bodies stay upstream.
    upstream_message = {400: "bad request from the model", 404: "no such model upstream"}.get(
        upstream, "upstream error"
    )
    assert (error["message"] == upstream_message) == passes_message
    assert error["type"] == ("invalid_request_error" if status < 500 else "api_error")
    assert len(stack.fake.requests) == 1


@pytest.mark.parametrize(
    ("upstream_headers", "retry_after", "retry_after_ms"),
    [
        ({}, "1", "1000"),
        ({"retry-after": "7"}, "7", "7000"),
        ({"retry-after-ms": "1500"}, "2", "1500"),
        ({"retry-after-ms": "250", "retry-after": "9"}, "1", "250"),
        ({"retry-after": "3600"}, "1", "1000"),  # beyond the SDKs' range: not passed on
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, "1", "1000"),
    ],
    ids=["none", "seconds", "ms", "ms-wins", "too-long", "http-date"],
)
async def test_upstream_429_retry_hints(
    stack: Stack,
    http: aiohttp.ClientSession,
    upstream_headers: dict[str, str],
    retry_after: str,
    retry_after_ms: str,
) -> None:
    leaky = {"x-ratelimit-remaining-requests": "0", "x-litellm-key-spend": "12.5"}
    stack.fake.behaviours["fake-chat"] = Behaviour(
        status=429, error_headers={**upstream_headers, **leaky}
    )
    async with http.post(stack.url + CHAT, json={"model": "test-chat", "messages": HI}) as resp:
        error = await _error(resp, 429)
        headers = resp.headers
    assert error["type"] == "rate_limit_exceeded"
    assert error["message"] == "upstream rate limit reached"
    assert headers["x-should-retry"] == "true"
    assert headers["retry-after"] == retry_after
    assert headers["retry-after-ms"] == retry_after_ms
    for name in leaky:  # the upstream's own accounting headers are not the client's business
        assert name not in headers
    assert stack.metrics.upstream_errors.values == {("fake", "status_429"): 1.0}


@pytest.mark.parametrize("size", [8_200, 12_000])
async def test_oversized_bearer_token_gets_the_gateways_401(
    stack: Stack, http: aiohttp.ClientSession, size: int
) -> None:
    headers = {"Authorization": "Bearer " + "a" * size}
    async with http.get(stack.v1 + "/models", headers=headers) as response:
        error = await read_error(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "8192" in error["message"]
    assert "aaaa" not in error["message"]
