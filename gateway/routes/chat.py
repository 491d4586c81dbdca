"""``POST /v1/chat/completions``: JSON for ``stream: false``, SSE for ``stream: true``."""

from __future__ import annotations

from aiohttp import web

from gateway.keys import CONFIG, IN_FLIGHT, PIPELINE, REQUEST_CONTEXT
from gateway.routes.body import read_json
from gateway.routes.stream import send_stream
from gateway.validation import CONVERSATION_HEADER, chat_request


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """Serve one chat completion."""
    chat = chat_request(
        await read_json(request), conversation_header=request.headers.get(CONVERSATION_HEADER)
    )
    ctx = request[REQUEST_CONTEXT]
    pipeline = request.app[PIPELINE]
    with request.app[IN_FLIGHT].track():
        if chat.stream:
            return await send_stream(
                request, pipeline.stream(ctx, chat), request.app[CONFIG].server, chat.model
            )
        payload = await pipeline.complete(ctx, chat)
    return web.Response(body=payload.raw, content_type="application/json")
