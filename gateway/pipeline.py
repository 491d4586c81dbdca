"""Body-phase orchestration of one request, framework-free.

    admit -> redact input -> call upstream -> transform stream -> settle

Today's stages are authorize (may this principal call this model?), resolve (model -> upstream),
call upstream and the embedding encoding fix-up;
admission, redaction, transducers and settlement plug in here (each L1 package stays unaware of the
others). Streams are context managers so that leaving them -- normally, on error or on
cancellation -- always releases the upstream.
"""

from __future__ import annotations

import array
import base64
import contextlib
import sys
from collections.abc import AsyncIterator, Iterator, Mapping

from gateway.auth.policy import AccessPolicy
from gateway.config import ModelConfig, ModelKind
from gateway.context import ChatRequest, EmbeddingRequest, Principal, RequestContext
from gateway.errors import (
    AuthenticationFailed,
    GatewayError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from gateway.telemetry import Metrics
from gateway.upstreams.base import Upstream, UpstreamRequest
from gateway.upstreams.registry import UpstreamRegistry
from gateway.wire import Chunk, JSONObject, Payload, WireError


class Pipeline:
    """Serves validated requests through the configured upstreams."""

    def __init__(self, registry: UpstreamRegistry, policy: AccessPolicy, metrics: Metrics) -> None:
        self._registry = registry
        self._policy = policy
        self._metrics = metrics

    def models(self, ctx: RequestContext) -> Mapping[str, ModelConfig]:
        """The models the caller may call, by alias (exactly what invocation accepts)."""
        return self._policy.models_for(_principal(ctx))

    def model(self, ctx: RequestContext, alias: str) -> ModelConfig:
        """The model ``alias`` if the caller may call it.

        Raises:
            ModelNotFound: unknown, disabled or not permitted.
        """
        return self._policy.require_model(_principal(ctx), alias)

    def _resolve(
        self, ctx: RequestContext, alias: str, kind: ModelKind
    ) -> tuple[ModelConfig, Upstream]:
        self._policy.require_model(_principal(ctx), alias)
        return self._registry.resolve(alias, kind)

    async def complete(self, ctx: RequestContext, request: ChatRequest) -> Payload:
        """A non-streamed chat completion.

        Raises:
            GatewayError: unknown model or upstream failure.
        """
        model, upstream = self._resolve(ctx, request.model, "chat")
        with self._observe(upstream.name):
            payload = await upstream.complete(_upstream_request(ctx, request.body, model))
            _require_object(payload, upstream.name)
        return payload

    @contextlib.asynccontextmanager
    async def stream(
        self, ctx: RequestContext, request: ChatRequest
    ) -> AsyncIterator[AsyncIterator[list[Chunk]]]:
        """A streamed chat completion: entered once the upstream accepted the request.

        Raises:
            GatewayError: unknown model, or upstream failure before or during the stream.
        """
        model, upstream = self._resolve(ctx, request.model, "chat")
        with self._observe(upstream.name):
            async with upstream.stream(_upstream_request(ctx, request.body, model)) as chunks:
                yield chunks

    async def embed(self, ctx: RequestContext, request: EmbeddingRequest) -> Payload:
        """Embeddings in the encoding the client asked for.

        Raises:
            GatewayError: unknown model or upstream failure.
        """
        model, upstream = self._resolve(ctx, request.model, "embedding")
        with self._observe(upstream.name):
            payload = await upstream.embed(_upstream_request(ctx, request.body, model))
            _require_object(payload, upstream.name)
            try:
                _encode_embeddings(payload, request.encoding_format)
            except (ValueError, TypeError) as exc:
                raise UpstreamProtocolError(
                    f"upstream {upstream.name!r} returned malformed embeddings"
                ) from exc
        return payload

    @contextlib.contextmanager
    def _observe(self, upstream: str) -> Iterator[None]:
        try:
            yield
        except UpstreamError as exc:
            self._metrics.upstream_errors.inc((upstream, _error_kind(exc)))
            raise
        except GatewayError as exc:
            if exc.http_status >= 429:  # an upstream 429 passed through
                self._metrics.upstream_errors.inc((upstream, f"status_{exc.http_status}"))
            raise


def _principal(ctx: RequestContext) -> Principal:
    if ctx.principal is None:  # the auth middleware runs before every model route
        raise AuthenticationFailed("Missing credentials.")
    return ctx.principal


def _upstream_request(ctx: RequestContext, body: JSONObject, model: ModelConfig) -> UpstreamRequest:
    return UpstreamRequest(
        request_id=ctx.request_id, body={**body, "model": model.target}, model=model
    )


def _require_object(payload: Payload, upstream: str) -> None:
    try:
        payload.obj  # noqa: B018 -- parse now so a broken body is an upstream error, not ours
    except WireError as exc:
        raise UpstreamProtocolError(f"upstream {upstream!r} returned a malformed body") from exc


def _error_kind(exc: UpstreamError) -> str:
    if isinstance(exc, UpstreamTimeout):
        return f"timeout_{exc.phase}"
    if isinstance(exc, UpstreamProtocolError):
        return "protocol"
    return f"status_{exc.http_status}"


def _encode_embeddings(payload: Payload, encoding_format: str) -> None:
    """Make every ``embedding`` a float list or a base64 string of little-endian float32."""
    obj = payload.obj
    changed = False
    for item in obj.get("data") or ():
        vector = item.get("embedding")
        if encoding_format == "base64" and isinstance(vector, list):
            packed = array.array("f", vector)
            if sys.byteorder == "big":
                packed.byteswap()
            item["embedding"] = base64.b64encode(packed.tobytes()).decode("ascii")
            changed = True
        elif encoding_format == "float" and isinstance(vector, str):
            unpacked = array.array("f", base64.b64decode(vector, validate=True))
            if sys.byteorder == "big":
                unpacked.byteswap()
            item["embedding"] = unpacked.tolist()
            changed = True
    if changed:
        payload.replace(obj)
