"""Liveness (``/healthz``, ``/api/v2/health``) and readiness (``/readyz``: 503 while draining or
while an issuer's signing keys were never loaded)."""

from __future__ import annotations

from aiohttp import web

from gateway.keys import AUTHENTICATOR, IN_FLIGHT


async def liveness(request: web.Request) -> web.Response:
    """The process serves HTTP."""
    return web.json_response({"status": "ok"})


async def readiness(request: web.Request) -> web.Response:
    """Whether the load balancer should send new requests here."""
    if request.app[IN_FLIGHT].draining:
        return web.json_response({"status": "draining"}, status=503)
    if not request.app[AUTHENTICATOR].ready():
        return web.json_response({"status": "no signing keys loaded"}, status=503)
    return web.json_response({"status": "ready"})
