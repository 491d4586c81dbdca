"""A fake SageMaker runtime: the two invoke routes, real AWS event-stream frames, four containers.

The real aioboto3 client reaches it through ``endpoint_url`` (dummy credentials; SigV4 is not
checked). ``InvokeEndpointWithResponseStream`` answers with ``application/vnd.amazon.eventstream``
frames built by ``encode_frame`` (prelude with total and headers length and its CRC32, string
headers, payload, message CRC32), each ``PayloadPart`` carrying a slice of what the endpoint's
container would stream (``FakeEndpoint.dialect``); ``part_bytes`` re-cuts that output into slices
of a fixed size, splitting JSON objects and multi-byte UTF-8 characters. Error modes: modeled
errors (``x-amzn-ErrorType`` + JSON body), mid-stream exception frames, in-band container errors,
slow first token, stalls. It records requests and counts streams whose client went away.
"""

from __future__ import annotations

import asyncio
import binascii
import re
import struct
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from aiohttp import web

STREAM_CONTENT_TYPE: Final = "application/vnd.amazon.eventstream"
TEXT: Final = "Héllo wörld — streaming 🎉 from SageMaker, token by token."
_MAX_STALL_S: Final = 30.0


def encode_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message (all integers big-endian, header values of type string)."""
    encoded = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        encoded += bytes([len(raw_name)]) + raw_name + b"\x07"
        encoded += struct.pack(">H", len(raw_value)) + raw_value
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    prelude += struct.pack(">I", binascii.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack(">I", binascii.crc32(message))


def payload_part(data: bytes) -> bytes:
    """A ``PayloadPart`` event frame."""
    headers = {
        ":event-type": "PayloadPart",
        ":content-type": "application/octet-stream",
        ":message-type": "event",
    }
    return encode_frame(headers, data)


def exception_frame(kind: str, message: str, error_code: str | None = None) -> bytes:
    """A ``ModelStreamError`` / ``InternalStreamFailure`` exception frame."""
    body: dict[str, str] = {"Message": message}
    if error_code is not None:
        body["ErrorCode"] = error_code
    headers = {
        ":exception-type": kind,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode_frame(headers, orjson.dumps(body))


def tokens_of(text: str) -> list[str]:
    """Word-sized tokens whose concatenation is ``text``."""
    return re.findall(r"\s*\S+", text) or [text]


@dataclass(kw_only=True)
class FakeEndpoint:
    """How one endpoint answers (defaults: a well-behaved container)."""

    dialect: str = "tgi"
    """``tgi``, ``messages``, ``lmi`` or ``vllm``: the container's output format."""
    text: str = TEXT
    finish_reason: str | None = None
    """The container's own value; default per dialect (``eos_token``, ``length``, ``stop``)."""
    report_usage: bool = True
    """Report token counts (TGI ``details``, Messages API usage chunk) or not."""
    part_bytes: int | None = None
    """Re-cut the streamed output into PayloadParts of this many bytes."""
    first_token_delay_s: float = 0.0
    gap_s: float = 0.0
    """Pause between payload parts."""
    stall_after: int | None = None
    """Stop sending (connection open) after this many parts."""
    exception_after: int | None = None
    """Send an exception frame after this many parts."""
    exception: str = "ModelStreamError"
    inband_error_after: int | None = None
    """The container reports an error in its own format after this many tokens."""
    error: tuple[int, str, dict[str, Any]] | None = None
    """(HTTP status, x-amzn-ErrorType, JSON body) instead of an answer."""
    error_headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Received:
    """One request as the fake saw it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class FakeSageMaker:
    """State and handlers of the fake runtime; endpoints are keyed by name."""

    def __init__(self) -> None:
        self.endpoints: dict[str, FakeEndpoint] = {}
        self.requests: deque[Received] = deque(maxlen=256)
        self.disconnects = 0
        self.completed_streams = 0
        self.open_streams = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/endpoints/{name}/invocations", self.invoke)
        app.router.add_post("/endpoints/{name}/invocations-response-stream", self.invoke_stream)
        return app

    async def _receive(
        self, request: web.Request
    ) -> tuple[FakeEndpoint, dict[str, Any]] | web.Response:
        body = orjson.loads(await request.read())
        self.requests.append(Received(request.path, dict(request.headers), body))
        name = request.match_info["name"]
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            message = f"Endpoint {name} of account 123456789012 not found."
            return _error_response(400, "ValidationError", {"message": message}, {})
        if endpoint.error is not None:
            status, kind, payload = endpoint.error
            return _error_response(status, kind, payload, endpoint.error_headers)
        return endpoint, body

    async def invoke(self, request: web.Request) -> web.Response:
        received = await self._receive(request)
        if isinstance(received, web.Response):
            return received
        endpoint, body = received
        return web.Response(
            body=orjson.dumps(_non_stream(endpoint, body)), content_type="application/json"
        )

    async def invoke_stream(self, request: web.Request) -> web.StreamResponse:
        received = await self._receive(request)
        if isinstance(received, web.Response):
            return received
        endpoint, body = received
        parts = _cut(_stream_records(endpoint, body), endpoint.part_bytes)
        response = web.StreamResponse(
            headers={
                "Content-Type": STREAM_CONTENT_TYPE,
                "X-Amzn-SageMaker-Content-Type": "text/event-stream",
                "x-Amzn-Invoked-Production-Variant": "AllTraffic",
            }
        )
        await response.prepare(request)
        self.open_streams += 1
        try:
            await self._send(response, endpoint, parts)
        except (asyncio.CancelledError, ConnectionError):
            self.disconnects += 1
            raise
        finally:
            self.open_streams -= 1
        self.completed_streams += 1
        return response

    async def _send(
        self, response: web.StreamResponse, endpoint: FakeEndpoint, parts: list[bytes]
    ) -> None:
        await asyncio.sleep(endpoint.first_token_delay_s)
        for i, part in enumerate(parts):
            if i == endpoint.stall_after:
                await asyncio.sleep(_MAX_STALL_S)
            if i == endpoint.exception_after:
                code = (
                    "ModelInvocationTimeExceeded"
                    if endpoint.exception == "ModelStreamError"
                    else None
                )
                await response.write(exception_frame(endpoint.exception, "model failed", code))
                return
            if i and endpoint.gap_s:
                await asyncio.sleep(endpoint.gap_s)
            await response.write(payload_part(part))
        await response.write_eof()


def _error_response(
    status: int, kind: str, payload: dict[str, Any], headers: dict[str, str]
) -> web.Response:
    """A modeled error as the rest-json protocol carries it."""
    return web.Response(
        status=status,
        body=orjson.dumps(payload),
        content_type="application/json",
        headers={"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/", **headers},
    )


def _cut(records: list[bytes], size: int | None) -> list[bytes]:
    if size is None:
        return records
    data = b"".join(records)
    return [data[i : i + size] for i in range(0, len(data), size)]


def _usage(body: dict[str, Any], completion: int) -> dict[str, int]:
    prompt = len(orjson.dumps(body.get("messages") or body.get("inputs"))) // 4
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def stream_output(endpoint: FakeEndpoint, body: dict[str, Any]) -> bytes:
    """Everything the endpoint's container streams for ``body``, as one byte string."""
    return b"".join(_stream_records(endpoint, body))


