"""The file ledger's bounded memory of request ids: the writer forgets old ids, readers still count
each request once."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from gateway.metering.file_sink import FileSink
from gateway.metering.records import TokenUsage
from gateway.metering.sink import UsageQuery
from tests.metering.factory import T0, record

ALL = UsageQuery(None, T0.date() - dt.timedelta(days=1), T0.date() + dt.timedelta(days=1))


async def test_the_writer_remembers_a_bounded_number_of_ids(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "usage.jsonl", remember=3)
    await sink.start()
    records = [record() for _ in range(10)]
    for one in records:
        await sink.write([one])
    assert len(sink._seen) == 3  # the newest three, not all ten
    assert list(sink._seen) == [r.request_id for r in records[-3:]]


async def test_a_replay_older_than_the_memory_still_counts_once(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "usage.jsonl", remember=2)
    await sink.start()
    first = record(request_id="req_old")
    await sink.write([first, record(), record()])  # req_old is forgotten by the writer
    replay = record(request_id="req_old", usage=TokenUsage(input_tokens=1, output_tokens=1))
    await sink.write([replay])
    lines = (tmp_path / "usage.jsonl").read_bytes().count(b"req_old")
    assert lines == 2  # appended again, since the writer no longer knew it ...
    rows = [r for r in await sink.records(ALL) if r.request_id == "req_old"]
    assert len(rows) == 1  # ... but read once, as first written
    assert rows[0].usage.input_tokens == 100
    assert len(await sink.totals(ALL)) == 1
