"""Settlement: what happened to one request that reached an upstream, recorded once.

``Settling`` is opened right before the upstream call and closed when the call (or the stream)
ends, however it ends. Closing is synchronous -- it classifies the outcome, assembles the
``UsageRecord`` and appends it to the ledger's queue -- so a cancelled handler cannot skip or
interrupt it; the write to the sink happens later in the ledger's own task. The token count it
returns is what the limiter's settle hook charges.

Outcome: no exception -> ``completed``; ``UpstreamTimeout`` -> ``timeout``; any other gateway or
upstream error -> ``upstream_error``; cancellation (client gone, or the drain budget ran out) and
failed writes to the client -> ``client_disconnected``.

Tokens: the upstream's ``usage`` (streams: the usage chunk, which the pipeline asks every upstream
for) when present, with its cached/reasoning details; otherwise estimated (``estimated: true``):
the prompt at UTF-8 bytes / 4 plus the streamed text at the same rate. An upstream that failed
before sending anything records zero tokens (it refused the request; providers do not bill that).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from gateway.config import ModelConfig
from gateway.context import RequestContext
from gateway.errors import UpstreamTimeout
from gateway.limits.rules import estimate_chat_prompt, estimate_texts
from gateway.metering.cost import billed_of, cost_of
from gateway.metering.ledger import Ledger
from gateway.metering.records import Endpoint, Outcome, TokenUsage, UsageRecord, usage_from
from gateway.wire import Chunk, JSONObject, WireError

_BYTES_PER_TOKEN: Final = 4
_USAGE_KEY: Final = b'"usage"'


class UsageMeter:
    """What one request produced: the upstream's usage, the streamed text, the first chunk."""

    __slots__ = ("chunks", "first_at", "streamed_bytes", "usage")

    def __init__(self) -> None:
        self.usage: JSONObject | None = None
        self.streamed_bytes = 0
        self.chunks = 0
        self.first_at: float | None = None

    def feed(self, chunk: Chunk) -> None:
        """Account one streamed chunk."""
        if self.first_at is None:
            self.first_at = asyncio.get_running_loop().time()
        self.chunks += 1
        try:
            obj = chunk.obj
        except WireError:
            return
        usage = obj.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        self.streamed_bytes += _text_bytes(obj)

    def payload(self, obj: JSONObject) -> None:
        """Account a non-streamed response."""
        usage = obj.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        self.chunks += 1

    def charged(self, prompt_estimate: int) -> int:
        """Tokens for the limiter: the reported total, else the prompt and streamed estimates."""
        reported = usage_from(self.usage)
        if reported is not None:
            total = self.usage.get("total_tokens") if self.usage is not None else None
            return total if isinstance(total, int) and total >= 0 else reported.total_tokens
        return prompt_estimate + _tokens(self.streamed_bytes)


def strip_usage(batch: list[Chunk]) -> list[Chunk]:
    """``batch`` as a client that did not ask for usage would see it: no usage-only chunk, no
    ``usage`` field (re-serialised only when the bytes mention it). Usage-only: ``choices: []``
    (OpenAI), or, as LiteLLM 1.102 sends it, choices with an empty delta and no finish reason."""
    out: list[Chunk] = []
    for chunk in batch:
        if _USAGE_KEY not in chunk.raw:
            out.append(chunk)
            continue
        obj = dict(chunk.obj)
        usage = obj.pop("usage", None)
        if isinstance(usage, dict) and _carries_nothing(obj.get("choices")):
            continue
        out.append(Chunk(obj=obj))
    return out


def _carries_nothing(choices: object) -> bool:
    if not isinstance(choices, list):
        return False
    for choice in choices:
        if not isinstance(choice, dict) or choice.get("finish_reason") is not None:
            return False
        delta = choice.get("delta")
        if isinstance(delta, dict) and any(v not in (None, "", []) for v in delta.values()):
            return False
    return True


def with_usage_requested(body: JSONObject) -> JSONObject:
    """The upstream body of a stream, asking for the usage chunk."""
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        return body
    merged = (
        {**options, "include_usage": True} if isinstance(options, dict) else {"include_usage": True}
    )
    return {**body, "stream_options": merged}