def _stream_records(endpoint: FakeEndpoint, body: dict[str, Any]) -> list[bytes]:
    tokens = tokens_of(endpoint.text)
    if endpoint.dialect in ("messages", "vllm"):
        return _openai_records(endpoint, body, tokens)
    records: list[bytes] = []
    native = _NativeStream(endpoint, body, tokens)
    for i, token in enumerate(tokens):
        if i == endpoint.inband_error_after:
            records.append(native.error())
            return records
        records.append(native.token(i, token, last=False))
    records.append(native.token(len(tokens), "</s>", last=True))
    return records


class _NativeStream:
    """TGI SSE events or LMI jsonlines, one per token."""

    def __init__(self, endpoint: FakeEndpoint, body: dict[str, Any], tokens: list[str]) -> None:
        self.endpoint = endpoint
        self.body = body
        self.count = len(tokens) + 1
        self.is_tgi = endpoint.dialect == "tgi"

    def token(self, i: int, text: str, *, last: bool) -> bytes:
        special = last and self.is_tgi
        token: dict[str, Any] = {"id": 100 + i, "text": "" if last and not self.is_tgi else text}
        if self.is_tgi:
            token.update(logprob=-0.5, special=special)
        else:
            token["log_prob"] = -0.5
        obj: dict[str, Any] = {"token": token}
        if self.is_tgi:
            obj.update(index=i, generated_text=None, details=None)
        if last:
            obj["generated_text"] = self.endpoint.text
            obj["details"] = self.details()
        return self.frame(obj)

    def details(self) -> dict[str, Any] | None:
        reason = self.endpoint.finish_reason or ("eos_token" if self.is_tgi else "length")
        if not self.endpoint.report_usage:
            return {"finish_reason": reason}
        usage = _usage(self.body, self.count)
        details: dict[str, Any] = {"finish_reason": reason, "generated_tokens": self.count}
        details["input_length" if self.is_tgi else "prompt_tokens"] = usage["prompt_tokens"]
        return details

    def error(self) -> bytes:
        if self.is_tgi:
            return self.frame(
                {"error": "Request failed during generation", "error_type": "generation"}
            )
        token = {"id": -1, "text": "", "log_prob": -1}
        return self.frame(
            {"token": token, "generated_text": None, "details": {"finish_reason": "error"}}
        )

    def frame(self, obj: dict[str, Any]) -> bytes:
        data = orjson.dumps(obj)
        return b"data:" + data + b"\n\n" if self.is_tgi else data + b"\n"


