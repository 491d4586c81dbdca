"""Tenant and app isolation for authenticated requests, decided by ``AccessPolicy.admit``.

The app a request targets is the first label of its host (``chat.example.com``) when that names a
configured app, or the ``{app}`` of an ``/api/{app}/...`` path; a path naming an app that is not
configured is not a route (404). The tenant an admin route acts on is its ``{tenant}``. Headers and
body fields (``X-Tenant-Id``, OpenAI ``user``, ``metadata``) are never read here: they cannot
change whom a request acts for.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway.auth.policy import AccessPolicy
from gateway.errors import NotFound, PermissionDenied
from gateway.keys import REQUEST_CONTEXT


def tenancy_middleware(policy: AccessPolicy) -> Middleware:
    """The isolation middleware."""
    apps = policy.apps

    @web.middleware
    async def tenancy(request: web.Request, handler: Handler) -> web.StreamResponse:
        principal = request[REQUEST_CONTEXT].principal
        if principal is None:  # a public route
            return await handler(request)
        policy.admit(
            principal,
            target_app=_target_app(request, apps),
            route_tenant=request.match_info.get("tenant"),
        )
        return await handler(request)

    return tenancy


def _target_app(request: web.Request, apps: frozenset[str]) -> str | None:
    path_app = request.match_info.get("app")
    if path_app is not None and path_app not in apps:
        raise NotFound(f"Unknown request URL: {request.method} {request.path}")
    labels = (request.host or "").rsplit(":", 1)[0].split(".")
    host_app = labels[0].lower() if len(labels) > 1 and labels[0].lower() in apps else None
    if path_app is not None and host_app is not None and path_app != host_app:
        raise PermissionDenied("The host and the path name different apps.")
    return path_app or host_app
