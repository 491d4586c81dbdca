"""CORS for browser chat UIs: preflights for allowed origins, exposed response headers.

Only exact, configured origins are allowed; no wildcard, no credentials mode (the bearer token
travels in ``Authorization``, not in cookies). Preflights from other origins get 403.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway.errors import PermissionDenied

ALLOWED_REQUEST_HEADERS: Final = frozenset(
    {"authorization", "content-type", "openai-organization", "openai-project", "openai-beta",
     "x-api-key", "x-request-id", "x-conversation-id"}
)  # fmt: skip
EXPOSED_HEADERS: Final = ", ".join(
    ("x-request-id", "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
     "x-ratelimit-reset-requests", "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens",
     "x-ratelimit-reset-tokens", "retry-after", "retry-after-ms", "x-should-retry",
     "x-conversation-id")
)  # fmt: skip
_MAX_AGE_S: Final = "600"


def _allowed_header(name: str) -> bool:
    return name in ALLOWED_REQUEST_HEADERS or name.startswith("x-stainless-")


def cors_middleware(origins: tuple[str, ...]) -> Middleware:
    """Answers CORS preflights (``OPTIONS`` with ``Access-Control-Request-Method``)."""
    allowed = frozenset(origins)

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
            return await handler(request)
        origin = request.headers.get("Origin", "")
        method = request.headers["Access-Control-Request-Method"].upper()
        asked = [
            h.strip().lower()
            for h in request.headers.get("Access-Control-Request-Headers", "").split(",")
            if h.strip()
        ]
        if (
            origin not in allowed
            or method not in ("GET", "POST")
            or not all(_allowed_header(h) for h in asked)
        ):
            raise PermissionDenied("CORS preflight refused for this origin, method or headers")
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                "Access-Control-Allow-Headers": ", ".join(asked),
                "Access-Control-Max-Age": _MAX_AGE_S,
                "Vary": "Origin",
            },
        )

    return cors


def cors_response_headers(
    origins: tuple[str, ...],
) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """``on_response_prepare`` hook adding CORS headers for allowed origins."""
    allowed = frozenset(origins)

    async def add(request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get("Origin")
        # Preflight answers set their own headers; a refused one must not carry any.
        if origin is not None and origin in allowed and request.method != "OPTIONS":
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
            response.headers.add("Vary", "Origin")

    return add
