"""Raw HTTP: SSE framing, keep-alives, deadlines, upstream failures, disconnects, hygiene."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import pytest

from gateway.demo import Behaviour
from tests.http.conftest import read_error
from tests.http.sse import (
    CHAT,
    HI,
    STREAM_BODY,
    assert_ends_with_error,
    chunk_of,
    content_of,
    data_events,
    poll,
    split_events,
)
from tests.identity import bearer, default_token
from tests.stack import UPSTREAM_KEY, BackgroundLoop, Stack

# --- framing -------------------------------------------------------------------------------------


async def test_sse_framing(stack: Stack, http: aiohttp.ClientSession) -> None:
    text = "Exactly these words, framed as OpenAI frames them."
    stack.fake.behaviours["fake-chat"] = Behaviour(text=text)
    headers = {"Accept-Encoding": "gzip, deflate, br", "Accept": "text/event-stream"}
    async with http.post(
        stack.url + CHAT, json=STREAM_BODY, headers=headers, auto_decompress=False
    ) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        assert "Content-Encoding" not in response.headers
        assert "Content-Length" not in response.headers
        assert response.headers["Transfer-Encoding"] == "chunked"
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["X-Accel-Buffering"] == "no"
        assert response.headers["x-request-id"].startswith("req_")
        raw = await response.read()
    assert raw.endswith(b"\n\ndata: [DONE]\n\n")
    assert raw.count(b"[DONE]") == 1
    events = split_events(raw)
    assert all(e.startswith(b"data: ") for e in events)  # no comments on a prompt stream
    assert events[-1] == b"data: [DONE]"
    chunks = [chunk_of(e) for e in events[:-1]]
    assert len(chunks) == len(text.split(" ")) + 2  # role chunk, tokens, finish chunk
    assert {c["id"] for c in chunks} == {"chatcmpl-fake"}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert content_of(events) == text
    assert stack.metrics.open_streams.values == {(): 0.0}


async def test_keepalive_comments_until_the_first_chunk(
    make_stack: Callable[..., Stack],
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The upstream answers 200 at once but its first chunk comes late: comments fill the gap."""
    stack = make_stack(server={"sse_keepalive_s": 0.05})
    stack.fake.behaviours["fake-chat"] = Behaviour(chunk_delay_s=0.05, text="a b")
    send_events = stack.fake._send_events

    async def late_first_chunk(*args: Any) -> None:
        await asyncio.sleep(0.3)  # headers are already sent; the first event is late
        await send_events(*args)

    monkeypatch.setattr(stack.fake, "_send_events", late_first_chunk)
    started = time.monotonic()
    async with http.post(stack.url + CHAT, json=STREAM_BODY) as response:
        committed_s = time.monotonic() - started
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        raw = await response.read()
    assert committed_s < 0.25  # the 200 went out with the first keep-alive, not the first chunk
    events = split_events(raw)
    first_data = next(i for i, e in enumerate(events) if e.startswith(b"data: "))
    assert first_data >= 2  # repeated every sse_keepalive_s, not just once
    assert all(e == b": keep-alive" for e in events[:first_data])
    assert b": keep-alive" not in b"\n\n".join(events[first_data:])
    assert events[-1] == b"data: [DONE]"
    assert content_of(data_events(events)) == "a b"


# --- deadlines -----------------------------------------------------------------------------------


async def test_first_byte_timeout_is_504_before_any_sse(
    make_stack: Callable[..., Stack], http: aiohttp.ClientSession
) -> None:
    stack = make_stack(upstream={"first_byte_timeout_s": 0.2})
    stack.fake.behaviours["fake-chat"] = Behaviour(header_delay_s=1.0)
    started = time.monotonic()
    async with http.post(stack.url + CHAT, json=STREAM_BODY) as response:
        error = await read_error(response, 504)
        assert response.headers["x-should-retry"] == "false"
    assert time.monotonic() - started < 0.8
    assert error["code"] == "first_byte_timeout"
    assert error["type"] == "timeout"
    assert stack.metrics.upstream_errors.values == {("fake", "timeout_first_byte"): 1.0}
    assert stack.metrics.open_streams.values == {(): 0.0}


async def test_non_stream_total_timeout_is_504(
    make_stack: Callable[..., Stack], http: aiohttp.ClientSession
) -> None:
    stack = make_stack(upstream={"first_byte_timeout_s": 0.2, "total_timeout_s": 0.3})
    stack.fake.behaviours["fake-chat"] = Behaviour(header_delay_s=1.0)
    started = time.monotonic()
    async with http.post(stack.url + CHAT, json={"model": "test-chat", "messages": HI}) as response:
        error = await read_error(response, 504)
    elapsed = time.monotonic() - started
    assert 0.25 < elapsed < 0.8
    assert error["type"] == "timeout"
    assert error["code"] == "total_timeout"
    assert stack.metrics.upstream_errors.values == {("fake", "timeout_total"): 1.0}


