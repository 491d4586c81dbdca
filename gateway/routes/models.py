"""``GET /v1/models`` and ``GET /v1/models/{model}``: the models the caller may use, OpenAI-shaped.

Both answer from ``Pipeline.models(principal)``, the same function invocation is authorized by.
"""

from __future__ import annotations

from aiohttp import web

from gateway.config import ModelConfig
from gateway.keys import PIPELINE, REQUEST_CONTEXT
from gateway.wire import JSONObject, dumps


def _model_object(alias: str, model: ModelConfig) -> JSONObject:
    return {"id": alias, "object": "model", "created": model.created, "owned_by": model.owned_by}


async def list_models(request: web.Request) -> web.Response:
    """The model list."""
    models = request.app[PIPELINE].models(request[REQUEST_CONTEXT])
    data = [_model_object(alias, m) for alias, m in models.items()]
    return web.Response(
        body=dumps({"object": "list", "data": data}), content_type="application/json"
    )


async def retrieve_model(request: web.Request) -> web.Response:
    """One model.

    Raises:
        ModelNotFound: unknown, disabled or not permitted.
    """
    alias = request.match_info["model"]
    model = request.app[PIPELINE].model(request[REQUEST_CONTEXT], alias)
    return web.Response(body=dumps(_model_object(alias, model)), content_type="application/json")
