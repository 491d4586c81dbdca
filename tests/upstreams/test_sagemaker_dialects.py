"""The sans-io decoders: any cut of a container's output gives the same OpenAI chunks."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.config import SageMakerDialect
from gateway.errors import RateLimited, UpstreamError, UpstreamProtocolError
from gateway.upstreams.sagemaker_dialects import (
    StreamDecoder,
    StreamFailed,
    StreamSettings,
    completion,
    finish_reason,
)
from gateway.wire import Chunk
from tests.fakes.sagemaker import TEXT, FakeEndpoint, stream_output, tokens_of

BODY: dict[str, Any] = {"inputs": "<prompt>", "messages": [{"role": "user", "content": "hi"}]}
DIALECTS: list[SageMakerDialect] = ["tgi", "messages", "lmi", "vllm"]


def _settings(include_usage: bool = True, max_event_bytes: int = 1 << 20) -> StreamSettings:
    return StreamSettings(
        chunk_id="chatcmpl-1",
        created=7,
        model="m",
        include_usage=include_usage,
        prompt_chars=40,
        max_event_bytes=max_event_bytes,
    )


def _run(
    dialect: SageMakerDialect, parts: list[bytes], settings: StreamSettings | None = None
) -> list[dict[str, Any]]:
    decoder = StreamDecoder(dialect, settings or _settings())
    chunks: list[Chunk] = []
    for part in parts:
        chunks.extend(decoder.feed(part))
    chunks.extend(decoder.finish())
    return [orjson.loads(c.raw) for c in chunks]


def _text(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_two_way_cut_gives_the_same_chunks(dialect: SageMakerDialect) -> None:
    output = stream_output(FakeEndpoint(dialect=dialect), {**BODY, "stream_options": {}})
    whole = _run(dialect, [output])
    assert _text(whole) == TEXT
    for cut in range(1, len(output)):
        assert _run(dialect, [output[:cut], output[cut:]]) == whole


@pytest.mark.parametrize("dialect", DIALECTS)
def test_one_byte_parts(dialect: SageMakerDialect) -> None:
    output = stream_output(FakeEndpoint(dialect=dialect), BODY)
    chunks = _run(dialect, [output[i : i + 1] for i in range(len(output))])
    assert _text(chunks) == TEXT
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"


def test_native_chunks_are_openai_shaped() -> None:
    chunks = _run("tgi", [stream_output(FakeEndpoint(dialect="tgi"), BODY)])
    first, finish, usage = chunks[0], chunks[-2], chunks[-1]
    assert first == {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 7,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": tokens_of(TEXT)[0]},
                "logprobs": None,
                "finish_reason": None,
            }
        ],
    }
    assert finish["choices"] == [
        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    ]
    assert usage["choices"] == []
    n = len(tokens_of(TEXT)) + 1
    prompt = len(orjson.dumps(BODY["messages"])) // 4
    assert usage["usage"] == {
        "prompt_tokens": prompt,
        "completion_tokens": n,
        "total_tokens": prompt + n,
    }


def test_special_tokens_are_not_text() -> None:
    chunks = _run("tgi", [stream_output(FakeEndpoint(dialect="tgi"), BODY)])
    assert "</s>" not in _text(chunks)


def test_usage_chunk_only_when_asked() -> None:
    for dialect in DIALECTS:
        body = {**BODY, "stream_options": {"include_usage": True}}
        chunks = _run(
            dialect, [stream_output(FakeEndpoint(dialect=dialect), body)], _settings(False)
        )
        assert all(c["choices"] for c in chunks), dialect


def test_estimated_usage_is_marked() -> None:
    output = stream_output(FakeEndpoint(dialect="lmi", report_usage=False), BODY)
    usage = _run("lmi", [output])[-1]["usage"]
    assert usage["estimated"] is True
    assert usage["prompt_tokens"] == 10  # 40 characters / 4
    assert usage["completion_tokens"] == len(tokens_of(TEXT)) + 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [("eos_token", "stop"), ("stop_sequence", "stop"), ("length", "length"), ("stop", "stop"),
     ("tool_calls", "tool_calls"), ("something_new", "stop"), (None, "stop")],
)  # fmt: skip
def test_finish_reason_mapping(value: object, expected: str) -> None:
    assert finish_reason(value) == expected


@pytest.mark.parametrize("dialect", ["tgi", "lmi", "messages"])
def test_in_band_error_after_delivered_chunks(dialect: SageMakerDialect) -> None:
    output = stream_output(FakeEndpoint(dialect=dialect, inband_error_after=3), BODY)
    decoder = StreamDecoder(dialect, _settings())
    with pytest.raises(StreamFailed) as info:
        decoder.feed(output)
    assert _text([orjson.loads(c.raw) for c in info.value.chunks]) == "".join(tokens_of(TEXT)[:3])
    assert type(info.value.error) is UpstreamError


def test_in_band_429_is_rate_limited() -> None:
    decoder = StreamDecoder("messages", _settings())
    with pytest.raises(StreamFailed) as info:
        decoder.feed(b'data:{"error":{"message":"overloaded","http_status_code":429}}\n\n')
    assert isinstance(info.value.error, RateLimited)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_truncated_output_is_a_protocol_error(dialect: SageMakerDialect) -> None:
    output = stream_output(FakeEndpoint(dialect=dialect), BODY)
    decoder = StreamDecoder(dialect, _settings())
    delivered = decoder.feed(output[: len(output) // 2])
    with pytest.raises(StreamFailed) as info:
        decoder.finish()
    assert isinstance(info.value.error, UpstreamProtocolError)
    assert delivered


@pytest.mark.parametrize("dialect", ["tgi", "lmi"])
def test_oversized_event_is_refused(dialect: SageMakerDialect) -> None:
    decoder = StreamDecoder(dialect, _settings(max_event_bytes=1024))
    with pytest.raises(StreamFailed) as info:
        decoder.feed(b'data:{"token": {"text": "' + b"x" * 2048)
    assert isinstance(info.value.error, UpstreamProtocolError)


def test_output_after_the_end_marker_is_ignored() -> None:
    output = stream_output(FakeEndpoint(dialect="vllm"), BODY)
    decoder = StreamDecoder("vllm", _settings())
    decoder.feed(output)
    assert decoder.done
    assert decoder.feed(b"data: garbage\n\n") == []
    assert decoder.finish() == []


_TGI_ANSWER = [
    {
        "generated_text": "hello",
        "details": {"finish_reason": "eos_token", "generated_tokens": 2, "prefill": [{}, {}, {}]},
    }
]
_LMI_ANSWER = {
    "generated_text": "hello",
    "details": {"finish_reason": "length", "generated_tokens": 2, "prompt_tokens": 3},
}
_MESSAGES_ANSWER = {
    "id": "x",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hello"},
            "finish_reason": "eos_token",
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


@pytest.mark.parametrize(
    ("dialect", "body"),
    [("tgi", _TGI_ANSWER), ("lmi", _LMI_ANSWER), ("messages", _MESSAGES_ANSWER)],
)
def test_non_streamed_answers_become_chat_completions(dialect: SageMakerDialect, body: Any) -> None:
    obj = completion(dialect, orjson.dumps(body), _settings()).obj
    assert obj["object"] == "chat.completion"
    assert obj["choices"][0]["message"] == {"role": "assistant", "content": "hello"}
    assert obj["choices"][0]["finish_reason"] in ("stop", "length")
    assert obj["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def test_non_streamed_without_counts_is_estimated() -> None:
    obj = completion("tgi", b'[{"generated_text": "hello there"}]', _settings()).obj
    assert obj["usage"]["estimated"] is True
    assert obj["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("body", [b"not json", b'{"unexpected": 1}', b"[]"])
def test_non_streamed_garbage_is_a_protocol_error(body: bytes) -> None:
    with pytest.raises(UpstreamProtocolError):
        completion("tgi", body, _settings())
