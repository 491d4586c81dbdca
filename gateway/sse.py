"""Sans-io server-sent events: an incremental, bounded decoder and the encoder's constants.

The decoder accepts ``\\n``, ``\\r\\n`` and ``\\r`` line ends split anywhere across feeds, ignores
comments and unknown fields, joins multi-line ``data`` with ``\\n`` and refuses any event larger
than ``max_event_bytes`` (so a hostile or broken upstream cannot grow memory without bound).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

DONE: Final = b"data: [DONE]\n\n"
KEEPALIVE: Final = b": keep-alive\n\n"
DONE_DATA: Final = b"[DONE]"


def encode_data(data: bytes) -> bytes:
    """Frame one event: ``data: <data>\\n\\n`` (``data`` must not contain line breaks)."""
    return b"data: " + data + b"\n\n"


class SSEProtocolError(ValueError):
    """The byte stream is not acceptable SSE (an event exceeds the size bound)."""


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event."""

    data: bytes
    event: str = ""


class SSEDecoder:
    """Incremental SSE decoder: ``feed(bytes) -> events``, ``flush() -> events`` at end of input."""

    __slots__ = ("_data", "_event", "_max", "_pending", "_size")

    def __init__(self, max_event_bytes: int = 1024 * 1024) -> None:
        self._max = max_event_bytes
        self._pending = b""
        self._data: list[bytes] = []
        self._event = ""
        self._size = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume bytes; return the events they complete.

        Raises:
            SSEProtocolError: an event grew past the size bound.
        """
        buf = self._pending + chunk if self._pending else chunk
        if b"\r" in buf:
            buf = _normalise_line_ends(buf)
        lines = buf.split(b"\n")
        self._pending = lines.pop()
        events: list[SSEEvent] = []
        for line in lines:
            self._line(line, events)
        if self._size + len(self._pending) > self._max:
            raise SSEProtocolError(f"SSE event larger than {self._max} bytes")
        return events

    def flush(self) -> list[SSEEvent]:
        """End of input: a final unterminated line or event is dispatched."""
        events: list[SSEEvent] = []
        if self._pending:
            self._line(self._pending.rstrip(b"\r"), events)
            self._pending = b""
        self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                events.append(SSEEvent(b"\n".join(self._data), self._event))
            self._data = []
            self._event = ""
            self._size = 0
            return
        if line[0] == 0x3A:  # ':' comment
            return
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._size += len(value) + 1
            if self._size > self._max:
                raise SSEProtocolError(f"SSE event larger than {self._max} bytes")
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")


def _normalise_line_ends(buf: bytes) -> bytes:
    # A trailing CR may be the first half of CRLF split across feeds: keep it pending as is.
    if buf.endswith(b"\r"):
        return buf[:-1].replace(b"\r\n", b"\n").replace(b"\r", b"\n") + b"\r"
    return buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
