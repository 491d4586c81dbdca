"""Settlement pieces: outcome classification, usage parsing, the usage chunk the client did not
ask for, and the record's fields (PHI counts and conversation id from the request's notes)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from gateway.config import ModelConfig, PricingConfig
from gateway.context import Principal, RequestContext
from gateway.errors import UpstreamProtocolError, UpstreamTimeout, UpstreamUnavailable
from gateway.metering.records import TokenUsage, usage_from
from gateway.settlement import (
    Call,
    UsageMeter,
    classify,
    client_wants_usage,
    strip_usage,
    usage_record,
    with_usage_requested,
)
from gateway.wire import Chunk


@pytest.mark.parametrize(
    ("exc", "outcome"),
    [
        (None, "completed"),
        (UpstreamTimeout("idle", 1.0), "timeout"),
        (UpstreamProtocolError("cut"), "upstream_error"),
        (UpstreamUnavailable("down"), "upstream_error"),
        (asyncio.CancelledError(), "client_disconnected"),
        (ConnectionResetError(), "client_disconnected"),
    ],
)
def test_classify(exc: BaseException | None, outcome: str) -> None:
    assert classify(exc) == outcome


def test_usage_details_and_estimated_mark() -> None:
    usage = usage_from({
        "prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14,
        "prompt_tokens_details": {"cached_tokens": 6},
        "completion_tokens_details": {"reasoning_tokens": 2},
    })  # fmt: skip
    assert usage == TokenUsage(10, 4, cached_tokens=6, reasoning_tokens=2)
    sm = usage_from({"prompt_tokens": 3, "completion_tokens": 1, "estimated": True})
    assert sm is not None
    assert sm.estimated
    assert usage_from({"prompt_tokens": 5, "total_tokens": 5}) == TokenUsage(5, 0)  # embeddings
    assert usage_from(None) is None
    assert usage_from({"completion_tokens": "x"}) is None


def test_usage_request_is_injected_once() -> None:
    body = {"model": "m", "stream": True}
    assert with_usage_requested(body)["stream_options"] == {"include_usage": True}
    kept = {"stream_options": {"include_obfuscation": False}}
    assert with_usage_requested(kept)["stream_options"] == {
        "include_obfuscation": False, "include_usage": True,
    }  # fmt: skip
    asked = {"stream_options": {"include_usage": True}}
    assert with_usage_requested(asked) is asked
    assert client_wants_usage(asked)
    assert not client_wants_usage({"stream_options": {"include_usage": False}})


def test_strip_usage_hides_openai_and_litellm_usage_chunks() -> None:
    text = Chunk(obj={"choices": [{"index": 0, "delta": {"content": "hi"}}], "usage": None})
    plain = Chunk(obj={"choices": [{"index": 0, "delta": {"content": "yo"}}]})
    openai_usage = Chunk(obj={"choices": [], "usage": {"total_tokens": 3}})
    litellm_usage = Chunk(obj={
        "choices": [{"index": 0, "delta": {"content": None, "role": None},
                     "finish_reason": None}], "usage": {"total_tokens": 3},
    })  # fmt: skip
    final = Chunk(obj={"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                       "usage": {"total_tokens": 3}})  # fmt: skip
    out = strip_usage([text, plain, openai_usage, litellm_usage, final])
    assert [c.obj for c in out] == [
        {"choices": [{"index": 0, "delta": {"content": "hi"}}]},
        {"choices": [{"index": 0, "delta": {"content": "yo"}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    assert out[1] is plain  # untouched chunks are not re-serialised


async def test_record_carries_notes_principal_and_cost() -> None:
    loop = asyncio.get_running_loop()
    principal = Principal(subject="sub-1", tenant_id="acme", app_id="chat", app_user_id="au",
                          via="jwt:test")  # fmt: skip
    ctx = RequestContext(request_id="req_1", started_at=loop.time() - 0.5, principal=principal)
    ctx.notes.conversation_id = "conv-9"
    ctx.notes.phi_counts.update({"NAME": 2, "DATE": 1})
    pricing = PricingConfig(input_per_million=Decimal(1), output_per_million=Decimal(2),
                            markup=Decimal("0.5"))  # fmt: skip
    model = ModelConfig(upstream="up", target="t", provider="bedrock", pricing=pricing)
    call = Call(ctx=ctx, alias="alias", model=model, upstream="up", body={"messages": []},
                endpoint="chat", stream=True)  # fmt: skip
    meter = UsageMeter()
    meter.feed(Chunk(obj={"choices": [{"index": 0, "delta": {"content": "x"}}]}))
    meter.feed(Chunk(obj={"choices": [], "usage": {"prompt_tokens": 1000,
                                                   "completion_tokens": 500}}))  # fmt: skip
    record = usage_record(call, meter, "completed")
    assert (record.tenant_id, record.app_id, record.user_id, record.app_user_id) == (
        "acme", "chat", "sub-1", "au",
    )  # fmt: skip
    assert (record.conversation_id, record.phi_counts) == ("conv-9", {"NAME": 2, "DATE": 1})
    assert (record.provider, record.model, record.upstream) == ("bedrock", "alias", "up")
    assert record.cost == Decimal("0.002")
    assert record.billed == Decimal("0.003")
    assert record.latency_ms >= 500
    assert record.ttft_ms is not None
    assert record.ttft_ms >= 500
    assert record.finished_at > record.started_at
