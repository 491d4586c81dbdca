"""The file ledger's bounded memory of request ids: the writer forgets old ids, readers still count
each request once."""

from __future__ import annotations

import datetime as dt
import errno
import os
from pathlib import Path
from typing import IO

import pytest

from gateway.metering import jsonl
from gateway.metering.file_sink import FileSink, RecentIds
from gateway.metering.records import TokenUsage
from gateway.metering.sink import SinkUnavailable, UsageQuery
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


async def test_two_writers_of_one_file_keep_one_line_per_request(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    first, second = FileSink(path), FileSink(path)  # two workers: each its own memory of ids
    await first.start()
    shared, own = record(), record()
    await first.write([shared])
    await second.write([shared, own])  # catches up with the first's line: only `own` is new
    await first.write([own, shared])  # catches up with the second's line: nothing is new
    lines = path.read_bytes().splitlines()
    assert [jsonl.request_id(line) for line in lines] == [shared.request_id, own.request_id]


async def test_a_replaced_file_is_read_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    sink, other = FileSink(path), FileSink(path)
    await sink.start()
    await sink.write([record() for _ in range(5)])
    path.rename(tmp_path / "usage.jsonl.1")  # rotated: the ledger starts a new, smaller file
    again = record()
    await other.write([again])
    await sink.write([again])  # the new file is shorter than what `sink` had seen: read it all
    assert path.read_bytes().count(again.request_id.encode()) == 1


async def test_a_torn_line_does_not_swallow_the_next_record(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    sink = FileSink(path)
    await sink.start()
    before, after = record(), record()
    await sink.write([before])
    with path.open("ab") as handle:  # another process crashed mid-append
        handle.write(jsonl.encode(record())[:40])
    await sink.write([after])
    assert [r.request_id for r in await sink.records(ALL)] == [
        before.request_id, after.request_id
    ]  # fmt: skip
    assert len(path.read_bytes().splitlines()) == 3  # the torn line was ended, not extended


async def test_a_reader_skips_a_line_that_is_not_a_record(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    kept = record()
    path.write_bytes(b'{"request_id":"req_x","tenant_id":"a"}\n' + jsonl.encode(kept) + b"{")
    assert [r.request_id for r in await FileSink(path).records(ALL)] == [kept.request_id]


class _Counting(FileSink):
    catch_ups = 0

    def _catch_up(self, handle: IO[bytes], size: int) -> bool:
        self.catch_ups += 1
        return super()._catch_up(handle, size)


async def test_the_file_is_read_only_when_another_writer_grew_it(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    sink, other = _Counting(path), FileSink(path)
    await sink.start()
    await sink.write([record()])  # a new file, as large as last seen (empty): nothing to read
    await sink.write([record()])
    assert sink.catch_ups == 0
    await other.write([record()])
    await sink.write([record()])
    assert sink.catch_ups == 1


def test_recent_ids_keep_the_newest_in_order() -> None:
    recent = RecentIds(100)
    for i in range(10_000):
        recent.add(f"req_{i}")
        recent.add(f"req_{i}")  # a repeat is neither stored twice nor moved
    assert len(recent) == 100
    assert list(recent) == [f"req_{i}" for i in range(9_900, 10_000)]
    assert "req_9900" in recent
    assert "req_9899" not in recent


async def test_a_batch_counts_as_written_only_once_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "usage.jsonl"
    sink = FileSink(path)
    await sink.start()
    one = record()

    def disk_full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(os, "write", disk_full)  # what a full disk answers
        with pytest.raises(SinkUnavailable, match="No space left"):
            await sink.write([one])
    await sink.write([one])  # the ledger's retry: not skipped as already written
    assert [r.request_id for r in await sink.records(ALL)] == [one.request_id]
