from __future__ import annotations

import pytest

from gateway.sse import SSEDecoder, SSEEvent, SSEProtocolError

STREAM = (
    b": comment line\n"
    b'data: {"a": 1}\n\n'
    b"event: update\ndata:no-space\n\n"
    b"data: line one\ndata: line two\n\n"
    b"id: 7\nretry: 100\ndata: [DONE]\n\n"
)
EXPECTED = [
    SSEEvent(b'{"a": 1}'),
    SSEEvent(b"no-space", "update"),
    SSEEvent(b"line one\nline two"),
    SSEEvent(b"[DONE]"),
]


def decode(parts: list[bytes], max_event_bytes: int = 1024) -> list[SSEEvent]:
    decoder = SSEDecoder(max_event_bytes)
    events: list[SSEEvent] = []
    for part in parts:
        events.extend(decoder.feed(part))
    events.extend(decoder.flush())
    return events


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_every_split_position_gives_the_same_events(newline: bytes) -> None:
    stream = STREAM.replace(b"\n", newline)
    for cut in range(len(stream) + 1):
        assert decode([stream[:cut], stream[cut:]]) == EXPECTED, cut


def test_every_pair_of_split_positions_with_crlf() -> None:
    stream = STREAM.replace(b"\n", b"\r\n")[:60]
    whole = decode([stream])
    for i in range(len(stream)):
        for j in range(i, len(stream)):
            assert decode([stream[:i], stream[i:j], stream[j:]]) == whole


def test_byte_by_byte_feeding() -> None:
    assert decode([bytes([b]) for b in STREAM]) == EXPECTED


def test_mixed_line_endings() -> None:
    assert decode([b"data: a\r\n\ndata: b\r\rdata: c\n\r\n"]) == [
        SSEEvent(b"a"),
        SSEEvent(b"b"),
        SSEEvent(b"c"),
    ]


def test_comments_and_blank_lines_alone_dispatch_nothing() -> None:
    assert decode([b": ping\n\n: keep-alive\n\n\n\n"]) == []


def test_events_are_dispatched_as_soon_as_complete() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\n") == []
    assert decoder.feed(b"\n") == [SSEEvent(b"x")]


def test_unterminated_final_event_is_flushed() -> None:
    assert decode([b"data: tail"]) == [SSEEvent(b"tail")]


def test_oversized_event_is_refused_even_without_a_line_end() -> None:
    decoder = SSEDecoder(max_event_bytes=64)
    with pytest.raises(SSEProtocolError):
        decoder.feed(b"data: " + b"x" * 100)


def test_oversized_event_across_many_data_lines_is_refused() -> None:
    decoder = SSEDecoder(max_event_bytes=64)
    for _ in range(5):
        decoder.feed(b"data: 0123456789\n")
    with pytest.raises(SSEProtocolError):
        decoder.feed(b"data: 0123456789\n")


def test_size_bound_resets_between_events() -> None:
    decoder = SSEDecoder(max_event_bytes=64)
    for _ in range(100):
        assert decoder.feed(b"data: " + b"y" * 50 + b"\n\n") == [SSEEvent(b"y" * 50)]
