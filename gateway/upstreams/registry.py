"""Model alias -> (model config, upstream) resolution, and ownership of the upstream clients.

The SageMaker client stack (aioboto3, botocore: about 10 MB per worker) is imported only when a
SageMaker upstream is configured.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.config import GatewayConfig, ModelConfig, ModelKind
from gateway.errors import ModelNotFound
from gateway.upstreams.base import Upstream
from gateway.upstreams.litellm import LiteLLMUpstream


class UpstreamRegistry:
    """Resolves models to upstreams; opens the clients at start-up and closes them at shutdown."""

    def __init__(self, config: GatewayConfig) -> None:
        self._config = config
        self._models = {alias: m for alias, m in config.models.items() if m.status == "active"}
        self._upstreams: dict[str, Upstream] = {}

    async def start(self) -> None:
        """Open one pooled client per configured upstream (inside the worker's event loop)."""
        for name, up in self._config.upstreams.items():
            match up.kind:
                case "litellm" | "openai":
                    self._upstreams[name] = LiteLLMUpstream.open(name, up)
                case "sagemaker":
                    from gateway.upstreams.sagemaker import SageMakerUpstream  # deferred: see above

                    self._upstreams[name] = await SageMakerUpstream.open(name, up)

    def models(self) -> Mapping[str, ModelConfig]:
        """The active models by alias."""
        return self._models

    def resolve(self, alias: str, kind: ModelKind) -> tuple[ModelConfig, Upstream]:
        """The model and its upstream.

        Raises:
            ModelNotFound: unknown, disabled, or not of ``kind``.
        """
        model = self._models.get(alias)
        if model is None or model.kind != kind:
            raise ModelNotFound(
                f"The model '{alias}' does not exist or you do not have access to it.",
                param="model",
            )
        return model, self._upstreams[model.upstream]

    async def aclose(self) -> None:
        """Close every upstream client."""
        for upstream in self._upstreams.values():
            await upstream.aclose()
        self._upstreams.clear()
