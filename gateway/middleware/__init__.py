"""The header-phase middlewares, in one ordered list (first entry = outermost).

| # | middleware  | does                                                                  |
|---|-------------|-----------------------------------------------------------------------|
| 1 | metrics     | counts every request by route and final status, times it              |
| 2 | errors      | renders ``GatewayError`` and router errors as OpenAI error bodies     |
| 3 | request_id  | assigns the request id and context (header added on prepare)          |
| 4 | cors        | answers preflights for allowed origins (response headers: on prepare) |
| 5 | auth        | credential -> principal (public paths exempt); 401 otherwise          |
| 6 | tenancy     | tenant enabled, targeted app = token's app, admin permissions; 403    |
|   | ratelimit   | response hook: ``x-ratelimit-*`` headers; admission (one store round  |
|   |             | trip for request rate, token reservation, stream slots) needs the     |
|   |             | body, so it runs in ``pipeline`` after tenancy, before the upstream   |
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.auth.authenticator import Authenticator
from gateway.auth.policy import AccessPolicy
from gateway.config import GatewayConfig
from gateway.middleware.auth import auth_middleware
from gateway.middleware.cors import cors_middleware, cors_response_headers
from gateway.middleware.errors import errors_middleware
from gateway.middleware.metrics import metrics_middleware
from gateway.middleware.ratelimit import ratelimit_headers
from gateway.middleware.request_id import request_id_header, request_id_middleware
from gateway.middleware.tenancy import tenancy_middleware
from gateway.telemetry import Metrics


def build_middlewares(
    config: GatewayConfig,
    metrics: Metrics,
    authenticator: Authenticator,
    policy: AccessPolicy,
    public_paths: frozenset[str],
) -> list[Middleware]:
    """The middlewares in order, outermost first."""
    return [
        metrics_middleware(metrics),
        errors_middleware(config.server.max_body_bytes),
        request_id_middleware(),
        cors_middleware(config.server.cors_origins),
        auth_middleware(authenticator, public_paths),
        tenancy_middleware(policy),
    ]


def install_response_hooks(app: web.Application, config: GatewayConfig) -> None:
    """Headers every response carries, added just before the headers are sent (also for SSE)."""
    app.on_response_prepare.append(request_id_header)
    app.on_response_prepare.append(ratelimit_headers)
    if config.server.cors_origins:
        app.on_response_prepare.append(cors_response_headers(config.server.cors_origins))
