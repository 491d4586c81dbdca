"""Raw HTTP against a scripted upstream: exact bytes on the wire, framing variants, bad events,
and deadlines around the first chunk."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from gateway.demo import Behaviour
from tests.http.conftest import read_error
from tests.http.sse import (
    CHAT,
    STREAM_BODY,
    assert_ends_with_error,
    chunk_of,
    content_of,
    data_events,
    poll,
    split_events,
)
from tests.stack import Stack

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
    events = split_events(raw)
    assert all(e.startswith(b"data: ") for e in events)  # upstream comments are not relayed
    assert events[-1] == b"data: [DONE]"
    assert len(events) == len(tokens) + 3
    assert content_of(events) == "".join(tokens)
    assert chunk_of(events[-2])["choices"][0]["finish_reason"] == "stop"


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
    events = split_events(raw)
    assert events[-1] == b"data: [DONE]"
    assert content_of(events) == "still fine"


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
    error = assert_ends_with_error(raw)
    assert error["type"] == "rate_limit_exceeded"
    assert error["code"] == "rate_limit_exceeded"
    assert b'"None"' not in raw
    assert content_of(data_events(split_events(raw))[:-1]) == "partial"


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
    error = assert_ends_with_error(raw)
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
    error = assert_ends_with_error(raw)
    assert error["type"] == "api_error"
    assert b"yyyy" not in raw
    assert content_of(data_events(split_events(raw))[:-1]) == "short"
    assert await poll(lambda: len(stack.fake.disconnects) == 1)


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
    events = split_events(raw)
    assert events[0] == b": keep-alive"
    error = assert_ends_with_error(raw)
    assert error["code"] == "idle_timeout"
    assert data_events(events) == [events[-1]]  # keep-alives, then only the error event
    assert await poll(lambda: len(stack.fake.disconnects) == 1)
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
    assert await poll(lambda: len(stack.fake.disconnects) == 1)
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
    error = assert_ends_with_error(raw)
    assert error["code"] == "total_timeout"
    assert error["type"] == "timeout"
    assert len(data_events(split_events(raw))) > 3  # it really was streaming when the deadline hit
    assert await poll(lambda: len(stack.fake.disconnects) == 1)
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
    assert await poll(lambda: len(stack.fake.disconnects) == 1)
    assert stack.fake.disconnects[0] - closed_at < 0.5
    assert await poll(lambda: stack.metrics.open_streams.values == {(): 0.0})
    assert await poll(lambda: stack.metrics.requests.values.get((CHAT, "499")) == 1.0)
