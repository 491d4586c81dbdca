"""The actual token count of a request, for settlement: reported usage, else an estimate.

Upstream ``usage.total_tokens`` is used when present (non-streamed responses; the final chunk of a
stream when the client sent ``stream_options.include_usage``). Otherwise the count is the prompt
estimate plus the streamed text (content and tool-call arguments) at UTF-8 bytes / 4, the same
estimate as the reservation's. A stream that ends early (disconnect, upstream error) is charged
for what was streamed so far.
"""

from __future__ import annotations

from typing import Final

from gateway.wire import Chunk, JSONObject, WireError

_BYTES_PER_TOKEN: Final = 4


def reported_total(obj: JSONObject) -> int | None:
    """``usage.total_tokens`` of a response or chunk, if it carries one."""
    usage = obj.get("usage")
    if isinstance(usage, dict):
        total = usage.get("total_tokens")
        if isinstance(total, int) and total >= 0:
            return total
    return None


class StreamMeter:
    """Counts a stream's tokens chunk by chunk (``feed``), then ``total``."""

    __slots__ = ("_reported", "_streamed_bytes")

    def __init__(self) -> None:
        self._reported: int | None = None
        self._streamed_bytes = 0

    def feed(self, chunk: Chunk) -> None:
        """Account one upstream chunk (its text also counts when the usage chunk never comes)."""
        try:
            obj = chunk.obj
        except WireError:
            return
        total = reported_total(obj)
        if total is not None:
            self._reported = total
        self._streamed_bytes += _text_bytes(obj)

    def total(self, prompt_tokens: int) -> int:
        """The tokens to charge."""
        if self._reported is not None:
            return self._reported
        return prompt_tokens + -(-self._streamed_bytes // _BYTES_PER_TOKEN)


def _text_bytes(obj: JSONObject) -> int:
    size = 0
    for choice in obj.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            continue
        content = delta.get("content")
        if isinstance(content, str):
            size += len(content.encode())
        for call in delta.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                size += len(function["arguments"].encode())
    return size
