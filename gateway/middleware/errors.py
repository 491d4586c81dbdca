"""Renders every error as an OpenAI error body; the only place that turns exceptions into responses.

``GatewayError`` -> its status, body and retry headers; aiohttp's router and body-size errors
(404, 405, 413) -> the matching ``GatewayError``; anything else -> an opaque 500, logged once with
the request id. A response that already started is never rendered over: streaming routes turn
their errors into an SSE error event themselves.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway.errors import (
    GatewayError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    error_body,
    internal_error,
)
from gateway.keys import REQUEST_CONTEXT

_log = logging.getLogger("gateway.errors")


def render(error: GatewayError) -> web.Response:
    """The HTTP response for ``error``."""
    return web.Response(
        body=error_body(error),
        status=error.http_status,
        content_type="application/json",
        headers=error.headers(),
    )


def _from_http_exception(
    exc: web.HTTPException, request: web.Request, max_body_bytes: int
) -> GatewayError:
    if exc.status == 404:
        return NotFound(f"Unknown request URL: {request.method} {request.path}")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return MethodNotAllowed(
            f"Method {request.method} is not allowed for {request.path}",
            allowed=exc.allowed_methods,
        )
    if exc.status == 413:
        return PayloadTooLarge(f"request body exceeds the limit of {max_body_bytes} bytes")
    return GatewayError(exc.reason, status=exc.status)


def errors_middleware(max_body_bytes: int) -> Middleware:
    """The error-rendering middleware."""

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except GatewayError as exc:
            return render(exc)
        except web.HTTPException as exc:
            return render(_from_http_exception(exc, request, max_body_bytes))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 -- logged below with the request id; client sees a 500
            ctx = request.get(REQUEST_CONTEXT)
            _log.exception(
                "unhandled error", extra={"fields": {"request_id": ctx and ctx.request_id}}
            )
            return render(internal_error())

    return errors
