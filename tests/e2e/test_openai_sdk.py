"""The real openai-python SDK (sync and async clients) against the running gateway."""

from __future__ import annotations

import array
import asyncio
import base64
import hashlib
import struct
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any, Literal

import orjson
import pytest
from aiohttp import web
from openai import (
    APIError,
    APIStatusError,
    AsyncOpenAI,
    BadRequestError,
    InternalServerError,
    NotFoundError,
    OpenAI,
    RateLimitError,
    UnprocessableEntityError,
)
from openai.types.chat import (
    ChatCompletionChunk,
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
    ChatCompletionToolParam,
)

from gateway.config import ModelConfig
from gateway.demo import Behaviour
from gateway.telemetry import Metrics
from tests.identity import default_token
from tests.stack import BackgroundLoop, Stack, make_config, serve_post, start_gateway

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
TOOLS: list[ChatCompletionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"location": {"type": "string"}, "unit": {"type": "string"}},
                "required": ["location"],
            },
        },
    }
]
TOOL_ARGS = {"location": "Paris", "unit": "celsius"}
TEXT = "The quick brown fox jumps over the lazy dog."


@pytest.fixture
def client(stack: Stack) -> Iterator[OpenAI]:
    with OpenAI(base_url=stack.v1, api_key=default_token(), max_retries=0) as sdk:
        yield sdk


@pytest.fixture
async def aclient(stack: Stack) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=stack.v1, api_key=default_token(), max_retries=0) as sdk:
        yield sdk


def _expected_usage(text: str, n: int = 1) -> tuple[int, int]:
    """The fake's usage arithmetic: (prompt_tokens, completion_tokens)."""
    prompt = len(orjson.dumps(MESSAGES)) // 4
    return prompt, len(text.split(" ")) * n


def _chat_bodies(stack: Stack) -> list[dict[str, Any]]:
    return [body for _, body in stack.fake.requests if "messages" in body]


# --- completions ---------------------------------------------------------------------------------


def test_non_stream_completion(stack: Stack, client: OpenAI) -> None:
    stack.fake.behaviours["fake-chat"] = Behaviour(text=TEXT)
    raw = client.chat.completions.with_raw_response.create(model="test-chat", messages=MESSAGES)
    assert raw.status_code == 200
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.headers["content-type"].startswith("application/json")
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == TEXT
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    # The upstream's model name is passed through or the alias is echoed; nothing else.
    assert completion.model in ("test-chat", "fake-chat")
    assert completion.usage is not None
    prompt, generated = _expected_usage(TEXT)
    assert completion.usage.prompt_tokens == prompt
    assert completion.usage.completion_tokens == generated
    assert completion.usage.total_tokens == prompt + generated
    assert raw.request_id == raw.headers["x-request-id"]
    assert completion._request_id == raw.headers["x-request-id"]
    assert _chat_bodies(stack)[0]["model"] == "fake-chat"


async def test_non_stream_completion_async(stack: Stack, aclient: AsyncOpenAI) -> None:
    stack.fake.behaviours["fake-chat"] = Behaviour(text=TEXT)
    raw = await aclient.chat.completions.with_raw_response.create(
        model="test-chat", messages=MESSAGES
    )
    assert raw.headers["x-request-id"].startswith("req_")
    completion = raw.parse()
    assert completion.choices[0].message.content == TEXT
    assert completion.usage is not None
    assert completion.usage.total_tokens == sum(_expected_usage(TEXT))


def test_stream_reassembles_exactly_what_the_upstream_sent(stack: Stack, client: OpenAI) -> None:
    text = 'Ünïcödé  spaces,  émojis 🎉 and\nnew lines "quoted" {braces} end.'
    stack.fake.behaviours["fake-chat"] = Behaviour(text=text)
    parts: list[str] = []
    finish: list[str | None] = []
    ids: set[str] = set()
    with client.chat.completions.create(
        model="test-chat", messages=MESSAGES, stream=True
    ) as events:
        assert events.response.headers["x-request-id"].startswith("req_")
        for event in events:
            ids.add(event.id)
            assert event.object == "chat.completion.chunk"
            for choice in event.choices:
                parts.append(choice.delta.content or "")
                finish.append(choice.finish_reason)
    assert "".join(parts) == text
    assert finish[-1] == "stop"
    assert all(f is None for f in finish[:-1])
    assert len(ids) == 1


