"""Gives every request its id and context; every response carries ``x-request-id``."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway.context import RequestContext, new_request_id
from gateway.keys import REQUEST_CONTEXT


def request_id_middleware() -> Middleware:
    """Assigns the request context (the id is the gateway's own; client ids are not trusted)."""

    @web.middleware
    async def request_id(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[REQUEST_CONTEXT] = RequestContext(
            request_id=new_request_id(), started_at=asyncio.get_running_loop().time()
        )
        return await handler(request)

    return request_id


async def request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` hook: add ``x-request-id`` (also to errors and streams)."""
    ctx = request.get(REQUEST_CONTEXT)
    if ctx is not None:
        response.headers["x-request-id"] = ctx.request_id
