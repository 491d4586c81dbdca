"""Authenticates every request except the public routes; the principal goes into the context.

One credential parser: ``Authorization: Bearer <token or key>`` (scheme case-insensitive, as
RFC 7235 says), else ``X-Api-Key: <key>``. Any other scheme is refused, never guessed at. The
credential is not forwarded anywhere and never appears in logs or error messages.
"""

from __future__ import annotations

import dataclasses

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from multidict import CIMultiDictProxy

from gateway.auth.authenticator import Authenticator
from gateway.errors import AuthenticationFailed
from gateway.keys import REQUEST_CONTEXT


def auth_middleware(authenticator: Authenticator, public_paths: frozenset[str]) -> Middleware:
    """The authentication middleware; ``public_paths`` (health, metrics) need no credential."""

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in public_paths:
            return await handler(request)
        principal = await authenticator.authenticate(credential(request.headers))
        ctx = request[REQUEST_CONTEXT]
        request[REQUEST_CONTEXT] = dataclasses.replace(ctx, principal=principal)
        return await handler(request)

    return auth


def credential(headers: CIMultiDictProxy[str]) -> str | None:
    """The presented credential, or None if there is none.

    Raises:
        AuthenticationFailed: an Authorization header that is not ``Bearer <credential>``.
    """
    authorization = headers.get("Authorization")
    if authorization is not None:
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value or " " in value:
            raise AuthenticationFailed("The Authorization header must be 'Bearer <credential>'.")
        return value
    key = headers.get("X-Api-Key", "").strip()
    return key or None
