"""The fake's event-stream frames, checked against botocore's own parser."""

from __future__ import annotations

import orjson
import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

from tests.fakes.sagemaker import encode_frame, exception_frame, payload_part


def _parse(*chunks: bytes) -> list[tuple[dict[str, object], bytes]]:
    buffer = EventStreamBuffer()
    messages: list[tuple[dict[str, object], bytes]] = []
    for chunk in chunks:
        buffer.add_data(chunk)
        for message in buffer:
            response = message.to_response_dict()
            messages.append((dict(response["headers"]), response["body"]))
    return messages


def test_payload_part_parses_with_its_headers() -> None:
    [(headers, payload)] = _parse(payload_part(b'data:{"token":'))
    assert headers == {
        ":event-type": "PayloadPart",
        ":content-type": "application/octet-stream",
        ":message-type": "event",
    }
    assert payload == b'data:{"token":'


def test_frames_split_at_every_byte_reassemble() -> None:
    frames = payload_part("é🎉".encode()) + payload_part(b"") + payload_part(b"x" * 300)
    for cut in range(1, len(frames)):
        parsed = _parse(frames[:cut], frames[cut:])
        assert [p for _, p in parsed] == ["é🎉".encode(), b"", b"x" * 300]


def test_exception_frame_is_a_modeled_exception() -> None:
    [(headers, payload)] = _parse(
        exception_frame("ModelStreamError", "boom", "ModelInvocationTimeExceeded")
    )
    assert headers[":message-type"] == "exception"
    assert headers[":exception-type"] == "ModelStreamError"
    assert orjson.loads(payload) == {"Message": "boom", "ErrorCode": "ModelInvocationTimeExceeded"}


@pytest.mark.parametrize("where", ["prelude", "message"])
def test_corrupt_frames_fail_botocore_checksums(where: str) -> None:
    frame = bytearray(encode_frame({":message-type": "event"}, b"payload"))
    frame[6 if where == "prelude" else 20] ^= 0xFF
    with pytest.raises(ChecksumMismatch):
        _parse(bytes(frame))
