"""Body-phase orchestration of one request, framework-free.

    admit -> redact input -> call upstream -> transform stream -> settle

The stages are authorize (may this principal call this model?), resolve (model -> upstream), the
PHI decision (``gateway.privacy``: policy, HIPAA-eligible models), admit (rate limits and token
reservation, one store call), redact the input (finished before the upstream call), call upstream,
transform the answer (PHI transducers; untouched when PHI handling is off), the embedding encoding
fix-up, and settle (each L1 package stays unaware of the others). Streams are context managers
so that leaving them -- normally, on error or on cancellation -- always releases the upstream.

Settlement is the single point where a request's actual token count is known: every request that
reaches an upstream is metered (``gateway/settlement.py``: outcome, usage record, ledger queue) and
settled exactly once when the call or stream ends -- on completion, failure or client disconnect,
synchronously in the ``finally`` path so a cancelled handler cannot skip it -- and the limiter's
settle hook gets the actual tokens (its store call runs in a task of its own). Charged: the
upstream's reported usage; else the prompt estimate plus the streamed text (streams); else the
prompt estimate (failed or cancelled non-streamed requests, whose output never reached us).
Streams always ask the upstream for the usage chunk; a client that did not ask never sees it.
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
    RateLimited,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from gateway.limits.limiter import Limiter, Ticket
from gateway.metering.ledger import Ledger
from gateway.privacy import Privacy
from gateway.settlement import (
    Call,
    Settling,
    UsageMeter,
    client_wants_usage,
    strip_usage,
    with_usage_requested,
)
from gateway.telemetry import Metrics
from gateway.upstreams.base import Upstream, UpstreamRequest
from gateway.upstreams.registry import UpstreamRegistry
from gateway.wire import Chunk, JSONObject, Payload, WireError


class Pipeline:
    """Serves validated requests through the configured upstreams."""

    def __init__(
        self,
        registry: UpstreamRegistry,
        policy: AccessPolicy,
        metrics: Metrics,
        limiter: Limiter | None = None,
        *,
        ledger: Ledger | None = None,
        privacy: Privacy | None = None,
    ) -> None:
        self._registry = registry
        self._policy = policy
        self._metrics = metrics
        self._limiter = limiter
        self._ledger = ledger
        self._settling = Settling(ledger)
        self._privacy = privacy

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
        if self._ledger is not None:
            self._ledger.admit()  # 503 only when the ledger's queue and spill are both full
        return self._registry.resolve(alias, kind)

    async def complete(self, ctx: RequestContext, request: ChatRequest) -> Payload:
        """A non-streamed chat completion.

        Raises:
            GatewayError: unknown model or upstream failure.
        """
        model, upstream = self._resolve(ctx, request.model, "chat")
        phi = None if self._privacy is None else await self._privacy.begin(ctx, request, model)
        ticket, body = await self._admit_chat(ctx, request)
        call = Call(ctx=ctx, alias=request.model, model=model, upstream=upstream.name, body=body,
                    endpoint="chat", stream=False)  # fmt: skip
        meter = UsageMeter()
        try:
            if phi is not None:
                body = await phi.redact(body)  # finished before anything goes upstream
            with self._settling.open(call) as meter, self._observe(upstream.name):
                payload = await upstream.complete(_upstream_request(ctx, body, model))
                _require_object(payload, upstream.name)
                meter.payload(payload.obj)
            if phi is not None:
                phi.completion(payload)
        finally:
            self._settle(ticket, meter)
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
        phi = None if self._privacy is None else await self._privacy.begin(ctx, request, model)
        ticket, body = await self._admit_chat(ctx, request)
        strip = self._ledger is not None and not client_wants_usage(body)
        if self._ledger is not None:
            body = with_usage_requested(body)
        call = Call(ctx=ctx, alias=request.model, model=model, upstream=upstream.name, body=body,
                    endpoint="chat", stream=True)  # fmt: skip
        meter = UsageMeter()
        try:
            if phi is not None:
                body = await phi.redact(body)  # finished before anything goes upstream
            with self._settling.open(call) as meter, self._observe(upstream.name):
                async with upstream.stream(_upstream_request(ctx, body, model)) as chunks:
                    out = _metered(chunks, meter, strip=strip)
                    yield out if phi is None else phi.stream(out)
        finally:
            self._settle(ticket, meter)

    async def embed(self, ctx: RequestContext, request: EmbeddingRequest) -> Payload:
        """Embeddings in the encoding the client asked for.

        Raises:
            GatewayError: unknown model or upstream failure.
        """
        model, upstream = self._resolve(ctx, request.model, "embedding")
        if self._privacy is not None:
            self._privacy.guard_embedding(_principal(ctx), model, request.model)
        ticket = None
        if self._limiter is not None:
            ticket = await self._limiter.admit_embedding(
                _principal(ctx), ctx.request_id, request.body
            )
            if ticket is not None:
                ctx.response_headers.update(ticket.headers)
        call = Call(ctx=ctx, alias=request.model, model=model, upstream=upstream.name,
                    body=request.body, endpoint="embedding", stream=False)  # fmt: skip
        meter = UsageMeter()
        try:
            with self._settling.open(call) as meter, self._observe(upstream.name):
                payload = await upstream.embed(_upstream_request(ctx, request.body, model))
                _require_object(payload, upstream.name)
                meter.payload(payload.obj)
        finally:
            self._settle(ticket, meter)
            try:
                _encode_embeddings(payload, request.encoding_format)
            except (ValueError, TypeError) as exc:
                raise UpstreamProtocolError(
                    f"upstream {upstream.name!r} returned malformed embeddings"
                ) from exc
        return payload

    async def _admit_chat(
        self, ctx: RequestContext, request: ChatRequest
    ) -> tuple[Ticket | None, JSONObject]:
        """Admission: the ticket to settle (None: no limits apply) and the body to send."""
        if self._limiter is None:
            return None, request.body
        try:
            ticket, body = await self._limiter.admit_chat(
                _principal(ctx), ctx.request_id, request.body, is_stream=request.stream
            )
        except RateLimited as exc:
            ctx.response_headers.update(exc.limit_headers)
            raise
        if ticket is not None:
            ctx.response_headers.update(ticket.headers)
        return ticket, body

    def _settle(self, ticket: Ticket | None, meter: UsageMeter) -> None:
        """The limiter's settle hook: charge the actual tokens (once; survives cancellation).
        The usage record was queued when the settling block closed."""
        if ticket is not None and self._limiter is not None:
            self._limiter.settle_soon(ticket, meter.charged(ticket.prompt_tokens))

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


async def _metered(
    chunks: AsyncIterator[list[Chunk]], meter: UsageMeter, *, strip: bool
) -> AsyncIterator[list[Chunk]]:
    """Meter every upstream chunk; hide the usage the gateway asked for on the client's behalf."""
    async for batch in chunks:
        for chunk in batch:
            meter.feed(chunk)
        seen = strip_usage(batch) if strip else batch
        if seen:
            yield seen


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
