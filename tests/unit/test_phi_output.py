"""``OutputTransformer``: routing per choice and field, flush before finish, refusal of unknown
shapes, and streamed == non-streamed for every split (hypothesis)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from gateway.errors import RedactionFailed
from gateway.phi.detectors import Detector
from gateway.phi.redactor import PlaceholderBook
from gateway.phi.transducer import Masker, Reidentifier
from gateway.privacy.output import Chain, OutputTransformer
from gateway.wire import Payload

ORIGINALS = {"[PHI_NAME_1]": "Jane Doe", "[PHI_PHONE_1]": "212-555-0199"}
_DETECTOR = Detector()


def transformer(reidentify: bool) -> OutputTransformer:
    book = PlaceholderBook(ORIGINALS)

    def make() -> Chain:
        return Chain(Masker(_DETECTOR, book), Reidentifier(ORIGINALS) if reidentify else None)

    return OutputTransformer(make)


def chunk(*choices: dict[str, Any]) -> Payload:
    return Payload(obj={"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                        "choices": list(choices)})  # fmt: skip


def content_of(chunks: list[Payload], index: int = 0) -> str:
    return "".join(
        c["delta"].get("content") or ""
        for p in chunks
        for c in p.obj["choices"]
        if c["index"] == index
    )


TEXTS = st.sampled_from(
    [
        "Call [PHI_NAME_1] at 415-555-0123 or [phi phone 1].",
        "Jane Doe, MRN: A7654321, saw Dr. John Roe on 03/04/2021.",
        "No PHI here, just words and 42 numbers.",
        "Email jdoe@example.com; SSN 123-45-6789; [PHI_NAME_1]",
    ]
)


@settings(max_examples=60, deadline=None)
@given(text=TEXTS, cuts=st.lists(st.integers(min_value=1, max_value=60), max_size=12),
       reidentify=st.booleans())  # fmt: skip
def test_streamed_equals_whole_for_every_split(
    text: str, cuts: list[int], reidentify: bool
) -> None:
    positions = sorted({c for c in cuts if c < len(text)})
    pieces = [text[a:b] for a, b in zip([0, *positions], [*positions, len(text)], strict=True)]
    stream = transformer(reidentify)
    out: list[Payload] = []
    for piece in pieces:
        out += stream.batch(
            [chunk({"index": 0, "delta": {"content": piece}, "finish_reason": None})]
        )
    out += stream.batch([chunk({"index": 0, "delta": {}, "finish_reason": "stop"})])
    whole = Payload(obj={"choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                      "finish_reason": "stop"}]})  # fmt: skip
    transformer(reidentify).completion(whole)
    assert content_of(out) == whole.obj["choices"][0]["message"]["content"]
    assert out[-1].obj["choices"][0]["finish_reason"] == "stop"
    assert "content" not in out[-1].obj["choices"][0]["delta"]  # flushed before the finish chunk
    if not reidentify:
        assert "Jane Doe" not in content_of(out)


def test_choices_and_tool_calls_are_routed_separately() -> None:
    stream = transformer(reidentify=False)
    out = stream.batch(
        [
            chunk({"index": 0, "delta": {"content": "Jane "}, "finish_reason": None},
                  {"index": 1, "delta": {"tool_calls": [
                      {"index": 0, "id": "a", "type": "function",
                       "function": {"name": "f", "arguments": '{"p": "Jane'}},
                      {"index": 1, "function": {"arguments": '{"q": "212-555'}}]},
                   "finish_reason": None}),
            chunk({"index": 1, "delta": {"tool_calls": [
                      {"index": 0, "function": {"arguments": ' Doe"}'}},
                      {"index": 1, "function": {"arguments": '-0199"}'}}]},
                   "finish_reason": "tool_calls"}),
        ]
    )  # fmt: skip
    out += stream.batch([chunk({"index": 0, "delta": {"content": "Doe"}, "finish_reason": None})])
    out += stream.finish()
    args: dict[int, str] = {}
    for payload in out:
        for choice in payload.obj["choices"]:
            for call in choice["delta"].get("tool_calls") or ():
                piece = call.get("function", {}).get("arguments") or ""
                args[call["index"]] = args.get(call["index"], "") + piece
    assert args == {0: '{"p": "[PHI_NAME_1]"}', 1: '{"q": "[PHI_PHONE_1]"}'}
    assert content_of(out) == "[PHI_NAME_1]"


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_text_is_masked_and_reidentified_like_content(field: str) -> None:
    pieces = ["Thinking: Jane", " Doe called 415-55", "5-0123 about [PHI_", "NAME_1]."]
    for reidentify in (False, True):
        stream = transformer(reidentify=reidentify)
        out = []
        for piece in pieces:
            out += stream.batch(
                [chunk({"index": 0, "delta": {field: piece}, "finish_reason": None})]
            )
        out += stream.batch([chunk({"index": 0, "delta": {}, "finish_reason": "stop"})])
        text = "".join(c["delta"].get(field) or "" for p in out for c in p.obj["choices"])
        assert "415-555-0123" not in text
        assert text.startswith("Thinking: ")
        if reidentify:
            assert ORIGINALS["[PHI_NAME_1]"] in text
        else:
            assert "Jane Doe" not in text
            assert "[PHI_NAME_1]" in text


@pytest.mark.parametrize(
    "bad",
    [
        {"choices": [{"index": 0, "delta": {"reasoning_content": ["Jane"]}}]},
        {"choices": [{"index": 0, "delta": {"thinking": "Jane"}}]},
        {"choices": [{"index": 0, "delta": {"content": 5}}]},
        {"choices": [{"index": 0, "delta": {}, "logprobs": {"content": [{"token": "J"}]}}]},
        {"choices": [{"index": "0", "delta": {}}]},
        {"choices": {"index": 0}},
        {"choices": [], "citations": ["https://example.org/jane"]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "extra": "x"}]}}]},
    ],
)
def test_unknown_shapes_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(RedactionFailed):
        transformer(reidentify=True).batch([Payload(obj=bad)])


def test_usage_and_null_fields_pass() -> None:
    usage = Payload(obj={"id": "c", "choices": [], "usage": {"total_tokens": 3}})
    nulls = chunk({"index": 0, "delta": {"content": None, "function_call": None}, "logprobs": None,
                   "finish_reason": None})  # fmt: skip
    out = transformer(reidentify=True).batch([usage, nulls])
    assert out[0].obj["usage"] == {"total_tokens": 3}
    assert out[1].obj["choices"][0]["delta"] == {"content": None, "function_call": None}


def test_containers_without_text_pass_and_with_text_are_refused() -> None:
    message = {"role": "assistant", "content": "hi", "provider_specific_fields": {"refusal": None}}
    ok = Payload(
        obj={"choices": [{"index": 0, "message": message, "provider_specific_fields": {}}]}
    )
    transformer(reidentify=False).completion(ok)
    assert ok.obj["choices"][0]["message"]["provider_specific_fields"] == {"refusal": None}
    bad = {**message, "provider_specific_fields": {"thinking": ["Jane Doe"]}}
    with pytest.raises(RedactionFailed):
        transformer(reidentify=False).completion(
            Payload(obj={"choices": [{"index": 0, "message": bad}]})
        )
