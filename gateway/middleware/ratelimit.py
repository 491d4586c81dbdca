"""The rate-limit headers on responses: ``x-ratelimit-*`` for callers that have limits.

Admission itself is body-phase work (the token reservation needs ``max_tokens`` and the prompt),
so it runs in the pipeline, in one store round trip together with the request-rate check; the
pipeline leaves the header values in the request context. This hook adds them when the response
is prepared, so JSON answers, SSE streams and error answers (429 included) all carry them.
"""

from __future__ import annotations

from aiohttp import web

from gateway.keys import REQUEST_CONTEXT


async def ratelimit_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` hook: copy the limiter's headers onto the response."""
    ctx = request.get(REQUEST_CONTEXT)
    if ctx is not None and ctx.response_headers:
        response.headers.update(ctx.response_headers)
