"""LiteLLM proxy (or any OpenAI-compatible server) as an upstream, over one pooled aiohttp session.

Deadlines per phase, from ``UpstreamConfig``: connect (TCP), first byte (response headers), idle
(gap between two chunks once streaming, checked by one ``Watchdog`` per stream rather than a timer
per chunk) and total. The gateway sends its own credential, never the client's, and only the
allow-listed body it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Final

import aiohttp

from gateway.config import UpstreamConfig
from gateway.errors import GatewayError, UpstreamProtocolError, UpstreamTimeout
from gateway.sse import DONE_DATA, SSEDecoder, SSEEvent
from gateway.upstreams.base import UpstreamRequest
from gateway.upstreams.errors import error_from_event, error_from_status, map_upstream_errors
from gateway.watchdog import Watchdog
from gateway.wire import Chunk, Payload, dumps

_MAX_ERROR_BODY_BYTES: Final = 64 * 1024
_MAX_BODY_BYTES: Final = 64 * 1024 * 1024
_EOF_GRACE_S: Final = 0.5


class LiteLLMUpstream:
    """An OpenAI-wire upstream; ``open`` it inside a running loop, ``aclose`` it at shutdown."""

    def __init__(self, name: str, config: UpstreamConfig, session: aiohttp.ClientSession) -> None:
        self.name = name
        self._config = config
        self._session = session
        base = config.base_url.rstrip("/")
        self._chat_url = f"{base}/v1/chat/completions"
        self._embeddings_url = f"{base}/v1/embeddings"
        self._headers = {"Content-Type": "application/json"}
        if config.api_key is not None:
            self._headers["Authorization"] = f"Bearer {config.api_key.reveal()}"

    @classmethod
    def open(cls, name: str, config: UpstreamConfig) -> LiteLLMUpstream:
        """Create the upstream with its own connection pool (call from the event loop)."""
        connector = aiohttp.TCPConnector(
            limit=config.max_connections, limit_per_host=0, ttl_dns_cache=10, keepalive_timeout=30
        )
        session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=config.connect_timeout_s),
            # No compression: it would delay every SSE chunk.
            skip_auto_headers=("Accept-Encoding", "User-Agent"),
            raise_for_status=False,
        )
        return cls(name, config, session)

    async def aclose(self) -> None:
        await self._session.close()

    async def complete(self, request: UpstreamRequest) -> Payload:
        return await self._call(self._chat_url, request)

    async def embed(self, request: UpstreamRequest) -> Payload:
        return await self._call(self._embeddings_url, request)

    async def _call(self, url: str, request: UpstreamRequest) -> Payload:
        total = self._config.total_timeout_s
        with map_upstream_errors(self.name, "total", total):
            async with asyncio.timeout(total):
                resp = await self._post(url, request)
                try:
                    if resp.status != 200:
                        await self._raise_for_status(resp)
                    body = await _read_bounded(resp, _MAX_BODY_BYTES)
                finally:
                    resp.release()
        return Payload(body)

    @contextlib.asynccontextmanager
    async def stream(self, request: UpstreamRequest) -> AsyncIterator[AsyncIterator[list[Chunk]]]:
        loop = asyncio.get_running_loop()
        config = self._config
        deadline = loop.time() + config.total_timeout_s
        with map_upstream_errors(self.name, "first_byte", config.first_byte_timeout_s):
            async with asyncio.timeout(config.first_byte_timeout_s):
                resp = await self._post(self._chat_url, request)
        state = _StreamState()
        watchdog = Watchdog(loop, lambda now: _expire(resp, now, deadline, config))
        try:
            if resp.status != 200:
                # The error body gets the same deadline as the headers before it.
                with map_upstream_errors(self.name, "first_byte", config.first_byte_timeout_s):
                    async with asyncio.timeout(config.first_byte_timeout_s):
                        await self._raise_for_status(resp)
            yield self._chunks(resp, watchdog, state, deadline)
        finally:
            watchdog.close()
            if state.done:
                await _finish_body(resp)
            else:
                resp.close()  # drop the connection: the upstream stops generating

    async def _post(self, url: str, request: UpstreamRequest) -> aiohttp.ClientResponse:
        headers = self._headers | {"x-request-id": request.request_id}
        return await self._session.post(url, data=dumps(request.body), headers=headers)

    async def _raise_for_status(self, resp: aiohttp.ClientResponse) -> None:
        try:
            body = await _read_bounded(resp, _MAX_ERROR_BODY_BYTES)
        except UpstreamProtocolError:
            body = b""
        raise error_from_status(resp.status, body, resp.headers, self.name)

    async def _chunks(
        self,
        resp: aiohttp.ClientResponse,
        watchdog: Watchdog,
        state: _StreamState,
        deadline: float,
    ) -> AsyncIterator[list[Chunk]]:
        decoder = SSEDecoder(self._config.max_event_bytes)
        content = resp.content
        clock = asyncio.get_running_loop().time
        idle = self._config.idle_timeout_s
        with map_upstream_errors(self.name, "idle", idle):
            while True:
                watchdog.arm(min(clock() + idle, deadline))
                data = await content.readany()
                watchdog.disarm()
                events = decoder.feed(data) if data else decoder.flush()
                batch, error = self._batch(events, state)
                if batch:
                    yield batch
                if error is not None:
                    raise error
                if state.done:
                    return
                if not data:
                    raise UpstreamProtocolError(
                        f"upstream {self.name!r} ended the stream before [DONE]"
                    )

    def _batch(
        self, events: list[SSEEvent], state: _StreamState
    ) -> tuple[list[Chunk], GatewayError | None]:
        """The chunks of one read, up to ``[DONE]`` or an error event (returned, to raise after
        the chunks before it were delivered)."""
        batch: list[Chunk] = []
        for event in events:
            if event.data == DONE_DATA:
                state.done = True
                break
            chunk = Chunk(event.data)
            # Parsed (about a microsecond with orjson) so that nothing but JSON objects reaches
            # clients: openai-node throws on non-JSON data. The raw bytes are what is sent, unless
            # the event spanned several ``data:`` lines: those are re-serialised onto one line.
            if chunk.obj.get("error"):
                return batch, error_from_event(chunk.obj, self.name)
            if b"\n" in event.data:
                chunk = Chunk(obj=chunk.obj)
            batch.append(chunk)
        return batch, None


class _StreamState:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = False


def _expire(
    resp: aiohttp.ClientResponse, now: float, deadline: float, config: UpstreamConfig
) -> None:
    if now >= deadline:
        resp.content.set_exception(UpstreamTimeout("total", config.total_timeout_s))
    else:
        resp.content.set_exception(UpstreamTimeout("idle", config.idle_timeout_s))


async def _read_bounded(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for data in resp.content.iter_any():
        size += len(data)
        if size > limit:
            raise UpstreamProtocolError(f"upstream body larger than {limit} bytes")
        parts.append(data)
    return b"".join(parts)


async def _finish_body(resp: aiohttp.ClientResponse) -> None:
    """After ``[DONE]``, read the body's end so the pooled connection can be reused."""
    if not resp.content.is_eof():
        try:
            async with asyncio.timeout(_EOF_GRACE_S):
                while await resp.content.readany():
                    pass
        except (TimeoutError, aiohttp.ClientError):
            resp.close()
            return
    resp.release()
