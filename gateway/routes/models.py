"""``GET /v1/models`` and ``GET /v1/models/{model}``: the active models, OpenAI-shaped."""

from __future__ import annotations

from aiohttp import web

from gateway.config import ModelConfig
from gateway.errors import ModelNotFound
from gateway.keys import PIPELINE
from gateway.wire import JSONObject, dumps


def _model_object(alias: str, model: ModelConfig) -> JSONObject:
    return {"id": alias, "object": "model", "created": model.created, "owned_by": model.owned_by}


async def list_models(request: web.Request) -> web.Response:
    """The model list."""
    models = request.app[PIPELINE].models()
    data = [_model_object(alias, m) for alias, m in models.items()]
    return web.Response(
        body=dumps({"object": "list", "data": data}), content_type="application/json"
    )


async def retrieve_model(request: web.Request) -> web.Response:
    """One model.

    Raises:
        ModelNotFound: unknown or disabled.
    """
    alias = request.match_info["model"]
    model = request.app[PIPELINE].models().get(alias)
    if model is None:
        raise ModelNotFound(
            f"The model '{alias}' does not exist or you do not have access to it.", param="model"
        )
    return web.Response(body=dumps(_model_object(alias, model)), content_type="application/json")
