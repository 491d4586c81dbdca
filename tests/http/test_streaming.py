"""Raw HTTP: SSE framing, keep-alives, deadlines, upstream failures, disconnects, hygiene."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import pytest
from aiohttp import web

from gateway.demo import Behaviour
from tests.http.conftest import ERROR_KEYS, read_error
from tests.identity import bearer, default_token
from tests.stack import UPSTREAM_KEY, BackgroundLoop, Stack

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]
STREAM_BODY: dict[str, Any] = {"model": "test-chat", "messages": HI, "stream": True}


def _split(raw: bytes) -> list[bytes]:
    """SSE events (and comments) of a complete body; each must end with a blank line."""
    assert raw.endswith(b"\n\n"), raw[-200:]
    events = raw[:-2].split(b"\n\n")
    for event in events:
        assert b"\n" not in event, event  # one line per event: `data: <json>` or a comment
    return events


def _data(events: list[bytes]) -> list[bytes]:
    return [e for e in events if not e.startswith(b":")]


def _chunk(event: bytes) -> dict[str, Any]:
    assert event.startswith(b"data: "), event
    obj = orjson.loads(event[len(b"data: ") :])
    assert isinstance(obj, dict)
    return obj


def _assert_ends_with_error(raw: bytes) -> dict[str, Any]:
    """A committed stream that failed: chunks, then one error event, no [DONE]."""
    events = _data(_split(raw))
    assert b"data: [DONE]" not in events
    *chunks, last = events
    for event in chunks:
        assert _chunk(event)["object"] == "chat.completion.chunk"
    body = _chunk(last)
    assert set(body) == {"error"}
    assert set(body["error"]) == ERROR_KEYS
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    return dict(body["error"])


def _content(events: list[bytes]) -> str:
    parts: list[str] = []
    for event in events:
        if event == b"data: [DONE]":
            continue
        parts.extend(c["delta"].get("content") or "" for c in _chunk(event)["choices"])
    return "".join(parts)


async def _poll(condition: Callable[[], bool], timeout_s: float = 1.0) -> bool:
    """Wait (bounded) until ``condition()`` holds; returns its final value."""
    for _ in range(round(timeout_s / 0.01)):
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()


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
    events = _split(raw)
    assert all(e.startswith(b"data: ") for e in events)  # no comments on a prompt stream
    assert events[-1] == b"data: [DONE]"
    chunks = [_chunk(e) for e in events[:-1]]
    assert len(chunks) == len(text.split(" ")) + 2  # role chunk, tokens, finish chunk
    assert {c["id"] for c in chunks} == {"chatcmpl-fake"}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert _content(events) == text
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
    events = _split(raw)
    first_data = next(i for i, e in enumerate(events) if e.startswith(b"data: "))
    assert first_data >= 2  # repeated every sse_keepalive_s, not just once
    assert all(e == b": keep-alive" for e in events[:first_data])
    assert b": keep-alive" not in b"\n\n".join(events[first_data:])
    assert events[-1] == b"data: [DONE]"
    assert _content(_data(events)) == "a b"


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
    error = _assert_ends_with_error(raw)
    assert error["code"] == "idle_timeout"
    assert error["type"] == "timeout"
    assert _content(_data(_split(raw))[:-1]) == "one two three"
    assert await _poll(lambda: len(stack.fake.disconnects) == 1)  # the stalled upstream is closed
    assert stack.metrics.open_streams.values == {(): 0.0}


# --- upstream failures after the commit ----------------------------------------------------------


async def test_upstream_error_event_mid_stream(stack: Stack, http: aiohttp.ClientSession) -> None:
    stack.fake.behaviours["fake-chat"] = Behaviour(error_after=2, text="one two three four")
    async with http.post(stack.url + CHAT, json=STREAM_BODY) as response:
        assert response.status == 200
        raw = await response.read()
    error = _assert_ends_with_error(raw)
    assert _content(_data(_split(raw))[:-1]) == "one two"
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
    error = _assert_ends_with_error(raw)
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
        _assert_ends_with_error(raw)
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
    assert await _poll(lambda: len(stack.fake.disconnects) == 1)
    assert stack.fake.disconnects[0] - closed_at < 0.5
    assert await _poll(lambda: stack.metrics.open_streams.values == {(): 0.0})
    assert stack.fake.open_streams == 0
    assert await _poll(lambda: stack.metrics.requests.values.get((CHAT, "499")) == 1.0)


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
        assert await _poll(lambda: len(stack.fake.disconnects) == 1, timeout_s=5.0)
        assert await _poll(lambda: stack.metrics.open_streams.values == {(): 0.0})
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
    assert sent == {
        "model": "fake-chat", "messages": HI, "stream": stream, "temperature": 0.5, "user": "u-1"
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


# --- a scripted upstream: exact bytes on the wire ------------------------------------------------


def _chunk_bytes(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    """A compact ``chat.completion.chunk`` JSON object."""
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    chunk = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1,
             "model": "fake-chat", "choices": [choice], **extra}  # fmt: skip
    return orjson.dumps(chunk)


def _script(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, *writes: bytes, delay_s: float = 0.0
) -> None:
    """After its 200 headers the fake writes exactly ``writes`` (after ``delay_s``), then ends.

    The writes are 20 ms apart so that each is one read on the gateway's side: the first one
    commits the response before a later one fails.
    """

    async def send(request: web.Request, response: web.StreamResponse, *_: Any) -> None:
        await asyncio.sleep(delay_s)
        for i, data in enumerate(writes):
            if i:
                await asyncio.sleep(0.02)
            await response.write(data)

    monkeypatch.setattr(stack.fake, "_send_events", send)


def _sse_data(raw: bytes) -> list[str]:
    """The ``data`` of each event as a spec-compliant SSE client (the SDKs' decoders) sees it."""
    events: list[str] = []
    data: list[str] = []
    for line in raw.decode().replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line:
            if data:
                events.append("\n".join(data))
            data = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value.removeprefix(" "))
    return events


