"""A built-in fake OpenAI-compatible upstream: the demo's model and the tests' scripted server.

It streams plausible text token by token, answers tool calls, ``n`` choices, embeddings (float or
base64) and the usage chunk when asked, and can misbehave on purpose per target model
(``Behaviour``): error statuses, slow headers, stalls, mid-stream error events, cut connections,
malformed SSE. It records what it received and when a client went away.
"""

from __future__ import annotations

import array
import asyncio
import base64
import hashlib
import itertools
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

_SENTENCES = (
    "Streaming keeps the first token fast, so the reader sees progress at once.",
    "A gateway should add almost nothing to the time a model needs to answer.",
    "Each chunk travels as one server-sent event, framed exactly as OpenAI frames it.",
    "Patient data stays out of prompts and out of logs, whatever the model says.",
)


@dataclass(kw_only=True)
class Behaviour:
    """How the fake answers requests for one target model (defaults: a well-behaved model)."""

    text: str | None = None
    """Fixed reply; default: a few plausible sentences."""
    chunk_delay_s: float = 0.0
    """Pause before each streamed token."""
    header_delay_s: float = 0.0
    """Pause before the response headers (first byte)."""
    status: int = 200
    """Answer with this error status and an OpenAI error body instead."""
    error_headers: dict[str, str] = field(default_factory=dict)
    stall_after: int | None = None
    """Stop sending (without closing) after this many content chunks."""
    error_after: int | None = None
    """Send a ``data: {"error": ...}`` event after this many content chunks."""
    cut_after: int | None = None
    """Drop the connection after this many content chunks."""
    malformed: bool = False
    """Send an event that is not JSON."""
    omit_done: bool = False
    """End the stream without ``[DONE]``."""
    piece_chars: int | None = None
    """Stream the reply in pieces of this many characters instead of word by word."""
    tool_arguments: str | None = None
    """The arguments of the tool call answered when the request has tools (default: weather)."""
    extra_delta: dict[str, Any] | None = None
    """Merged into every content delta (a stream shape a client may not expect)."""


JWKS_PATH = "/dev-issuer/.well-known/jwks.json"


async def _json(body: dict[str, Any]) -> web.Response:
    return web.json_response(body)