def _openai_records(endpoint: FakeEndpoint, body: dict[str, Any], tokens: list[str]) -> list[bytes]:
    prefix = b"data:" if endpoint.dialect == "messages" else b"data: "
    base = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": body.get("model"),
    }
    records: list[bytes] = []
    for i, token in enumerate(tokens):
        if i == endpoint.inband_error_after:
            error = {"error": {"message": "generation failed", "http_status_code": 500}}
            return [*records, prefix + orjson.dumps(error) + b"\n\n"]
        delta = {"role": "assistant", "content": token} if i == 0 else {"content": token}
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
        records.append(prefix + orjson.dumps({**base, "choices": [choice]}) + b"\n\n")
    reason = endpoint.finish_reason or "stop"
    final = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": reason}
    records.append(prefix + orjson.dumps({**base, "choices": [final]}) + b"\n\n")
    options = body.get("stream_options") or {}
    if endpoint.report_usage and options.get("include_usage"):
        usage: dict[str, Any] = {**base, "choices": [], "usage": _usage(body, len(tokens))}
        records.append(prefix + orjson.dumps(usage) + b"\n\n")
    records.append(prefix + b"[DONE]\n\n")
    return records


def _non_stream(endpoint: FakeEndpoint, body: dict[str, Any]) -> Any:
    tokens = tokens_of(endpoint.text)
    if endpoint.dialect in ("messages", "vllm"):
        message = {"role": "assistant", "content": endpoint.text}
        reason = endpoint.finish_reason or "stop"
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": reason}
        answer: dict[str, Any] = {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 1,
            "model": body.get("model"), "choices": [choice],
        }  # fmt: skip
        if endpoint.report_usage:
            answer["usage"] = _usage(body, len(tokens))
        return answer
    native = _NativeStream(endpoint, body, tokens)
    details = native.details()
    if details is not None and "generated_tokens" in details:
        details["generated_tokens"] = len(tokens)
    result = {"generated_text": endpoint.text, "details": details}
    return [result] if endpoint.dialect == "tgi" else result


async def start_fake_sagemaker(fake: FakeSageMaker) -> tuple[web.AppRunner, int]:
    """Serve ``fake`` on a loopback port (handler cancellation on, to see disconnects at once)."""
    runner = web.AppRunner(fake.app(), handler_cancellation=True, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, int(runner.addresses[0][1])
