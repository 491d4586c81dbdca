"""The JSON-lines form of a record: the same bytes as ``to_json`` rendered by orjson, read back
field for field, and the request id read from a line without parsing it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import orjson
import pytest

from gateway.metering import jsonl
from gateway.metering.records import TokenUsage, UsageRecord
from tests.metering.factory import T0, record

RECORDS = [
    record(),
    record(started_at=dt.datetime.fromtimestamp(1_795_000_000.123456, dt.UTC),
           finished_at=dt.datetime.fromtimestamp(1_795_000_001.5, dt.UTC)),
    record(app_id=None, app_user_id=None, conversation_id=None, ttft_ms=None, phi_counts={},
           usage=TokenUsage(3, 0, cached_tokens=2, reasoning_tokens=1, estimated=True),
           cost=Decimal("1E-7"), billed=Decimal("0"), outcome="client_disconnected"),
    record(request_id='req_"quoted"\\', tenant_id="t\u00e9nant", model="m\u00fcnchen/\u2603"),
    record(started_at=T0.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30)))),
]  # fmt: skip


@pytest.mark.parametrize("one", RECORDS)
def test_encode_writes_the_bytes_of_to_json(one: UsageRecord) -> None:
    assert jsonl.encode(one) == orjson.dumps(one.to_json()) + b"\n"


@pytest.mark.parametrize("one", RECORDS)
def test_decode_reads_back_every_field(one: UsageRecord) -> None:
    assert jsonl.decode(jsonl.encode(one)) == one


@pytest.mark.parametrize("one", RECORDS)
def test_request_id_of_a_line(one: UsageRecord) -> None:
    assert jsonl.request_id(jsonl.encode(one)) == one.request_id


def test_request_id_of_lines_it_did_not_write() -> None:
    reordered = orjson.dumps({"tenant_id": "t", "request_id": "req_2"})
    assert jsonl.request_id(reordered) == "req_2"  # another key first: parsed
    assert jsonl.request_id(b'{"request_id":"req_to') == ""  # torn inside the id
    assert jsonl.request_id(b'{"request_id":"req_1","tena') == "req_1"  # torn later: id intact
    assert jsonl.request_id(b"garbage\n") == ""
    assert jsonl.request_id(b'{"request_id":"\xff\xfe","x":1}\n') == ""  # not UTF-8
    assert jsonl.request_id(b'{"other":1}\n') == ""
