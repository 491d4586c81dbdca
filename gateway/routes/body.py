"""Reading the request body within the configured size limit, refusing new work while draining."""

from __future__ import annotations

from aiohttp import web

from gateway.errors import ServerShuttingDown
from gateway.keys import IN_FLIGHT
from gateway.validation import parse_body
from gateway.wire import JSONObject


async def read_json(request: web.Request) -> JSONObject:
    """The JSON object body (413 past ``server.max_body_bytes``, via aiohttp's limit).

    Raises:
        ServerShuttingDown: the worker is draining.
        InvalidRequest: not a JSON object.
    """
    if request.app[IN_FLIGHT].draining:
        raise ServerShuttingDown("the gateway is shutting down; retry", retry_after_s=1.0)
    return parse_body(await request.read())
