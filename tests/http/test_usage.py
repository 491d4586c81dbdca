"""Metering through the running gateway: one usage record per request that reached the upstream,
with the upstream's exact usage, the outcome, cost and billed amount; the usage chunk the gateway
asks for is invisible to clients that did not ask for it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from openai.types.chat import ChatCompletionMessageParam

from gateway.config import Secret
from gateway.demo import Behaviour
from tests.http.conftest import read_error
from tests.http.sse import CHAT, STREAM_BODY, chunk_of, data_events, poll, split_events
from tests.redis_server import free_port
from tests.stack import BackgroundLoop, Stack

TEXT = "one two three"
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
PROMPT_TOKENS = 8  # the fake counts len(json(messages)) // 4: 32 // 4 for HI
COMPLETION_TOKENS = 3  # one per word
# test-chat: 2.5 per million input, 10 per million output, markup 0.25
COST = (Decimal(PROMPT_TOKENS) * Decimal("2.5") + Decimal(COMPLETION_TOKENS) * 10) / 10**6
BILLED = COST * Decimal("1.25")


@pytest.fixture
def text_stack(stack: Stack) -> Stack:
    stack.fake.behaviours["fake-chat"] = Behaviour(text=TEXT)
    return stack


async def _sse(http: aiohttp.ClientSession, stack: Stack, body: dict[str, Any]) -> list[bytes]:
    async with http.post(stack.url + CHAT, json=body) as response:
        assert response.status == 200
        return data_events(split_events(await response.read()))


async def test_stream_without_include_usage_hides_the_usage_chunk(
    text_stack: Stack, http: aiohttp.ClientSession, background: BackgroundLoop
) -> None:
    events = await _sse(http, text_stack, STREAM_BODY)
    (_, sent), *_ = text_stack.fake.requests
    assert sent["stream_options"] == {"include_usage": True}  # asked upstream anyway
    assert events[-1] == b"data: [DONE]"
    chunks = [chunk_of(e) for e in events[:-1]]
    assert all(c["choices"] for c in chunks)  # no usage-only chunk
    assert all("usage" not in c for c in chunks)
    [record] = await text_stack.usage_async(background)
    assert record.outcome == "completed"
    assert (record.usage.input_tokens, record.usage.output_tokens) == (PROMPT_TOKENS, 3)
    assert not record.usage.estimated
    assert (record.cost, record.billed) == (COST, BILLED)
    assert record.stream
    assert record.ttft_ms is not None
    assert 0 < record.ttft_ms <= record.latency_ms


async def test_stream_with_include_usage_keeps_it(
    text_stack: Stack, http: aiohttp.ClientSession, background: BackgroundLoop
) -> None:
    body = {**STREAM_BODY, "stream_options": {"include_usage": True}}
    events = await _sse(http, text_stack, body)
    usage_chunk = chunk_of(events[-2])
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == COMPLETION_TOKENS
    [record] = await text_stack.usage_async(background)
    assert record.usage.total_tokens == usage_chunk["usage"]["total_tokens"]


def test_sdk_stream_and_completion_are_recorded_once_each(
    text_stack: Stack, background: BackgroundLoop
) -> None:
    client = openai.OpenAI(base_url=text_stack.v1, api_key=text_stack.api_key, max_retries=0)
    streamed = client.chat.completions.create(model="test-chat", messages=MESSAGES, stream=True)
    text = "".join(e.choices[0].delta.content or "" for e in streamed)
    assert text == TEXT
    reply = client.chat.completions.create(model="test-chat", messages=MESSAGES)
    assert reply.usage is not None
    records = text_stack.usage(background)
    by_stream = {r.stream: r for r in records}
    assert len(records) == 2
    assert by_stream[False].usage.output_tokens == reply.usage.completion_tokens
    assert by_stream[False].ttft_ms is None
    assert by_stream[True].usage.output_tokens == COMPLETION_TOKENS
    assert {r.request_id for r in records} == {r.request_id for r in records if r.tenant_id}
    assert all(r.user_id == "test-user" or r.user_id for r in records)


def test_embeddings_are_recorded(stack: Stack, background: BackgroundLoop) -> None:
    client = openai.OpenAI(base_url=stack.v1, api_key=stack.api_key, max_retries=0)
    client.embeddings.create(model="test-embed", input=["a", "b"])
    [record] = stack.usage(background)
    assert (record.endpoint, record.outcome, record.usage.input_tokens) == (
        "embedding",
        "completed",
        8,
    )
    assert (record.cost, record.billed) == (Decimal(0), Decimal(0))  # test-embed is free


async def test_upstream_refusal_is_recorded_with_zero_tokens(
    stack: Stack, http: aiohttp.ClientSession, background: BackgroundLoop
) -> None:
    stack.fake.behaviours["fake-chat"] = Behaviour(status=500)
    async with http.post(stack.url + CHAT, json=STREAM_BODY) as response:
        await read_error(response, 502)
    [record] = await stack.usage_async(background)
    assert record.outcome == "upstream_error"
    assert record.usage.total_tokens == 0
    assert record.cost == 0


async def test_mid_stream_failure_records_the_streamed_part_as_estimated(
    stack: Stack, http: aiohttp.ClientSession, background: BackgroundLoop
) -> None:
    stack.fake.behaviours["fake-chat"] = Behaviour(text="abcd " * 10, error_after=4)
    async with http.post(stack.url + CHAT, json=STREAM_BODY) as response:
        await response.read()
    [record] = await stack.usage_async(background)
    assert record.outcome == "upstream_error"
    assert record.usage.estimated
    # prompt "hi" -> 1 token; 4 chunks "abcd", " abcd" x 3 = 19 bytes -> 5 tokens
    assert (record.usage.input_tokens, record.usage.output_tokens) == (1, 5)


async def test_client_disconnect_is_recorded(
    stack: Stack, http: aiohttp.ClientSession, background: BackgroundLoop
) -> None:
    stack.fake.behaviours["fake-chat"] = Behaviour(chunk_delay_s=0.05, text="word " * 400)
    async with http.post(stack.url + CHAT, json=STREAM_BODY) as response:
        for _ in range(3):
            await response.content.readuntil(b"\n\n")
        response.close()
    assert await poll(lambda: len(stack.fake.disconnects) == 1)
    [record] = await stack.usage_async(background)
    assert record.outcome == "client_disconnected"
    assert record.usage.estimated
    assert record.usage.output_tokens >= 1


async def test_idle_timeout_is_recorded_as_timeout(
    make_stack: Callable[..., Stack], http: aiohttp.ClientSession, background: BackgroundLoop
) -> None:
    stack = make_stack(upstream={"idle_timeout_s": 0.2})
    stack.fake.behaviours["fake-chat"] = Behaviour(stall_after=2)
    async with http.post(stack.url + CHAT, json=STREAM_BODY) as response:
        await response.read()
    [record] = await stack.usage_async(background)
    assert record.outcome == "timeout"


async def test_requests_that_never_reach_the_upstream_are_not_recorded(
    stack: Stack, http: aiohttp.ClientSession, background: BackgroundLoop
) -> None:
    async with http.post(stack.url + CHAT, json={**STREAM_BODY, "model": "nope"}) as response:
        await read_error(response, 404)
    async with http.post(stack.url + CHAT, json={"model": "test-chat"}) as response:
        await read_error(response, 400)
    assert await stack.usage_async(background) == []


async def test_ledger_full_answers_503_and_loses_nothing(
    make_stack: Callable[..., Stack], http: aiohttp.ClientSession, background: BackgroundLoop
) -> None:
    # The ledger is a PostgreSQL nobody listens on; the queue holds one record, no spill room.
    stack = make_stack(metering={
        "sink": "postgres", "postgres_dsn": _closed_dsn(), "queue_size": 1,
        "spill_max_bytes": 0, "retry_interval_s": 0.05, "command_timeout_s": 0.5,
    })  # fmt: skip
    body = {**STREAM_BODY, "stream": False}
    async with http.post(stack.url + CHAT, json=body) as response:
        assert response.status == 200
    async with http.post(stack.url + CHAT, json=body) as response:
        error = await read_error(response, 503)
        assert error["code"] == "usage_ledger_unavailable"
        assert response.headers["retry-after"] == "1"
        assert response.headers["x-should-retry"] == "true"
    await asyncio.sleep(0.2)  # the writer fails and keeps the record
    assert len(stack.ledger) == 1
    assert len(stack.fake.requests) == 1  # the refused request never reached the upstream


def _closed_dsn() -> Secret:
    return Secret(f"postgresql://gateway@127.0.0.1:{free_port()}/none?sslmode=disable")


async def test_same_record_is_not_duplicated_by_a_replayed_flush(
    text_stack: Stack, http: aiohttp.ClientSession, background: BackgroundLoop
) -> None:
    await _sse(http, text_stack, STREAM_BODY)
    [record] = await text_stack.usage_async(background)
    ledger = text_stack.ledger
    ledger.record(record)  # a replay of the same request id
    assert [r.request_id for r in await text_stack.usage_async(background)] == [record.request_id]
    assert orjson.loads(orjson.dumps(record.to_json()))["request_id"] == record.request_id


async def test_metrics_count_records_and_show_a_degraded_ledger(
    make_stack: Callable[..., Stack], http: aiohttp.ClientSession
) -> None:
    stack = make_stack(metering={
        "sink": "postgres", "postgres_dsn": _closed_dsn(), "retry_interval_s": 0.05,
        "command_timeout_s": 0.5,
    })  # fmt: skip
    async with http.post(stack.url + CHAT, json={**STREAM_BODY, "stream": False}) as response:
        assert response.status == 200
    assert await poll(lambda: stack.metrics.ledger_degraded.values.get(()) == 1.0, 3.0)
    assert stack.metrics.usage_records.values == {("completed",): 1.0}
    assert stack.metrics.ledger_spilled.values == {(): 1.0}  # in the spill file, not lost
    async with http.get(stack.url + "/metrics") as response:
        text = await response.text()
    assert "gateway_ledger_degraded 1" in text
    assert 'gateway_usage_records_total{outcome="completed"} 1' in text