async def test_multiline_upstream_event_reaches_clients_as_valid_sse(
    stack: Stack, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SSE lets one event span several ``data:`` lines (joined with a newline, still valid JSON
    here). The gateway must not write that newline raw inside one ``data:`` line: the SDKs' SSE
    decoders would then drop the continuation lines (no ``data:`` field) and fail on broken JSON.
    """
    pretty = orjson.dumps(
        orjson.loads(_chunk_bytes({"content": "Hello"})), option=orjson.OPT_INDENT_2
    )
    multiline = b"".join(b"data: " + line + b"\n" for line in pretty.split(b"\n")) + b"\n"
    _script(
        stack,
        monkeypatch,
        b"data: " + _chunk_bytes({"role": "assistant", "content": ""}) + b"\n\n",
        multiline,
        b"data: " + _chunk_bytes({}, "stop") + b"\n\ndata: [DONE]\n\n",
    )
    async with http.post(stack.url + CHAT, json=STREAM_BODY) as response:
        assert response.status == 200
        raw = await response.read()
    data = _sse_data(raw)
    assert data[-1] == "[DONE]"
    chunks = [orjson.loads(d) for d in data[:-1]]  # every event is whole JSON for the client
    assert chunks[1] == orjson.loads(pretty)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Hello"


async def test_upstream_framing_variants_are_normalised(
    stack: Stack, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TGI-style ``data:`` without a space, CRLF and CR line ends, comments, ``event``/``id``
    fields and events cut anywhere across writes all reach the client as ``data: <json>\\n\\n``."""
    tokens = ["Fra", "ming ", "is ", "ours."]
    wire = (
        b": ping\r\n\r\n"
        + b"data:" + _chunk_bytes({"role": "assistant", "content": ""}) + b"\r\n\r\n"
        + b"".join(
            b"event: message\nid: %d\ndata: " % i + _chunk_bytes({"content": t}) + b"\n\n"
            for i, t in enumerate(tokens)
        )
        + b"data: " + _chunk_bytes({}, "stop") + b"\r\r"
        + b"data: [DONE]\n\n"
    )  # fmt: skip
    cuts = [0, 3, 17, 40, 41, 120, 121, 300, len(wire) - 2, len(wire)]
    _script(stack, monkeypatch, *(wire[a:b] for a, b in itertools.pairwise(cuts)))
    async with http.post(stack.url + CHAT, json=STREAM_BODY) as response:
        assert response.status == 200
        raw = await response.read()
    events = _split(raw)
    assert all(e.startswith(b"data: ") for e in events)  # upstream comments are not relayed
    assert events[-1] == b"data: [DONE]"
    assert len(events) == len(tokens) + 3
    assert _content(events) == "".join(tokens)
    assert _chunk(events[-2])["choices"][0]["finish_reason"] == "stop"


async def test_chunk_with_null_error_field_is_not_an_error(
    stack: Stack, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDKs treat an event as an error only when its ``error`` is truthy
    (openai-python ``_streaming.py``: ``data.get("error")``); ``"error": null`` is a chunk."""
    _script(
        stack,
        monkeypatch,
        b"data: " + _chunk_bytes({"role": "assistant", "content": ""}) + b"\n\n",
        b"data: " + _chunk_bytes({"content": "still fine"}, error=None) + b"\n\n",
        b"data: " + _chunk_bytes({}, "stop") + b"\n\ndata: [DONE]\n\n",
    )
    async with http.post(stack.url + CHAT, json=STREAM_BODY) as response:
        assert response.status == 200
        raw = await response.read()
    events = _split(raw)
    assert events[-1] == b"data: [DONE]"
    assert _content(events) == "still fine"


async def test_mid_stream_rate_limit_event_keeps_its_kind(
    stack: Stack, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    _script(
        stack,
        monkeypatch,
        b"data: " + _chunk_bytes({"role": "assistant", "content": "partial"}) + b"\n\n",
        b'data: {"error": {"message": "slow down", "type": "None", "param": "None", '
        b'"code": "429"}}\n\n',
    )
    async with http.post(stack.url + CHAT, json=STREAM_BODY) as response:
        assert response.status == 200
        raw = await response.read()
    error = _assert_ends_with_error(raw)
    assert error["type"] == "rate_limit_exceeded"
    assert error["code"] == "rate_limit_exceeded"
    assert b'"None"' not in raw
    assert _content(_data(_split(raw))[:-1]) == "partial"


@pytest.mark.parametrize("event", [b"[1, 2]", b'"text"', b"42", b"null"])
async def test_non_object_upstream_event_is_an_error(
    stack: Stack, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch, event: bytes
) -> None:
    _script(
        stack,
        monkeypatch,
        b"data: " + _chunk_bytes({"role": "assistant", "content": "ok"}) + b"\n\n",
        b"data: " + event + b"\n\n",
        b"data: " + _chunk_bytes({}, "stop") + b"\n\ndata: [DONE]\n\n",
    )
    async with http.post(stack.url + CHAT, json=STREAM_BODY) as response:
        assert response.status == 200
        raw = await response.read()
    error = _assert_ends_with_error(raw)
    assert error["type"] == "api_error"
    assert b"data: " + event + b"\n" not in raw
    assert list(stack.metrics.upstream_errors.values) == [("fake", "protocol")]


async def test_oversized_upstream_event_is_an_error(
    make_stack: Callable[..., Stack], http: aiohttp.ClientSession
) -> None:
    stack = make_stack(upstream={"max_event_bytes": 1024})
    stack.fake.behaviours["fake-chat"] = Behaviour(
        text="short " + "y" * 3000 + " tail", chunk_delay_s=0.02
    )
    async with http.post(stack.url + CHAT, json=STREAM_BODY) as response:
        assert response.status == 200
        raw = await response.read()
    error = _assert_ends_with_error(raw)
    assert error["type"] == "api_error"
    assert b"yyyy" not in raw
    assert _content(_data(_split(raw))[:-1]) == "short"
    assert await _poll(lambda: len(stack.fake.disconnects) == 1)


# --- deadlines around the first chunk and the whole stream ---------------------------------------


async def test_idle_upstream_after_keepalive_commit_is_an_error_event(
    make_stack: Callable[..., Stack],
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The 200 went out with the keep-alives, so the idle deadline can only be an SSE event."""
    stack = make_stack(server={"sse_keepalive_s": 0.05}, upstream={"idle_timeout_s": 0.25})
    _script(stack, monkeypatch, b"data: " + _chunk_bytes({"content": "late"}) + b"\n\n",
            delay_s=5.0)  # fmt: skip
    started = time.monotonic()
    async with http.post(stack.url + CHAT, json=STREAM_BODY) as response:
        assert response.status == 200
        raw = await response.read()
    assert time.monotonic() - started < 1.5
    events = _split(raw)
    assert events[0] == b": keep-alive"
    error = _assert_ends_with_error(raw)
    assert error["code"] == "idle_timeout"
    assert _data(events) == [events[-1]]  # keep-alives, then only the error event
    assert await _poll(lambda: len(stack.fake.disconnects) == 1)
    assert stack.metrics.open_streams.values == {(): 0.0}


async def test_idle_upstream_before_commit_is_504(
    make_stack: Callable[..., Stack],
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Upstream headers arrived but no chunk, and no keep-alive went out yet: a real status."""
    stack = make_stack(upstream={"idle_timeout_s": 0.2})
    _script(stack, monkeypatch, b"data: " + _chunk_bytes({"content": "late"}) + b"\n\n",
            delay_s=5.0)  # fmt: skip
    async with http.post(stack.url + CHAT, json=STREAM_BODY) as response:
        error = await read_error(response, 504)
    assert error["code"] == "idle_timeout"
    assert error["type"] == "timeout"
    assert await _poll(lambda: len(stack.fake.disconnects) == 1)
    assert stack.metrics.open_streams.values == {(): 0.0}


async def test_total_deadline_ends_a_running_stream(
    make_stack: Callable[..., Stack], http: aiohttp.ClientSession
) -> None:
    stack = make_stack(upstream={"first_byte_timeout_s": 0.2, "total_timeout_s": 0.3})
    stack.fake.behaviours["fake-chat"] = Behaviour(chunk_delay_s=0.02, text="w " * 200)
    started = time.monotonic()
    async with http.post(stack.url + CHAT, json=STREAM_BODY) as response:
        assert response.status == 200
        raw = await response.read()
    assert 0.25 < time.monotonic() - started < 1.0
    error = _assert_ends_with_error(raw)
    assert error["code"] == "total_timeout"
    assert error["type"] == "timeout"
    assert len(_data(_split(raw))) > 3  # it really was streaming when the deadline hit
    assert await _poll(lambda: len(stack.fake.disconnects) == 1)
    assert stack.metrics.upstream_errors.values == {("fake", "timeout_total"): 1.0}


async def test_client_disconnect_during_keepalives_closes_upstream(
    make_stack: Callable[..., Stack],
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stack = make_stack(server={"sse_keepalive_s": 0.05})
    _script(stack, monkeypatch, b"data: " + _chunk_bytes({"content": "late"}) + b"\n\n",
            delay_s=5.0)  # fmt: skip
    async with http.post(stack.url + CHAT, json=STREAM_BODY) as response:
        assert response.status == 200
        assert await response.content.readuntil(b"\n\n") == b": keep-alive\n\n"
        closed_at = time.monotonic()
        response.close()
    assert await _poll(lambda: len(stack.fake.disconnects) == 1)
    assert stack.fake.disconnects[0] - closed_at < 0.5
    assert await _poll(lambda: stack.metrics.open_streams.values == {(): 0.0})
    assert await _poll(lambda: stack.metrics.requests.values.get((CHAT, "499")) == 1.0)
