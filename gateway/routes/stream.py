"""Writes a pipeline stream to the client as SSE, with OpenAI's framing and failure semantics.

- The 200 is committed at the first chunk, or earlier when ``sse_keepalive_s`` passes without one
  (then ``: keep-alive`` comments follow until the first chunk). Errors before the commit are
  raised, so the client gets a real HTTP status; after it, they become a
  ``data: {"error": ...}`` event and the stream closes without ``[DONE]``.
- Writes are awaited (aiohttp drains past 64 KiB), so a slow reader slows the upstream read
  instead of growing a buffer; a reader stalled longer than ``client_write_timeout_s`` is cut off.
- A client disconnect cancels the handler (``handler_cancellation``), which leaves the pipeline's
  context and so closes the upstream at once.
- A shutdown that outlives the drain budget ends the stream with a ``server_shutdown`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Final

from aiohttp import web

from gateway import tasks
from gateway.config import ServerConfig
from gateway.errors import GatewayError, ServerShuttingDown, internal_error, sse_error_event
from gateway.keys import METRICS, REQUEST_CONTEXT
from gateway.sse import DONE, KEEPALIVE, encode_data
from gateway.watchdog import Watchdog
from gateway.wire import Chunk

SSE_HEADERS: Final = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
_FINAL_WRITE_S: Final = 1.0
_log = logging.getLogger("gateway.stream")


async def send_stream(
    request: web.Request,
    stream: AbstractAsyncContextManager[AsyncIterator[list[Chunk]]],
    server: ServerConfig,
    model: str,
) -> web.StreamResponse:
    """Serve ``stream`` as ``text/event-stream``.

    Raises:
        GatewayError: only before the response was committed.
    """
    metrics = request.app[METRICS]
    response = web.StreamResponse(headers=SSE_HEADERS)
    loop = asyncio.get_running_loop()
    guard = Watchdog(loop, lambda _now: _abort(request))
    metrics.open_streams.inc()
    try:
        async with stream as chunks:
            await _relay(request, response, aiter(chunks), server, model, guard)
    except BaseException as exc:
        error = _after_commit(exc, response)
        if error is None:
            raise
        await _final_event(response, error)
    finally:
        guard.close()
        metrics.open_streams.dec()
    return response


def _after_commit(exc: BaseException, response: web.StreamResponse) -> GatewayError | None:
    """The error event that ends a committed stream, or None to let ``exc`` propagate."""
    if not response.prepared:
        return None  # still time for a real HTTP status (rendered by the errors middleware)
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, asyncio.CancelledError):
        if not tasks.is_shutdown_cancel(exc):
            return None  # the client went away
        # The drain budget ran out: tell the client why, then end the response cleanly.
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
        return ServerShuttingDown("the gateway is shutting down; retry")
    if isinstance(exc, Exception):
        _log.error("stream failed", exc_info=exc)
        return internal_error()
    return None


async def _relay(
    request: web.Request,
    response: web.StreamResponse,
    iterator: AsyncIterator[list[Chunk]],
    server: ServerConfig,
    model: str,
    guard: Watchdog,
) -> None:
    """Commit the response, write each batch (a stalled reader trips ``guard``), then [DONE]."""
    loop = asyncio.get_running_loop()
    first = await _first_chunk(request, response, iterator, server.sse_keepalive_s)
    if not response.prepared:
        await response.prepare(request)
    request.app[METRICS].ttft.observe(loop.time() - request[REQUEST_CONTEXT].started_at, (model,))
    write_s = server.client_write_timeout_s
    batch = first
    while batch is not None:
        guard.arm(loop.time() + write_s)
        await response.write(_encode(batch))
        guard.disarm()
        batch = await anext(iterator, None)
    await response.write(DONE)


def _encode(batch: list[Chunk]) -> bytes:
    if len(batch) == 1:
        return encode_data(batch[0].raw)
    return b"".join([encode_data(chunk.raw) for chunk in batch])


async def _first_chunk(
    request: web.Request,
    response: web.StreamResponse,
    iterator: AsyncIterator[list[Chunk]],
    keepalive_s: float,
) -> list[Chunk] | None:
    """Wait for the first chunk; if it is slow, commit the 200 and send keep-alive comments.

    A timer (not a task) starts the keep-alive writer only when needed, so a prompt first chunk
    costs one timer.
    """
    keepalive: asyncio.Task[None] | None = None

    def start_keepalive() -> None:
        nonlocal keepalive
        keepalive = tasks.child(_keepalive(request, response, keepalive_s), name="sse-keepalive")

    timer = asyncio.get_running_loop().call_later(keepalive_s, start_keepalive)
    try:
        return await anext(iterator, None)
    finally:
        timer.cancel()
        if keepalive is not None:
            await tasks.cancel_and_wait(keepalive)


async def _keepalive(request: web.Request, response: web.StreamResponse, interval_s: float) -> None:
    if not response.prepared:
        await response.prepare(request)
    while True:
        await response.write(KEEPALIVE)
        await asyncio.sleep(interval_s)


async def _final_event(response: web.StreamResponse, error: GatewayError) -> None:
    """Best effort: the client may be gone or not reading."""
    with contextlib.suppress(ConnectionError, TimeoutError, RuntimeError):
        async with asyncio.timeout(_FINAL_WRITE_S):
            await response.write(sse_error_event(error))


def _abort(request: web.Request) -> None:
    """The client stopped reading: drop the connection (the handler then ends)."""
    _log.info("client stopped reading; aborting the stream")
    if request.transport is not None:
        request.transport.abort()
