"""Input redaction of chat bodies: every text field, consistent placeholders, fail closed."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from gateway.errors import RedactionFailed
from gateway.phi.categories import Category
from gateway.phi.detectors import Detector
from gateway.phi.redactor import PlaceholderBook, redact_chat, redact_text

DETECTOR = Detector()


def _body() -> dict[str, Any]:
    return {
        "model": "m",
        "messages": [
            {"role": "system", "content": "You help Dr. Alice Wong."},
            {"role": "user", "name": "Mary Johnson", "content": "My SSN is 123-45-6789."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Call me at (212) 555-0199, Mary Johnson here."},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {
                            "name": "lookup",
                            "arguments": '{"mrn": "MRN 00123456", "ssn": 123456789, "n": 3}',
                        },
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "Found patient John Smith."},
            {
                "role": "assistant",
                "function_call": {"name": "f", "arguments": "email a@b.example.com"},
            },
        ],
    }


def test_every_text_field_is_redacted_and_the_input_untouched() -> None:
    body = _body()
    before = copy.deepcopy(body)
    result = redact_chat(body, DETECTOR)
    assert body == before
    out = orjson.dumps(result.body).decode()
    for value in result.originals.values():
        assert value not in out
    msgs = result.body["messages"]
    assert msgs[0]["content"] == "You help Dr. [PHI_NAME_1]."
    assert msgs[1]["name"] == "[PHI_NAME_2]"
    assert msgs[1]["content"] == "My SSN is [PHI_SSN_1]."
    assert msgs[2]["content"][0]["text"] == "Call me at [PHI_PHONE_1], [PHI_NAME_2] here."
    args = orjson.loads(msgs[3]["tool_calls"][0]["function"]["arguments"])
    assert args == {"mrn": "MRN [PHI_MEDICAL_RECORD_1]", "ssn": "[PHI_SSN_2]", "n": 3}
    assert msgs[4]["content"] == "Found patient [PHI_NAME_3]."
    assert msgs[5]["function_call"]["arguments"] == "email [PHI_EMAIL_1]"
    assert result.body["model"] == "m"
    assert result.originals["[PHI_NAME_2]"] == "Mary Johnson"
    assert result.originals["[PHI_SSN_2]"] == "123456789"


def test_same_value_same_placeholder_across_requests_of_a_conversation() -> None:
    book = PlaceholderBook()
    first = redact_text("Patient John Smith, SSN 123-45-6789", DETECTOR, book)
    second = redact_text("Is John Smith ok? Call Mary Johnson.", DETECTOR, book)
    assert first == "Patient [PHI_NAME_1], SSN [PHI_SSN_1]"
    assert second == "Is [PHI_NAME_1] ok? Call [PHI_NAME_2]."
    again = PlaceholderBook(book.originals)
    assert again.placeholder(Category.NAME, "John Smith") == "[PHI_NAME_1]"
    assert again.placeholder(Category.NAME, "Zed Q") == "[PHI_NAME_3]"


def test_book_rejects_non_placeholders() -> None:
    with pytest.raises(ValueError, match="placeholder"):
        PlaceholderBook({"NAME_1": "x"})


@pytest.mark.parametrize(
    "message",
    [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x"}}]},
        {"role": "user", "content": [{"type": "mystery", "text": "John Smith"}]},
        {"role": "user", "content": 42},
        {"role": "user", "content": ["bare string part"]},
        {"role": "user", "name": 7, "content": "hi"},
        {"role": "assistant", "tool_calls": "nope"},
        {"role": "assistant", "tool_calls": ["nope"]},
        {"role": "assistant", "tool_calls": [{"function": "nope"}]},
        {"role": "assistant", "tool_calls": [{"function": {"arguments": 5}}]},
        "not a message",
    ],
)
def test_uninspectable_or_malformed_content_fails_closed(message: object) -> None:
    book = PlaceholderBook()
    with pytest.raises(RedactionFailed):
        redact_chat(
            {"messages": [{"role": "user", "content": "SSN 123-45-6789"}, message]}, DETECTOR, book
        )
    assert len(book) == 0  # nothing issued from a failed body


def test_messages_must_be_a_list() -> None:
    with pytest.raises(RedactionFailed):
        redact_chat({"messages": None}, DETECTOR)


class _Broken(Detector):
    def find(self, text: str) -> list[Any]:
        raise RuntimeError("engine failure")


def test_a_detector_error_fails_closed_without_a_body() -> None:
    with pytest.raises(RedactionFailed) as info:
        redact_chat(_body(), _Broken())
    assert isinstance(info.value.__cause__, RuntimeError)
    assert info.value.http_status == 500
    assert "123-45-6789" not in str(info.value)


def test_json_arguments_with_odd_values() -> None:
    body = {
        "messages": [
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "function": {
                            "arguments": '{"a": [true, null, 1.5, {"k": "SSN 123-45-6789"}]}'
                        }
                    }
                ],
            }
        ]
    }
    result = redact_chat(body, DETECTOR)
    args = orjson.loads(result.body["messages"][0]["tool_calls"][0]["function"]["arguments"])
    assert args == {"a": [True, None, 1.5, {"k": "SSN [PHI_SSN_1]"}]}


@pytest.mark.parametrize(
    ("text", "zip3", "expected"),
    [
        ("Lives in Springfield, IL 62704.", True, "Lives in [PHI_LOCATION_1], IL 627XX."),
        ("ZIP code 03601-1234.", True, "ZIP code 000XX."),  # a restricted prefix
        ("zip: 94110", True, "zip: 941XX"),
        ("Lives in Springfield, IL 62704.", False, "Lives in [PHI_LOCATION_1]."),
        ("zip: 94110", False, "zip: [PHI_LOCATION_1]"),
    ],
)
def test_zip3_keeps_the_safe_harbor_prefix(text: str, zip3: bool, expected: str) -> None:
    book = PlaceholderBook(zip3=zip3)
    assert redact_text(text, DETECTOR, book) == expected
    if zip3:  # the ZIP itself is never stored
        assert not any(ch.isdigit() for ch in "".join(book.originals.values()))
    assert book.copy().zip3 is zip3
