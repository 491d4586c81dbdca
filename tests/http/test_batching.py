"""Events that arrive in one upstream read: all delivered, in order, before [DONE] or an error."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import aiohttp
import orjson
import pytest
from aiohttp import web

from gateway.config import ModelConfig
from gateway.telemetry import Metrics
from tests.identity import bearer
from tests.stack import BackgroundLoop, make_config, serve_post, start_gateway


def _event(i: int) -> bytes:
    choice = {"index": 0, "delta": {"content": f"t{i} "}, "finish_reason": None}
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "choices": [choice]}
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


BURSTS = {
    "done": b"".join(_event(i) for i in range(5)) + b"data: [DONE]\n\n",
    "error": _event(0) + _event(1) + b'data: {"error": {"message": "x", "code": "500"}}\n\n',
}


async def _burst(request: web.Request) -> web.StreamResponse:
    body = orjson.loads(await request.read())
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(BURSTS[body["model"]])  # one write: one read on the gateway's side
    return response


@pytest.fixture
def gateway_url(background: BackgroundLoop) -> Iterator[str]:
    upstream, port = background.run(serve_post("/v1/chat/completions", _burst))
    config = replace(
        make_config(f"http://127.0.0.1:{port}"),
        models={name: ModelConfig(upstream="fake", target=name) for name in BURSTS},
    )
    gateway, gateway_port = background.run(start_gateway(config, Metrics()))
    yield f"http://127.0.0.1:{gateway_port}/v1/chat/completions"
    background.run(gateway.cleanup())
    background.run(upstream.cleanup())


async def _events(url: str, model: str) -> list[bytes]:
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with (
        aiohttp.ClientSession(headers=bearer()) as http,
        http.post(url, json=body) as response,
    ):
        assert response.status == 200
        raw = await response.read()
    return raw.split(b"\n\n")[:-1]


async def test_a_burst_ending_in_done_is_delivered_whole(gateway_url: str) -> None:
    events = await _events(gateway_url, "done")
    assert events == [_event(i)[:-2] for i in range(5)] + [b"data: [DONE]"]


async def test_chunks_before_an_error_in_the_same_read_come_first(gateway_url: str) -> None:
    events = await _events(gateway_url, "error")
    assert events[:2] == [_event(0)[:-2], _event(1)[:-2]]
    assert len(events) == 3
    assert orjson.loads(events[2][len(b"data: ") :])["error"]["type"] == "api_error"