async def test_idle_gap_ends_stream_with_error_event(
    make_stack: Callable[..., Stack], http: aiohttp.ClientSession
) -> None:
    stack = make_stack(upstream={"idle_timeout_s": 0.2})
    stack.fake.behaviours["fake-chat"] = Behaviour(stall_after=3, text="one two three four five")
    async with http.post(stack.url + CHAT, json=STREAM_BODY) as response:
        assert response.status == 200
        raw = await response.read()
    error = assert_ends_with_error(raw)
    assert error["code"] == "idle_timeout"
    assert error["type"] == "timeout"
    assert content_of(data_events(split_events(raw))[:-1]) == "one two three"
    assert await poll(lambda: len(stack.fake.disconnects) == 1)  # the stalled upstream is closed
    assert stack.metrics.open_streams.values == {(): 0.0}


# --- upstream failures after the commit ----------------------------------------------------------


async def test_upstream_error_event_mid_stream(stack: Stack, http: aiohttp.ClientSession) -> None:
    stack.fake.behaviours["fake-chat"] = Behaviour(error_after=2, text="one two three four")
    async with http.post(stack.url + CHAT, json=STREAM_BODY) as response:
        assert response.status == 200
        raw = await response.read()
    error = assert_ends_with_error(raw)
    assert content_of(data_events(split_events(raw))[:-1]) == "one two"
    # LiteLLM's literal "None" strings and the upstream's own message stay upstream.
    assert b'"None"' not in raw
    assert b"model crashed" not in raw
    assert error["param"] is None
    assert error["type"] != "None"
    assert error["code"] != "None"


@pytest.mark.parametrize(
    "behaviour",
    [Behaviour(cut_after=2), Behaviour(omit_done=True)],
    ids=["cut", "no-done"],
)
async def test_broken_upstream_stream_ends_with_error_event(
    stack: Stack, http: aiohttp.ClientSession, behaviour: Behaviour
) -> None:
    stack.fake.behaviours["fake-chat"] = behaviour
    async with http.post(stack.url + CHAT, json=STREAM_BODY) as response:
        assert response.status == 200
        raw = await response.read()
    error = assert_ends_with_error(raw)
    assert error["type"] == "api_error"
    assert list(stack.metrics.upstream_errors.values) == [("fake", "protocol")]


async def test_malformed_upstream_event_is_never_a_success(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    stack.fake.behaviours["fake-chat"] = Behaviour(malformed=True)
    async with http.post(stack.url + CHAT, json=STREAM_BODY) as response:
        raw = await response.read()
        status = response.status
    if status == 200:
        assert b"this is not json" not in raw  # never relay bytes an SDK cannot parse
        assert_ends_with_error(raw)
    else:
        assert status == 502
        assert orjson.loads(raw)["error"]["type"] == "api_error"
    assert b"data: [DONE]" not in raw


# --- upstream failures before the commit ---------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "status", "expected"),
    [
        (
            Behaviour(status=429, error_headers={"retry-after": "7"}),
            429,
            {"retry-after": "7", "x-should-retry": "true"},
        ),
        (Behaviour(status=500), 502, {"x-should-retry": "false"}),
        (Behaviour(status=502), 502, {"x-should-retry": "false"}),
        (Behaviour(status=503), 503, {"x-should-retry": "true"}),
        (Behaviour(status=401), 502, {"x-should-retry": "false"}),
    ],
    ids=["429", "500", "502", "503", "401"],
)
async def test_upstream_status_before_stream(
    stack: Stack,
    http: aiohttp.ClientSession,
    behaviour: Behaviour,
    status: int,
    expected: dict[str, str],
) -> None:
    stack.fake.behaviours["fake-chat"] = behaviour
    async with http.post(stack.url + CHAT, json=STREAM_BODY) as response:
        error = await read_error(response, status)
        headers = response.headers
    for name, value in expected.items():
        assert headers[name] == value
    if status == 503:
        assert int(headers["retry-after"]) >= 1
    if status == 502:
        assert "retry-after" not in headers
        assert "upstream exploded" not in error["message"]
    assert stack.metrics.open_streams.values == {(): 0.0}


async def test_upstream_unreachable_is_503(
    stack: Stack, http: aiohttp.ClientSession, background: BackgroundLoop
) -> None:
    background.run(stack.runners[1].cleanup())  # the fake upstream stops listening
    for body in (STREAM_BODY, {"model": "test-chat", "messages": HI}):
        async with http.post(stack.url + CHAT, json=body) as response:
            await read_error(response, 503)
            assert int(response.headers["retry-after"]) >= 1
            assert response.headers["x-should-retry"] == "true"


