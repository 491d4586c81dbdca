"""Counts and times every request by route template and final status (499: client went away)."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway.telemetry import Metrics

_CLIENT_CLOSED = 499


def metrics_middleware(metrics: Metrics) -> Middleware:
    """The request-metrics middleware."""
    requests, latency = metrics.requests, metrics.latency

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        clock = asyncio.get_running_loop().time
        start = clock()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except asyncio.CancelledError:
            status = _CLIENT_CLOSED
            raise
        finally:
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            requests.inc((route, str(status)))
            latency.observe(clock() - start, (route,))

    return count
