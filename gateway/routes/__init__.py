"""The route table: OpenAI paths under ``/v1`` (and ``/api/{app}/v1`` for path-addressed apps),
the existing REST API's under ``/api/v2``, admin routes under ``/admin/v1``."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from gateway.routes import admin, chat, embeddings, health, metrics, models, usage

PUBLIC_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics", "/api/v2/health"})
"""Paths served without credentials."""


def add_routes(app: web.Application) -> None:
    """Register every route."""
    router = app.router
    for prefix in ("/v1", "/api/v2", "/api/{app}/v1"):
        router.add_post(f"{prefix}/chat/completions", chat.chat_completions)
        router.add_get(f"{prefix}/models", models.list_models)
        router.add_get(f"{prefix}/models/{{model}}", models.retrieve_model)
    for prefix in ("/v1", "/api/{app}/v1"):
        router.add_post(f"{prefix}/embeddings", embeddings.create_embeddings)
    router.add_get("/v1/usage", usage.usage)
    router.add_get("/admin/v1/tenants/{tenant}/models", admin.tenant_models)
    router.add_get("/healthz", health.liveness)
    router.add_get("/api/v2/health", health.liveness)
    router.add_get("/readyz", health.readiness)
    router.add_get("/metrics", metrics.prometheus)