def client_wants_usage(body: JSONObject) -> bool:
    """Whether the client asked for the usage chunk itself."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """The request a settlement is about."""

    ctx: RequestContext
    alias: str
    """The model alias the client asked for."""
    model: ModelConfig
    upstream: str
    body: JSONObject
    """The body sent upstream (for estimates when no usage comes back)."""
    endpoint: Endpoint
    stream: bool


class Settling:
    """Opens and closes the settlement of each request (``open``)."""

    def __init__(self, ledger: Ledger | None) -> None:
        self.ledger = ledger

    @contextmanager
    def open(self, call: Call) -> Iterator[UsageMeter]:
        """Meter the block; on leaving it, however, record the request (if a ledger is set)."""
        meter = UsageMeter()
        try:
            yield meter
        except BaseException as exc:
            self._record(call, meter, exc)
            raise
        self._record(call, meter, None)

    def _record(self, call: Call, meter: UsageMeter, exc: BaseException | None) -> None:
        if self.ledger is not None:
            self.ledger.record(usage_record(call, meter, classify(exc)))


def usage_record(call: Call, meter: UsageMeter, outcome: Outcome) -> UsageRecord:
    """The ledger row of a finished call."""
    ctx, model = call.ctx, call.model
    usage = token_usage(meter, outcome, call.body, call.endpoint)
    cost = cost_of(usage.input_tokens, usage.output_tokens, model.pricing)
    principal = ctx.principal
    loop_now = asyncio.get_running_loop().time()
    wall_now = time.time()
    first = meter.first_at
    return UsageRecord(
        request_id=ctx.request_id,
        tenant_id=principal.tenant_id if principal else "",
        app_id=principal.app_id if principal else None,
        user_id=principal.subject if principal else "",
        app_user_id=principal.app_user_id if principal else None,
        conversation_id=ctx.notes.conversation_id,
        model=call.alias,
        upstream=call.upstream,
        provider=model.provider or model.upstream,
        endpoint=call.endpoint,
        stream=call.stream,
        outcome=outcome,
        usage=usage,
        cost=cost,
        billed=billed_of(cost, model.pricing),
        latency_ms=(loop_now - ctx.started_at) * 1000,
        ttft_ms=(first - ctx.started_at) * 1000 if call.stream and first is not None else None,
        phi_counts=dict(ctx.notes.phi_counts),
        started_at=_utc(wall_now - (loop_now - ctx.started_at)),
        finished_at=_utc(wall_now),
    )


def classify(exc: BaseException | None) -> Outcome:
    """How the request ended."""
    if exc is None:
        return "completed"
    if isinstance(exc, UpstreamTimeout):
        return "timeout"
    if isinstance(exc, asyncio.CancelledError | ConnectionError):
        return "client_disconnected"
    return "upstream_error"


def token_usage(
    meter: UsageMeter, outcome: Outcome, body: JSONObject, endpoint: Endpoint
) -> TokenUsage:
    """The record's token counts: reported, else estimated (zero if the upstream refused)."""
    reported = usage_from(meter.usage)
    if reported is not None:
        return reported
    if outcome == "upstream_error" and meter.chunks == 0:
        return TokenUsage(0, 0, estimated=True)
    if endpoint == "embedding":
        value = body.get("input")
        texts = (
            [value] if isinstance(value, str) else [v for v in value or () if isinstance(v, str)]
        )
        return TokenUsage(estimate_texts(texts), 0, estimated=True)
    return TokenUsage(estimate_chat_prompt(body), _tokens(meter.streamed_bytes), estimated=True)


def _tokens(size: int) -> int:
    return -(-size // _BYTES_PER_TOKEN)


def _text_bytes(obj: JSONObject) -> int:
    size = 0
    for choice in obj.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            continue
        content = delta.get("content")
        if isinstance(content, str):
            size += len(content.encode())
        for call in delta.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                size += len(function["arguments"].encode())
    return size


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)