class FakeOpenAI:
    """The fake server's state and handlers."""

    def __init__(
        self, default: Behaviour | None = None, *, jwks: dict[str, Any] | None = None
    ) -> None:
        self.default = default or Behaviour()
        self.jwks = jwks
        """Served at ``JWKS_PATH`` when set (the demo publishes its dev issuer's key there)."""
        self.behaviours: dict[str, Behaviour] = {}
        self.requests: deque[tuple[dict[str, str], dict[str, Any]]] = deque(maxlen=256)
        self.disconnects: list[float] = []
        self.open_streams = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_get("/v1/models", self.models)
        if self.jwks is not None:
            jwks = self.jwks
            app.router.add_get(JWKS_PATH, lambda _: _json(jwks))
        return app

    def _behaviour(self, body: dict[str, Any]) -> Behaviour:
        return self.behaviours.get(str(body.get("model")), self.default)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.requests.append((dict(request.headers), body))
        behaviour = self._behaviour(body)
        if behaviour.header_delay_s:
            await asyncio.sleep(behaviour.header_delay_s)
        if behaviour.status != 200:
            return _error_response(behaviour)
        if body.get("stream"):
            return await self._stream(request, body, behaviour)
        return web.json_response(_completion(body, behaviour))

    async def _stream(
        self, request: web.Request, body: dict[str, Any], behaviour: Behaviour
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        self.open_streams += 1
        try:
            await self._send_events(request, response, body, behaviour)
        except (asyncio.CancelledError, ConnectionError):
            self.disconnects.append(time.monotonic())
            raise
        finally:
            self.open_streams -= 1
        return response

    async def _send_events(  # noqa: C901
        self,
        request: web.Request,
        response: web.StreamResponse,
        body: dict[str, Any],
        behaviour: Behaviour,
    ) -> None:
        cid, created, model = "chatcmpl-fake", int(time.time()), str(body.get("model"))
        n = int(body.get("n") or 1)

        async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
            chunk = {"id": cid, "object": "chat.completion.chunk", "created": created,
                     "model": model, "choices": choices, **extra}  # fmt: skip
            await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")

        for i in range(n):
            await send([{"index": i, "delta": {"role": "assistant", "content": ""},
                         "finish_reason": None}])  # fmt: skip
        if behaviour.malformed:
            await response.write(b"data: {this is not json\n\n")
        pieces = (
            _tool_pieces(body, behaviour)
            if body.get("tools")
            else _tokens(_reply(body, behaviour), behaviour)
        )
        for count, piece in enumerate(pieces):
            if count == behaviour.stall_after:
                await asyncio.sleep(3600)
            if count == behaviour.error_after:
                await response.write(
                    b'data: {"error": {"message": "model crashed", "type": "None", '
                    b'"param": "None", "code": "500"}}\n\n'
                )
                return
            if count == behaviour.cut_after:
                if request.transport is not None:
                    request.transport.close()
                return
            if behaviour.chunk_delay_s:
                await asyncio.sleep(behaviour.chunk_delay_s)
            delta = {**piece, **(behaviour.extra_delta or {})}
            await send([{"index": i, "delta": delta, "finish_reason": None} for i in range(n)])
        finish = "tool_calls" if body.get("tools") else "stop"
        await send([{"index": i, "delta": {}, "finish_reason": finish} for i in range(n)])
        if (body.get("stream_options") or {}).get("include_usage"):
            await send([], usage=_usage(body, behaviour))
        if not behaviour.omit_done:
            await response.write(b"data: [DONE]\n\n")

    async def embeddings(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        self.requests.append((dict(request.headers), body))
        behaviour = self._behaviour(body)
        if behaviour.status != 200:
            return _error_response(behaviour)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dims = int(body.get("dimensions") or 8)
        data = []
        for index, item in enumerate(inputs):
            vector = _vector(str(item), dims)
            embedding: Any = vector
            if body.get("encoding_format") == "base64":
                embedding = base64.b64encode(array.array("f", vector).tobytes()).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        return web.json_response(
            {"object": "list", "data": data, "model": body["model"],
             "usage": {"prompt_tokens": len(inputs) * 4, "total_tokens": len(inputs) * 4}}
        )  # fmt: skip

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": []})


def _error_response(behaviour: Behaviour) -> web.Response:
    messages = {400: "bad request from the model", 404: "no such model upstream",
                429: "upstream rate limit reached", 500: "upstream exploded"}  # fmt: skip
    return web.json_response(
        {"error": {"message": messages.get(behaviour.status, "upstream error"),
                   "type": "upstream_error", "param": None, "code": str(behaviour.status)}},
        status=behaviour.status,
        headers=behaviour.error_headers,
    )  # fmt: skip


def _reply(body: dict[str, Any], behaviour: Behaviour) -> str:
    if behaviour.text is not None:
        return behaviour.text
    last = _last_user_text(body)
    if "[PHI_" in last:  # a redacted prompt: echo it, so re-identification can be seen
        return f"I received: {last}"
    digest = hashlib.sha256(orjson.dumps(body.get("messages"))).digest()
    start = digest[0] % len(_SENTENCES)
    return " ".join(itertools.islice(itertools.cycle(_SENTENCES), start, start + 2))


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else ""
    return ""


def _tokens(text: str, behaviour: Behaviour | None = None) -> list[dict[str, Any]]:
    size = behaviour.piece_chars if behaviour is not None else None
    if size:
        return [{"content": text[i : i + size]} for i in range(0, len(text), size)]
    words = text.split(" ")
    return [{"content": w if i == 0 else " " + w} for i, w in enumerate(words)]


def _tool_pieces(body: dict[str, Any], behaviour: Behaviour) -> list[dict[str, Any]]:
    function = (body["tools"][0] or {}).get("function") or {}
    name = str(function.get("name", "tool"))
    args = behaviour.tool_arguments or '{"location": "Paris", "unit": "celsius"}'
    first = {"tool_calls": [{"index": 0, "id": "call_fake1", "type": "function",
                             "function": {"name": name, "arguments": ""}}]}  # fmt: skip
    rest = [
        {"tool_calls": [{"index": 0, "function": {"arguments": args[i : i + 7]}}]}
        for i in range(0, len(args), 7)
    ]
    return [first, *rest]


def _usage(body: dict[str, Any], behaviour: Behaviour) -> dict[str, int]:
    prompt = len(orjson.dumps(body.get("messages"))) // 4
    completion = len(_tokens(_reply(body, behaviour), behaviour)) * int(body.get("n") or 1)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}  # fmt: skip


def _completion(body: dict[str, Any], behaviour: Behaviour) -> dict[str, Any]:
    n = int(body.get("n") or 1)
    if body.get("tools"):
        pieces = _tool_pieces(body, behaviour)
        call = pieces[0]["tool_calls"][0]
        call["function"]["arguments"] = "".join(
            p["tool_calls"][0]["function"]["arguments"] for p in pieces[1:]
        )
        message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call]}
        finish = "tool_calls"
    else:
        message = {"role": "assistant", "content": _reply(body, behaviour)}
        finish = "stop"
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
        "model": body.get("model"),
        "choices": [{"index": i, "message": message, "finish_reason": finish} for i in range(n)],
        "usage": _usage(body, behaviour),
    }  # fmt: skip


def _vector(text: str, dims: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i % len(digest)] - 128) / 128, 4) for i in range(dims)]


async def start_fake(
    fake: FakeOpenAI, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, int]:
    """Serve ``fake`` on ``host:port``; returns the runner (to clean up) and the bound port."""
    runner = web.AppRunner(fake.app(), handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    address = runner.addresses[0]
    return runner, int(address[1])
