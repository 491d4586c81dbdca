"""A precise HTTP/1.1 keep-alive client: a raw asyncio ``Protocol`` timed with ``perf_counter_ns``.

Used for latency at concurrency 1, for streams (time to first ``data:`` event and the gaps between
events, stamped when the bytes that complete an event arrive) and, when ``wrk`` is missing, as the
throughput driver. Responses are framed by ``Content-Length`` or chunked encoding.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Final, cast

import orjson

MODEL: Final = "bench-chat"
PATH: Final = "/v1/chat/completions"
_MESSAGES: Final = [{"role": "user", "content": "Hello, benchmark!"}]


def request_body(*, stream: bool) -> bytes:
    """The chat request every driver sends (compact JSON, like the gateway forwards it)."""
    body: dict[str, object] = {"model": MODEL, "messages": _MESSAGES, "max_tokens": 16}
    if stream:
        body["stream"] = True
    return orjson.dumps(body)


AUTHORIZATION: dict[str, str] = {}
"""The Authorization header, set once ``bench.run`` minted the token; every driver sends it."""


def http_request(port: int, body: bytes, path: str = PATH) -> bytes:
    """A complete ``POST`` with a ``Content-Length`` body (and the bench's token)."""
    auth = "".join(f"{name}: {value}\r\n" for name, value in AUTHORIZATION.items())
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class ProtocolError(Exception):
    """The server's bytes are not a response this client understands."""


@dataclass(slots=True)
class Result:
    """One response: status, timestamps (ns) and, for SSE, when each ``data:`` event completed."""

    status: int = 0
    sent_ns: int = 0
    done_ns: int = 0
    events_ns: list[int] = field(default_factory=list)
    done_event: bool = False
    body_bytes: int = 0
    body: bytes = b""


class _Parser:
    """Incremental response parser (one response at a time)."""

    def __init__(self, result: Result, *, keep_body: bool, sse: bool) -> None:
        self.r = result
        self._keep = keep_body
        self._sse = sse
        self._buf = bytearray()
        self._body = bytearray()
        self._events = bytearray()
        self._state = "head"
        self._left = 0
        self.close = False
        self.done = False

    def feed(self, data: bytes, now: int) -> None:
        self._buf += data
        while not self.done and self._step(now):
            pass

    def _step(self, now: int) -> bool:  # noqa: C901 -- one small state machine
        buf = self._buf
        if self._state == "head":
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            self._head(bytes(buf[:end]).lower())
            del buf[: end + 4]
            if self._state == "length" and self._left == 0:
                self._finish(now)
            return True
        if self._state == "length":
            take = min(self._left, len(buf))
            self._data(bytes(buf[:take]), now)
            del buf[:take]
            self._left -= take
            if self._left == 0:
                self._finish(now)
            return False
        if self._state == "size":
            eol = buf.find(b"\r\n")
            if eol < 0:
                return False
            self._left = int(bytes(buf[:eol]).split(b";", 1)[0], 16)
            del buf[: eol + 2]
            self._state = "data" if self._left else "trailer"
            return True
        if self._state == "data":
            take = min(self._left, len(buf))
            if take == 0:
                return False
            self._data(bytes(buf[:take]), now)
            del buf[:take]
            self._left -= take
            if self._left == 0:
                self._state = "crlf"
            return True
        if self._state == "crlf":
            if len(buf) < 2:
                return False
            del buf[:2]
            self._state = "size"
            return True
        eol = buf.find(b"\r\n")  # trailer
        if eol < 0:
            return False
        del buf[: eol + 2]
        if eol == 0:
            self._finish(now)
        return True

    def _head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"http/1."):
            raise ProtocolError(f"bad status line {lines[0]!r}")
        self.r.status = int(parts[1])
        length: int | None = None
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            value = value.strip()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = value == b"chunked"
            elif name == b"connection":
                self.close = value == b"close"
        if chunked:
            self._state = "size"
        elif length is not None:
            self._state, self._left = "length", length
        else:
            raise ProtocolError("response without Content-Length or chunked encoding")

    def _data(self, data: bytes, now: int) -> None:
        self.r.body_bytes += len(data)
        if self._keep:
            self._body += data
        if not self._sse:
            return
        events = self._events
        events += data
        while (end := events.find(b"\n\n")) >= 0:
            event = bytes(events[:end])
            del events[: end + 2]
            if event.startswith(b"data:"):
                if event[5:].strip() == b"[DONE]":
                    self.r.done_event = True
                else:
                    self.r.events_ns.append(now)

    def _finish(self, now: int) -> None:
        self.r.done_ns = now
        self.r.body = bytes(self._body)
        self.done = True


class Connection(asyncio.Protocol):
    """One keep-alive connection; ``await request(...)`` one at a time."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._parser: _Parser | None = None
        self._waiter: asyncio.Future[Result] | None = None
        self.closed = False

    @classmethod
    async def open(cls, port: int, host: str = "127.0.0.1") -> Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(cls, host, port)
        return conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter_ns()
        parser, waiter = self._parser, self._waiter
        if parser is None or waiter is None:
            return
        try:
            parser.feed(data, now)
        except (ProtocolError, ValueError) as exc:
            self._parser = self._waiter = None
            if not waiter.done():
                waiter.set_exception(exc)
            return
        if parser.done:
            self._parser = self._waiter = None
            if parser.close:
                self.close()
            if not waiter.done():
                waiter.set_result(parser.r)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._transport = None
        waiter = self._waiter
        self._parser = self._waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    async def request(self, raw: bytes, *, sse: bool = False, keep_body: bool = False) -> Result:
        """Send a complete request and wait for the whole response."""
        transport = self._transport
        if transport is None or self.closed:
            raise ConnectionError("connection closed")
        result = Result()
        self._parser = _Parser(result, keep_body=keep_body, sse=sse)
        waiter: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        result.sent_ns = time.perf_counter_ns()
        transport.write(raw)
        return await waiter

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self.closed = True


class Client:
    """A connection that reconnects when the server closed it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._conn: Connection | None = None

    async def request(self, raw: bytes, *, sse: bool = False, keep_body: bool = False) -> Result:
        if self._conn is None or self._conn.closed:
            self._conn = await Connection.open(self.port)
        return await self._conn.request(raw, sse=sse, keep_body=keep_body)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
