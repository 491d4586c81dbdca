"""The ``Upstream`` protocol every model server adapter implements, and its request value.

Streams are async context managers: entering returns once the upstream accepted the request
(response headers received, errors before that raise a ``GatewayError`` while the gateway can still
answer with a status), iterating yields ``chat.completion.chunk`` payloads up to (not including)
``[DONE]`` in batches -- the chunks that arrived together, never empty -- so that a burst costs one
client write instead of one per chunk, and leaving always releases the upstream connection --
also when the consumer is cancelled because the client went away.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from gateway.config import ModelConfig
from gateway.wire import Chunk, JSONObject, Payload


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamRequest:
    """One call to an upstream."""

    request_id: str
    body: JSONObject
    """The OpenAI body to send, ``model`` already set to the upstream's target name."""
    model: ModelConfig | None = None
    """The model's configuration (SageMaker upstreams take endpoint and dialect from it)."""


class Upstream(Protocol):
    """A model server reachable with OpenAI-shaped requests."""

    name: str

    async def complete(self, request: UpstreamRequest) -> Payload:
        """A non-streamed ``chat.completion``.

        Raises:
            GatewayError: mapped upstream failures.
        """

    def stream(
        self, request: UpstreamRequest
    ) -> AbstractAsyncContextManager[AsyncIterator[list[Chunk]]]:
        """A streamed completion (see the module docstring for the phases)."""

    async def embed(self, request: UpstreamRequest) -> Payload:
        """An embeddings response.

        Raises:
            GatewayError: mapped upstream failures.
        """

    async def aclose(self) -> None:
        """Release pooled connections."""