async def test_stream_async_with_usage(stack: Stack, aclient: AsyncOpenAI) -> None:
    stack.fake.behaviours["fake-chat"] = Behaviour(text=TEXT)
    parts: list[str] = []
    finish: str | None = None
    usage_chunks = 0
    stream = await aclient.chat.completions.create(
        model="test-chat",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    async with stream:
        async for event in stream:
            if event.usage is not None:
                usage_chunks += 1
                assert event.choices == []
                assert event.usage.total_tokens == sum(_expected_usage(TEXT))
            for choice in event.choices:
                parts.append(choice.delta.content or "")
                finish = choice.finish_reason or finish
    assert "".join(parts) == TEXT
    assert finish == "stop"
    assert usage_chunks == 1


# --- tool calls ----------------------------------------------------------------------------------


def test_stream_helper_accumulates_tool_call(stack: Stack, client: OpenAI) -> None:
    argument_deltas: list[str] = []
    done_arguments: list[str] = []
    with client.chat.completions.stream(
        model="test-chat",
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=TOOLS,
    ) as stream:
        for event in stream:
            if event.type == "tool_calls.function.arguments.delta":
                assert event.name == "get_weather"
                argument_deltas.append(event.arguments_delta)
            elif event.type == "tool_calls.function.arguments.done":
                done_arguments.append(event.arguments)
        final = stream.get_final_completion()
    assert len(argument_deltas) > 1  # the arguments really arrived in fragments
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert len(calls) == 1
    assert calls[0].id == "call_fake1"
    assert calls[0].type == "function"
    assert calls[0].function.name == "get_weather"
    assert orjson.loads(calls[0].function.arguments) == TOOL_ARGS
    assert done_arguments == [calls[0].function.arguments]
    assert "".join(argument_deltas) == calls[0].function.arguments
    assert _chat_bodies(stack)[0]["tools"] == TOOLS


async def test_stream_helper_tool_call_async(aclient: AsyncOpenAI) -> None:
    async with aclient.chat.completions.stream(
        model="test-chat", messages=MESSAGES, tools=TOOLS
    ) as stream:
        final = await stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [c.id for c in calls] == ["call_fake1"]
    assert calls[0].function.name == "get_weather"
    assert orjson.loads(calls[0].function.arguments) == TOOL_ARGS


def test_non_stream_tool_call(client: OpenAI) -> None:
    completion = client.chat.completions.create(model="test-chat", messages=MESSAGES, tools=TOOLS)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert len(calls) == 1
    call = calls[0]
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert call.id == "call_fake1"
    assert call.function.name == "get_weather"
    assert orjson.loads(call.function.arguments) == TOOL_ARGS


# --- n choices -----------------------------------------------------------------------------------


def test_n_choices_non_stream(stack: Stack, client: OpenAI) -> None:
    stack.fake.behaviours["fake-chat"] = Behaviour(text=TEXT)
    completion = client.chat.completions.create(model="test-chat", messages=MESSAGES, n=3)
    assert [c.index for c in completion.choices] == [0, 1, 2]
    assert all(c.message.content == TEXT for c in completion.choices)
    assert _chat_bodies(stack)[0]["n"] == 3


def test_n_choices_stream(stack: Stack, client: OpenAI) -> None:
    stack.fake.behaviours["fake-chat"] = Behaviour(text=TEXT)
    texts: dict[int, list[str]] = {}
    finish: dict[int, str] = {}
    with client.chat.completions.create(
        model="test-chat", messages=MESSAGES, n=3, stream=True
    ) as events:
        for event in events:
            for choice in event.choices:
                texts.setdefault(choice.index, []).append(choice.delta.content or "")
                if choice.finish_reason is not None:
                    finish[choice.index] = choice.finish_reason
    assert sorted(texts) == [0, 1, 2]
    assert all("".join(parts) == TEXT for parts in texts.values())
    assert finish == {0: "stop", 1: "stop", 2: "stop"}


# --- embeddings ----------------------------------------------------------------------------------


def test_embeddings_base64_default_matches_float(stack: Stack, client: OpenAI) -> None:
    inputs = ["first text", "second text"]
    default = client.embeddings.create(model="test-embed", input=inputs)
    floats = client.embeddings.create(model="test-embed", input=inputs, encoding_format="float")
    received = [body.get("encoding_format") for _, body in stack.fake.requests]
    # The SDK asks for base64 by default; the gateway forwards the client's choice.
    assert received == ["base64", "float"]
    assert [d.index for d in default.data] == [0, 1]
    assert len(default.data) == len(floats.data) == 2
    for b64_item, float_item in zip(default.data, floats.data, strict=True):
        assert len(float_item.embedding) == 8
        assert all(isinstance(x, float) for x in float_item.embedding)
        assert any(x != 0.0 for x in float_item.embedding)
        assert b64_item.embedding == array.array("f", float_item.embedding).tolist()
    assert default.data[0].embedding != default.data[1].embedding
    assert default.usage.prompt_tokens == 8
    assert default.model == floats.model


async def test_embeddings_async_single_input(stack: Stack, aclient: AsyncOpenAI) -> None:
    result = await aclient.embeddings.create(model="test-embed", input="hello", dimensions=4)
    assert len(result.data) == 1
    assert len(result.data[0].embedding) == 4
    _, body = stack.fake.requests[0]
    assert body["model"] == "fake-embed"
    assert body["dimensions"] == 4


def test_embeddings_on_chat_model_is_not_found(client: OpenAI) -> None:
    with pytest.raises(NotFoundError):
        client.embeddings.create(model="test-chat", input="hello")


# --- models --------------------------------------------------------------------------------------


def test_models_list_and_retrieve(client: OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert "test-chat" in ids
    assert "test-embed" in ids
    assert "hidden" not in ids
    model = client.models.retrieve("test-chat")
    assert model.id == "test-chat"
    assert model.object == "model"
    assert model.owned_by == "tests"
    with pytest.raises(NotFoundError) as unknown:
        client.models.retrieve("no-such-model")
    assert unknown.value.request_id is not None
    assert unknown.value.request_id.startswith("req_")
    with pytest.raises(NotFoundError):
        client.models.retrieve("hidden")


async def test_models_list_async(aclient: AsyncOpenAI) -> None:
    ids = [m.id async for m in aclient.models.list()]
    assert sorted(ids) == ["test-chat", "test-embed"]


# --- errors --------------------------------------------------------------------------------------


def _request_id(exc: APIStatusError) -> str:
    assert exc.request_id is not None
    assert exc.request_id.startswith("req_")
    return exc.request_id


def test_empty_messages_is_bad_request(stack: Stack, client: OpenAI) -> None:
    with pytest.raises(BadRequestError) as caught:
        client.chat.completions.create(model="test-chat", messages=[])
    _request_id(caught.value)
    assert caught.value.param == "messages"
    assert caught.value.type == "invalid_request_error"
    assert len(stack.fake.requests) == 0


def test_upstream_400_is_bad_request(stack: Stack, client: OpenAI) -> None:
    stack.fake.behaviours["fake-chat"] = Behaviour(status=400)
    with pytest.raises(BadRequestError) as caught:
        client.chat.completions.create(model="test-chat", messages=MESSAGES)
    _request_id(caught.value)
    assert "bad request from the model" in caught.value.message


def test_upstream_400_on_stream_is_bad_request(stack: Stack, client: OpenAI) -> None:
    stack.fake.behaviours["fake-chat"] = Behaviour(status=400)
    with pytest.raises(BadRequestError) as caught:
        client.chat.completions.create(model="test-chat", messages=MESSAGES, stream=True)
    _request_id(caught.value)


def test_unknown_model_is_not_found(stack: Stack, client: OpenAI) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.chat.completions.create(model="gpt-nope", messages=MESSAGES)
    _request_id(caught.value)
    assert caught.value.code == "model_not_found"
    assert caught.value.param == "model"
    assert len(stack.fake.requests) == 0


def test_upstream_429_is_rate_limit_error(stack: Stack, client: OpenAI) -> None:
    stack.fake.behaviours["fake-chat"] = Behaviour(status=429, error_headers={"retry-after": "7"})
    with pytest.raises(RateLimitError) as caught:
        client.chat.completions.create(model="test-chat", messages=MESSAGES)
    _request_id(caught.value)
    headers = caught.value.response.headers
    assert headers["retry-after"] == "7"
    assert headers["x-should-retry"] == "true"
    assert caught.value.status_code == 429


def test_upstream_500_is_internal_server_error_502(stack: Stack, client: OpenAI) -> None:
    stack.fake.behaviours["fake-chat"] = Behaviour(status=500)
    with pytest.raises(InternalServerError) as caught:
        client.chat.completions.create(model="test-chat", messages=MESSAGES)
    _request_id(caught.value)
    assert caught.value.status_code == 502
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert "upstream exploded" not in caught.value.message  # 5xx bodies never reach clients


async def test_upstream_500_async_stream(stack: Stack, aclient: AsyncOpenAI) -> None:
    stack.fake.behaviours["fake-chat"] = Behaviour(status=500)
    with pytest.raises(InternalServerError) as caught:
        await aclient.chat.completions.create(model="test-chat", messages=MESSAGES, stream=True)
    _request_id(caught.value)
    assert caught.value.status_code == 502


def test_body_over_limit_is_413(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(server={"max_body_bytes": 2048})
    big: list[ChatCompletionMessageParam] = [{"role": "user", "content": "x" * 4096}]
    with OpenAI(base_url=stack.v1, api_key=default_token(), max_retries=0) as sdk:
        with pytest.raises(APIStatusError) as caught:
            sdk.chat.completions.create(model="test-chat", messages=big)
        _request_id(caught.value)
        assert caught.value.status_code == 413
        # Just under the limit still works.
        ok = sdk.chat.completions.create(model="test-chat", messages=MESSAGES)
        assert ok.choices[0].message.content
    assert len(stack.fake.requests) == 1


# --- SDK retries ---------------------------------------------------------------------------------


def test_sdk_does_not_retry_terminal_upstream_500(stack: Stack) -> None:
    stack.fake.behaviours["fake-chat"] = Behaviour(status=500)
    sdk = OpenAI(base_url=stack.v1, api_key=default_token(), max_retries=2)
    with sdk, pytest.raises(InternalServerError):
        sdk.chat.completions.create(model="test-chat", messages=MESSAGES)
    assert len(stack.fake.requests) == 1


def test_sdk_retries_rate_limit_as_told(stack: Stack) -> None:
    """Control for the test above: a retryable answer really is retried (short retry-after-ms)."""
    stack.fake.behaviours["fake-chat"] = Behaviour(
        status=429, error_headers={"retry-after-ms": "10"}
    )
    sdk = OpenAI(base_url=stack.v1, api_key=default_token(), max_retries=2)
    with sdk, pytest.raises(RateLimitError) as caught:
        sdk.chat.completions.create(model="test-chat", messages=MESSAGES)
    assert caught.value.response.headers["retry-after-ms"] == "10"
    assert len(stack.fake.requests) == 3


# --- failures inside a stream, keep-alives, deadlines --------------------------------------------


def _collect(events: Iterable[ChatCompletionChunk], parts: list[str]) -> None:
    for event in events:
        parts.extend(choice.delta.content or "" for choice in event.choices)


async def _acollect(events: AsyncIterable[ChatCompletionChunk], parts: list[str]) -> None:
    async for event in events:
        parts.extend(choice.delta.content or "" for choice in event.choices)


def test_mid_stream_error_event_raises_api_error(stack: Stack, client: OpenAI) -> None:
    stack.fake.behaviours["fake-chat"] = Behaviour(error_after=2, text="one two three four")
    parts: list[str] = []
    with (
        client.chat.completions.create(model="test-chat", messages=MESSAGES, stream=True) as events,
        pytest.raises(APIError) as caught,
    ):
        _collect(events, parts)
    assert "".join(parts) == "one two"  # what came before the failure was delivered
    assert not isinstance(caught.value, APIStatusError)  # the HTTP status was 200
    assert caught.value.type == "api_error"
    assert "model crashed" not in caught.value.message  # the upstream's text stays upstream
    assert caught.value.message


async def test_idle_upstream_mid_stream_raises_api_error(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(upstream={"idle_timeout_s": 0.2})
    stack.fake.behaviours["fake-chat"] = Behaviour(stall_after=2, text="one two three")
    parts: list[str] = []
    async with AsyncOpenAI(base_url=stack.v1, api_key=default_token(), max_retries=0) as sdk:
        stream = await sdk.chat.completions.create(
            model="test-chat", messages=MESSAGES, stream=True
        )
        with pytest.raises(APIError) as caught:
            await _acollect(stream, parts)
    assert "".join(parts) == "one two"
    assert caught.value.type == "timeout"
    assert caught.value.code == "idle_timeout"


def test_keepalive_comments_are_invisible_to_the_sdk(
    make_stack: Callable[..., Stack], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = make_stack(server={"sse_keepalive_s": 0.05})
    stack.fake.behaviours["fake-chat"] = Behaviour(text=TEXT)
    send_events = stack.fake._send_events

    async def late_first_chunk(*args: Any) -> None:
        await asyncio.sleep(0.3)  # the fake's 200 is out, its first event is late
        await send_events(*args)

    monkeypatch.setattr(stack.fake, "_send_events", late_first_chunk)
    with (
        OpenAI(base_url=stack.v1, api_key=default_token(), max_retries=0) as sdk,
        sdk.chat.completions.with_streaming_response.create(
            model="test-chat", messages=MESSAGES, stream=True
        ) as raw,
    ):
        events = raw.parse()
        text = "".join(c.delta.content or "" for e in events for c in e.choices)
        assert raw.headers["x-request-id"].startswith("req_")
    assert text == TEXT


def test_sdk_does_not_retry_a_first_byte_timeout(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(upstream={"first_byte_timeout_s": 0.2})
    stack.fake.behaviours["fake-chat"] = Behaviour(header_delay_s=1.0)
    with (
        OpenAI(base_url=stack.v1, api_key=default_token(), max_retries=2) as sdk,
        pytest.raises(InternalServerError) as caught,
    ):
        sdk.chat.completions.create(model="test-chat", messages=MESSAGES, stream=True)
    _request_id(caught.value)
    assert caught.value.status_code == 504
    assert caught.value.code == "first_byte_timeout"
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert len(stack.fake.requests) == 1


# --- upstream statuses as SDK exceptions ---------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(
    ("upstream", "exception", "status"),
    [
        (400, BadRequestError, 400),
        (404, NotFoundError, 404),
        (413, APIStatusError, 413),
        (422, UnprocessableEntityError, 422),
        (403, InternalServerError, 502),
        (408, InternalServerError, 504),
        (503, InternalServerError, 503),
    ],
)
async def test_upstream_status_becomes_sdk_exception(
    stack: Stack,
    aclient: AsyncOpenAI,
    upstream: int,
    exception: type[APIStatusError],
    status: int,
    stream: bool,
) -> None:
    stack.fake.behaviours["fake-chat"] = Behaviour(status=upstream)
    with pytest.raises(APIStatusError) as caught:
        await aclient.chat.completions.create(model="test-chat", messages=MESSAGES, stream=stream)
    assert type(caught.value) is exception
    assert caught.value.status_code == status
    _request_id(caught.value)
    assert len(stack.fake.requests) == 1


# --- concurrency ---------------------------------------------------------------------------------


async def test_concurrent_streams_do_not_mix(stack: Stack, aclient: AsyncOpenAI) -> None:
    """Sixteen interleaved streams with 1-4 choices each: every choice gets exactly the text."""
    stack.fake.behaviours["fake-chat"] = Behaviour(text=TEXT, chunk_delay_s=0.005)

    async def one(i: int) -> tuple[int, dict[int, str], set[str]]:
        n = 1 + i % 4
        texts: dict[int, str] = {}
        finishes: set[str] = set()
        stream = await aclient.chat.completions.create(
            model="test-chat",
            messages=[{"role": "user", "content": f"request {i}"}],
            stream=True,
            n=n,
        )
        async with stream:
            async for event in stream:
                for choice in event.choices:
                    texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
                    if choice.finish_reason is not None:
                        finishes.add(choice.finish_reason)
        return n, texts, finishes

    results = await asyncio.gather(*(one(i) for i in range(16)))
    for n, texts, finishes in results:
        assert texts == dict.fromkeys(range(n), TEXT)
        assert finishes == {"stop"}
    assert sorted(body["n"] for body in _chat_bodies(stack)) == sorted(1 + i % 4 for i in range(16))
    assert stack.metrics.open_streams.values == {(): 0.0}


# --- embeddings: exact values, and an upstream that ignores encoding_format ----------------------


def _fake_vector(text: str, dims: int = 8) -> list[float]:
    """The fake upstream's embedding of ``text``, computed independently (gateway/demo.py)."""
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i % len(digest)] - 128) / 128, 4) for i in range(dims)]


def _floats(embedding: list[float] | str) -> list[float]:
    """An embedding as floats (the SDK hands back the base64 string when base64 was explicit)."""
    if isinstance(embedding, list):
        return embedding
    packed = base64.b64decode(embedding, validate=True)
    return list(struct.unpack(f"<{len(packed) // 4}f", packed))


@pytest.mark.parametrize("encoding", ["base64", "float", None])
def test_embeddings_equal_the_upstream_vectors(
    stack: Stack, client: OpenAI, encoding: Literal["base64", "float"] | None
) -> None:
    inputs = ["alpha", "beta", "gamma"]
    if encoding is None:
        result = client.embeddings.create(model="test-embed", input=inputs)
    else:
        result = client.embeddings.create(
            model="test-embed", input=inputs, encoding_format=encoding
        )
    (_, body), *_ = stack.fake.requests
    assert body["encoding_format"] == (encoding or "base64")  # forwarded as the client asked
    assert [d.index for d in result.data] == [0, 1, 2]
    for item, text in zip(result.data, inputs, strict=True):
        tolerance = 1e-7 if encoding == "float" else 1e-6  # float32 on the base64 path
        assert _floats(item.embedding) == pytest.approx(_fake_vector(text), abs=tolerance)
    assert result.model == "fake-embed"


UPSTREAM_ENCODING = {"floats-only": "float", "base64-only": "base64"}


async def _stubborn_embeddings(request: web.Request) -> web.Response:
    """An upstream that answers in one encoding whatever the request asked for."""
    body = orjson.loads(await request.read())
    data = []
    for index, text in enumerate(body["input"]):
        vector = _fake_vector(text)
        embedding: object = vector
        if UPSTREAM_ENCODING[body["model"]] == "base64":
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    usage = {"prompt_tokens": 2, "total_tokens": 2}
    return web.json_response(
        {"object": "list", "data": data, "model": body["model"], "usage": usage}
    )


@pytest.fixture
def stubborn_v1(background: BackgroundLoop) -> Iterator[str]:
    upstream, port = background.run(serve_post("/v1/embeddings", _stubborn_embeddings))
    models = {
        name: ModelConfig(upstream="fake", target=name, kind="embedding")
        for name in UPSTREAM_ENCODING
    }
    config = replace(make_config(f"http://127.0.0.1:{port}"), models=models)
    gateway, gateway_port = background.run(start_gateway(config, Metrics()))
    yield f"http://127.0.0.1:{gateway_port}/v1"
    background.run(gateway.cleanup())
    background.run(upstream.cleanup())


@pytest.mark.parametrize("model", list(UPSTREAM_ENCODING))
@pytest.mark.parametrize("encoding", ["base64", "float"])
def test_embeddings_reencoded_when_the_upstream_ignores_the_format(
    stubborn_v1: str, model: str, encoding: Literal["base64", "float"]
) -> None:
    """The gateway converts between float lists and little-endian float32 base64 as needed."""
    inputs = ["one", "two"]
    with OpenAI(base_url=stubborn_v1, api_key=default_token(), max_retries=0) as sdk:
        raw = sdk.embeddings.with_raw_response.create(
            model=model, input=inputs, encoding_format=encoding
        )
    wire = orjson.loads(raw.content)["data"]
    expected_type = str if encoding == "base64" else list
    assert all(isinstance(item["embedding"], expected_type) for item in wire)
    result = raw.parse()
    for item, text in zip(result.data, inputs, strict=True):
        assert _floats(item.embedding) == pytest.approx(_fake_vector(text), abs=1e-6)
