"""A fast mock OpenAI upstream: a raw asyncio ``Protocol`` on uvloop, every response pre-encoded.

``POST /v1/chat/completions`` answers a canned ``chat.completion`` (``Content-Length``), or, when
the body contains ``"stream":true`` / ``"stream": true``, a chunked ``text/event-stream`` of
``--chunks`` ``chat.completion.chunk`` events ``--chunk-gap-ms`` apart (the first one at once),
then ``data: [DONE]`` and the terminating chunk. HTTP/1.1 keep-alive; request bodies by
``Content-Length`` or chunked. ``GET /healthz`` answers 200; anything else 404.

Usage: ``python -m bench.mock --port 0 --chunks 20 --chunk-gap-ms 5`` (prints
``mock listening on PORT``; SIGTERM/SIGINT stop it).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Sequence
from typing import Final, cast

import orjson
import uvloop

MODEL: Final = "mock-model"
CREATED: Final = 1_700_000_000
_MAX_HEAD: Final = 64 * 1024


def completion_body() -> bytes:
    """The canned non-streamed answer."""
    return orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": CREATED,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello from the bench mock."},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
        }
    )


def chunk_event(index: int, count: int) -> bytes:
    """``data: <chat.completion.chunk>\\n\\n`` for chunk ``index`` of ``count``."""
    delta = {"role": "assistant"} if index == 0 else {}
    delta["content"] = f"tok{index} "
    last = index == count - 1
    obj = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": "stop" if last else None}],
    }
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class Responses:
    """Everything the mock sends, encoded once."""

    def __init__(self, chunks: int, gap_ms: float) -> None:
        body = completion_body()
        self.json = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        self.stream_head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        self.frames = [_http_chunk(chunk_event(i, chunks)) for i in range(chunks)]
        self.end = _http_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"
        self.gap_s = gap_ms / 1000.0
        self.ok = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
        self.not_found = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        self.bad = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _BadRequest(Exception):
    pass


def _parse_chunked(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    """Decode a chunked body starting at ``pos``: (body, end offset), or None if incomplete."""
    parts: list[bytes] = []
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        try:
            size = int(bytes(buf[pos:eol]).split(b";", 1)[0], 16)
        except ValueError as exc:
            raise _BadRequest from exc
        pos = eol + 2
        if size == 0:
            while True:  # trailer lines, then an empty line
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                if eol == pos:
                    return b"".join(parts), eol + 2
                pos = eol + 2
        if len(buf) < pos + size + 2:
            return None
        parts.append(bytes(buf[pos : pos + size]))
        pos += size + 2


def _header(lower_head: bytes, name: bytes) -> bytes | None:
    start = lower_head.find(b"\r\n" + name + b":")
    if start < 0:
        return None
    start += len(name) + 3
    end = lower_head.find(b"\r\n", start)
    return lower_head[start : end if end >= 0 else len(lower_head)].strip()


class MockProtocol(asyncio.Protocol):
    """One client connection; requests are answered in order (a stream holds the next ones)."""

    def __init__(self, responses: Responses) -> None:
        self._r = responses
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None
        self._busy = False
        self._close_after = False
        self._timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if not self._busy:
            self._serve()

    def _serve(self) -> None:
        while not self._busy and self._transport is not None:
            try:
                request = self._next_request()
            except _BadRequest:
                self._transport.write(self._r.bad)
                self._transport.close()
                return
            if request is None:
                return
            if self._respond(*request) and self._close_after:
                self._transport.close()

    def _next_request(self) -> tuple[bytes, bytes] | None:
        """(request line, body) of the next complete request, removed from the buffer."""
        buf = self._buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > _MAX_HEAD:
                raise _BadRequest
            return None
        lower = bytes(buf[:end]).lower()
        line_end = lower.find(b"\r\n")
        line = bytes(buf[: line_end if line_end >= 0 else end])
        self._close_after = _header(lower, b"connection") == b"close"
        length = _header(lower, b"content-length")
        if length is not None:
            try:
                size = int(length)
            except ValueError as exc:
                raise _BadRequest from exc
            if len(buf) < end + 4 + size:
                return None
            body = bytes(buf[end + 4 : end + 4 + size])
            del buf[: end + 4 + size]
            return line, body
        if _header(lower, b"transfer-encoding") == b"chunked":
            decoded = _parse_chunked(buf, end + 4)
            if decoded is None:
                return None
            del buf[: decoded[1]]
            return line, decoded[0]
        del buf[: end + 4]
        return line, b""

    def _respond(self, line: bytes, body: bytes) -> bool:
        """Answer one request; False while a timed stream is still being sent."""
        transport = self._transport
        assert transport is not None
        if line.startswith(b"POST /v1/chat/completions "):
            if b'"stream":true' in body or b'"stream": true' in body:
                return self._start_stream(transport)
            transport.write(self._r.json)
        elif line.startswith(b"GET /healthz "):
            transport.write(self._r.ok)
        else:
            transport.write(self._r.not_found)
        return True

    def _start_stream(self, transport: asyncio.Transport) -> bool:
        r = self._r
        if r.gap_s <= 0 or len(r.frames) <= 1:
            transport.write(b"".join((r.stream_head, *r.frames, r.end)))
            return True
        self._busy = True
        transport.write(r.stream_head + r.frames[0])
        self._schedule(self._loop.time(), 1)
        return False

    def _schedule(self, start: float, index: int) -> None:
        # Absolute times (start + i * gap), so timer lateness does not accumulate.
        self._timer = self._loop.call_at(start + index * self._r.gap_s, self._send, start, index)

    def _send(self, start: float, index: int) -> None:
        self._timer = None
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        r = self._r
        if index < len(r.frames) - 1:
            transport.write(r.frames[index])
            self._schedule(start, index + 1)
            return
        transport.write(r.frames[index] + r.end)
        self._busy = False
        if self._close_after:
            transport.close()
            return
        self._serve()


async def serve(port: int, responses: Responses, host: str = "127.0.0.1") -> None:
    """Serve until SIGTERM/SIGINT."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: MockProtocol(responses), host, port, backlog=4096, reuse_address=True
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bound = server.sockets[0].getsockname()[1]
    print(f"mock listening on {bound}", flush=True)
    await stop.wait()
    server.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.mock", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--chunks", type=int, default=20, help="chunks per streamed answer")
    parser.add_argument("--chunk-gap-ms", type=float, default=5.0, help="gap between chunks")
    args = parser.parse_args(argv)
    if args.chunks < 1:
        parser.error("--chunks must be >= 1")
    responses = Responses(args.chunks, args.chunk_gap_ms)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(args.port, responses, args.host))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