# --- the client goes away ------------------------------------------------------------------------


async def test_client_disconnect_closes_upstream(stack: Stack, http: aiohttp.ClientSession) -> None:
    stack.fake.behaviours["fake-chat"] = Behaviour(chunk_delay_s=0.05, text="word " * 400)
    async with http.post(stack.url + CHAT, json=STREAM_BODY) as response:
        assert response.status == 200
        for _ in range(3):
            assert (await response.content.readuntil(b"\n\n")).startswith(b"data: ")
        assert stack.metrics.open_streams.values == {(): 1.0}
        closed_at = time.monotonic()
        response.close()
    assert await poll(lambda: len(stack.fake.disconnects) == 1)
    assert stack.fake.disconnects[0] - closed_at < 0.5
    assert await poll(lambda: stack.metrics.open_streams.values == {(): 0.0})
    assert stack.fake.open_streams == 0
    assert await poll(lambda: stack.metrics.requests.values.get((CHAT, "499")) == 1.0)


async def test_slow_reader_is_cut_off(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(server={"client_write_timeout_s": 0.3})
    stack.fake.behaviours["fake-chat"] = Behaviour(text="x " * 200_000)
    port = urlsplit(stack.url).port
    body = orjson.dumps(STREAM_BODY)
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: Bearer %s\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        % (default_token().encode(), len(body))
    ) + body
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        # Stop reading: the gateway's writes stall, and within a few seconds it gives up.
        assert await poll(lambda: len(stack.fake.disconnects) == 1, timeout_s=5.0)
        assert await poll(lambda: stack.metrics.open_streams.values == {(): 0.0})
        tail = await asyncio.wait_for(_read_to_end(reader), 5)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    assert b"[DONE]" not in tail
    assert not tail.endswith(b"0\r\n\r\n")  # aborted, not a completed chunked body


async def _read_to_end(reader: asyncio.StreamReader) -> bytes:
    """Whatever is still buffered, up to EOF or a reset; returns the last bytes read."""
    last = b""
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(1 << 20):
            last = (last + data)[-4096:]
    return last


# --- request hygiene -----------------------------------------------------------------------------

SMUGGLED: dict[str, Any] = {
    "api_base": "http://attacker.example",
    "base_url": "http://attacker.example",
    "api_key": "sk-client-supplied",
    "api_version": "2099-01-01",
    "mock_response": "pwned",
    "metadata": {"tags": ["free"]},
    "extra_headers": {"x-evil": "1"},
}
CLIENT_HEADERS = {
    **bearer(),
    "X-Stainless-OS": "Linux",
    "X-Stainless-Lang": "python",
    "x-stainless-retry-count": "0",
    "OpenAI-Organization": "org-client",
    "Cookie": "session=abc",
    "X-Request-Id": "client-chosen-id",
}


def _assert_hygienic(headers: dict[str, str], client_request_id: str) -> None:
    lowered = {k.lower(): v for k, v in headers.items()}
    assert lowered["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert not [k for k in lowered if k.startswith("x-stainless")]
    assert "cookie" not in lowered
    assert "openai-organization" not in lowered
    assert not any(default_token() in v for v in lowered.values())
    assert client_request_id.startswith("req_")  # the gateway's own id, not the client's
    assert lowered["x-request-id"] == client_request_id


@pytest.mark.parametrize("stream", [True, False])
async def test_request_hygiene_chat(
    stack: Stack, http: aiohttp.ClientSession, stream: bool
) -> None:
    body = {**STREAM_BODY, "stream": stream, "temperature": 0.5, "user": "u-1", **SMUGGLED}
    async with http.post(stack.url + CHAT, json=body, headers=CLIENT_HEADERS) as response:
        assert response.status == 200
        await response.read()
        request_id = response.headers["x-request-id"]
    (headers, sent), *_ = stack.fake.requests
    _assert_hygienic(headers, request_id)
    # Streams always ask for the usage chunk (metering); the client never sees it (test_usage).
    usage = {"stream_options": {"include_usage": True}} if stream else {}
    assert sent == {
        "model": "fake-chat", "messages": HI, "stream": stream, "temperature": 0.5, "user": "u-1",
        **usage,
    }  # fmt: skip


async def test_request_hygiene_embeddings(stack: Stack, http: aiohttp.ClientSession) -> None:
    body = {"model": "test-embed", "input": "hello", **SMUGGLED}
    async with http.post(
        stack.url + "/v1/embeddings", json=body, headers=CLIENT_HEADERS
    ) as response:
        assert response.status == 200
        await response.read()
        request_id = response.headers["x-request-id"]
    (headers, sent), *_ = stack.fake.requests
    _assert_hygienic(headers, request_id)
    assert sent == {"model": "fake-embed", "input": "hello"}
