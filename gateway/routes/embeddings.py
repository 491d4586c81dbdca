"""``POST /v1/embeddings`` in ``float`` or ``base64`` encoding (openai-python asks for base64)."""

from __future__ import annotations

from aiohttp import web

from gateway.keys import IN_FLIGHT, PIPELINE, REQUEST_CONTEXT
from gateway.routes.body import read_json
from gateway.validation import embedding_request


async def create_embeddings(request: web.Request) -> web.Response:
    """Serve one embeddings request."""
    embedding = embedding_request(await read_json(request))
    with request.app[IN_FLIGHT].track():
        payload = await request.app[PIPELINE].embed(request[REQUEST_CONTEXT], embedding)
    return web.Response(body=payload.raw, content_type="application/json")
