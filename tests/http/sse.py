"""Reading SSE responses in raw-HTTP tests: events, chunks, error events, content."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson

from tests.http.conftest import ERROR_KEYS

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]
STREAM_BODY: dict[str, Any] = {"model": "test-chat", "messages": HI, "stream": True}


def split_events(raw: bytes) -> list[bytes]:
    """SSE events (and comments) of a complete body; each must end with a blank line."""
    assert raw.endswith(b"\n\n"), raw[-200:]
    events = raw[:-2].split(b"\n\n")
    for event in events:
        assert b"\n" not in event, event  # one line per event: `data: <json>` or a comment
    return events


def data_events(events: list[bytes]) -> list[bytes]:
    return [e for e in events if not e.startswith(b":")]


def chunk_of(event: bytes) -> dict[str, Any]:
    assert event.startswith(b"data: "), event
    obj = orjson.loads(event[len(b"data: ") :])
    assert isinstance(obj, dict)
    return obj


def assert_ends_with_error(raw: bytes) -> dict[str, Any]:
    """A committed stream that failed: chunks, then one error event, no [DONE]."""
    events = data_events(split_events(raw))
    assert b"data: [DONE]" not in events
    *chunks, last = events
    for event in chunks:
        assert chunk_of(event)["object"] == "chat.completion.chunk"
    body = chunk_of(last)
    assert set(body) == {"error"}
    assert set(body["error"]) == ERROR_KEYS
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    return dict(body["error"])


def content_of(events: list[bytes]) -> str:
    parts: list[str] = []
    for event in events:
        if event == b"data: [DONE]":
            continue
        parts.extend(c["delta"].get("content") or "" for c in chunk_of(event)["choices"])
    return "".join(parts)


async def poll(condition: Callable[[], bool], timeout_s: float = 1.0) -> bool:
    """Wait (bounded) until ``condition()`` holds; returns its final value."""
    for _ in range(round(timeout_s / 0.01)):
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()
