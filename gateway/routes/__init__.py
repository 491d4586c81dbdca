"""The route table: OpenAI paths under ``/v1``, the existing REST API's under ``/api/v2``."""

from __future__ import annotations

from aiohttp import web

from gateway.routes import chat, embeddings, health, metrics, models


def add_routes(app: web.Application) -> None:
    """Register every route."""
    router = app.router
    for prefix in ("/v1", "/api/v2"):
        router.add_post(f"{prefix}/chat/completions", chat.chat_completions)
        router.add_get(f"{prefix}/models", models.list_models)
        router.add_get(f"{prefix}/models/{{model}}", models.retrieve_model)
    router.add_post("/v1/embeddings", embeddings.create_embeddings)
    router.add_get("/healthz", health.liveness)
    router.add_get("/api/v2/health", health.liveness)
    router.add_get("/readyz", health.readiness)
    router.add_get("/metrics", metrics.prometheus)
