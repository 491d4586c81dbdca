"""The ledger across a PostgreSQL outage: records spill to the local file while it is down and are
replayed once it is back, exactly once; a shut-down worker's spill is adopted by the next one."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path

import pytest

from gateway.errors import LedgerFull
from gateway.metering.file_sink import FileSink
from gateway.metering.ledger import Ledger
from gateway.metering.postgres import PostgresSink, migrate
from gateway.metering.records import UsageRecord
from gateway.metering.sink import UsageQuery
from gateway.metering.spill import Spill
from tests.metering.factory import record
from tests.postgres_server import PostgresServer

ALL = UsageQuery(None, dt.date(2000, 1, 1), dt.date(2100, 1, 1))


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own (it gets stopped)."""
    server = PostgresServer().start()
    yield server
    server.close()


def _ledger(dsn: str, spill_dir: Path, **overrides: float) -> Ledger:
    sink = PostgresSink(dsn, pool_size=2, command_timeout_s=1.0)
    settings = {"queue_size": 1000, "batch_size": 50, "batch_interval_s": 0.02,
                "retry_interval_s": 0.05, **overrides}  # fmt: skip
    return Ledger(sink, Spill(spill_dir, 1 << 20), **settings)  # type: ignore[arg-type]


@pytest.fixture
async def ledger(own_server: PostgresServer, tmp_path: Path) -> AsyncIterator[Ledger]:
    await migrate(own_server.dsn())
    opened = _ledger(own_server.dsn(), tmp_path / "spill")
    await opened.start()
    yield opened
    await opened.drain(1.0)


async def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    for _ in range(round(timeout_s / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def _spills(folder: Path) -> list[Path]:
    return await asyncio.to_thread(lambda: list(folder.glob("spill-*.jsonl")))


async def test_outage_spills_and_replays_exactly_once(
    ledger: Ledger, own_server: PostgresServer
) -> None:
    before = [record() for _ in range(120)]
    for r in before:
        ledger.record(r)
    await _until(lambda: len(ledger) == 0 and ledger.written >= 120)
    await asyncio.to_thread(own_server.stop)
    during = [record() for _ in range(300)]
    for r in during:
        ledger.record(r)
    await _until(lambda: not ledger.healthy and len(ledger) == 0)  # all in the spill file
    assert ledger.spill.pending
    assert ledger.accepting
    await asyncio.to_thread(own_server.start)
    await _until(lambda: ledger.healthy and not ledger.spill.pending)
    rows = await ledger.sink.records(ALL)
    assert sorted(r.request_id for r in rows) == sorted(r.request_id for r in before + during)


async def test_full_queue_and_spill_refuse_admission_but_keep_records(
    own_server: PostgresServer, tmp_path: Path
) -> None:
    await migrate(own_server.dsn())
    ledger = Ledger(
        PostgresSink(own_server.dsn(), pool_size=1, command_timeout_s=1.0),
        Spill(tmp_path, 0),
        queue_size=5, batch_size=5, batch_interval_s=0.02, retry_interval_s=0.05,
    )  # fmt: skip
    await ledger.start()
    await asyncio.to_thread(own_server.stop)
    kept = [record() for _ in range(8)]  # admitted before the limit was seen: never dropped
    for r in kept:
        ledger.record(r)
    await _until(lambda: not ledger.healthy)
    assert not ledger.accepting
    with pytest.raises(LedgerFull, match="usage ledger is unavailable") as info:
        ledger.admit()
    assert info.value.headers()["retry-after"] == "1"
    await asyncio.to_thread(own_server.start)
    await _until(lambda: len(ledger) == 0)
    ledger.admit()  # accepting again
    rows = await ledger.sink.records(ALL)
    assert {r.request_id for r in rows} == {r.request_id for r in kept}
    await ledger.drain(1.0)


async def test_shutdown_during_an_outage_spills_and_the_next_worker_replays(
    own_server: PostgresServer, tmp_path: Path
) -> None:
    dsn = own_server.dsn()
    await migrate(dsn)
    first = _ledger(dsn, tmp_path)
    await first.start()
    await asyncio.to_thread(own_server.stop)
    records = [record() for _ in range(40)]
    for r in records:
        first.record(r)
    await first.drain(0.5)  # PostgreSQL down: everything goes to the spill file
    assert len(first) == 0
    assert len(await _spills(tmp_path)) == 1
    await asyncio.to_thread(own_server.start)
    second = _ledger(dsn, tmp_path)
    await second.start()
    await _until(lambda: second.written >= 40)
    rows = await second.sink.records(ALL)
    assert sorted(r.request_id for r in rows) == sorted(r.request_id for r in records)
    await second.drain(1.0)
    assert await _spills(tmp_path) == []  # adopted file removed, own empty one too


async def test_a_torn_last_spill_line_is_skipped(tmp_path: Path) -> None:
    spill = Spill(tmp_path, 1 << 20)
    await spill.open()
    good = record()
    assert await spill.append([good])
    [own] = await _spills(tmp_path)
    await asyncio.to_thread(_append_bytes, own, b'{"request_id": "req_torn", "tena')
    spill.size = (await asyncio.to_thread(own.stat)).st_size
    assert [r.request_id for r in await spill.read_own()] == [good.request_id]
    await spill.close()


def _append_bytes(path: Path, data: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(data)


class _BrokenSink(FileSink):
    """A sink whose writes raise something no sink should (a driver bug) until ``fixed``."""

    fixed = False

    async def write(self, records: Sequence[UsageRecord]) -> None:
        if not self.fixed:
            raise RuntimeError("driver in a bad state")
        await super().write(records)


async def test_the_writer_survives_an_unexpected_sink_error(tmp_path: Path) -> None:
    sink = _BrokenSink(tmp_path / "usage.jsonl")
    ledger = Ledger(sink, Spill(tmp_path / "spill", 1 << 20), queue_size=100, batch_size=10,
                    batch_interval_s=0.02, retry_interval_s=0.05)  # fmt: skip
    await ledger.start()
    kept = [record() for _ in range(5)]
    for r in kept:
        ledger.record(r)
    await _until(lambda: not ledger.healthy and ledger.spill.pending)
    sink.fixed = True
    await _until(lambda: ledger.healthy and not ledger.spill.pending)
    assert {r.request_id for r in await sink.records(ALL)} == {r.request_id for r in kept}
    await ledger.drain(1.0)


class _SlowSink(FileSink):
    """The file sink on a slow disk (each batch takes ``delay_s``), counting its batches."""

    delay_s = 0.02

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.batches: list[int] = []

    async def write(self, records: Sequence[UsageRecord]) -> None:
        await asyncio.sleep(self.delay_s)
        await super().write(records)
        self.batches.append(len(records))


async def test_under_steady_load_the_writer_batches_by_interval(tmp_path: Path) -> None:
    sink = _SlowSink(tmp_path / "usage.jsonl")
    ledger = Ledger(sink, Spill(tmp_path / "spill", 1 << 20), queue_size=10_000,
                    batch_size=1000, batch_interval_s=0.1, retry_interval_s=0.05)  # fmt: skip
    await ledger.start()
    sent = []
    started = time.monotonic()
    for _ in range(60):  # ~0.6 s of 10 records every ~10 ms: a record arrives during every write
        for _ in range(10):
            sent.append(record())
            ledger.record(sent[-1])
        await asyncio.sleep(0.01)
    intervals = (time.monotonic() - started) / 0.1
    await ledger.drain(2.0)
    # One batch per interval (plus the drain), not one per write's worth of new records (a write
    # takes 20 ms: 5 times as many batches).
    assert len(sink.batches) <= intervals + 2, sink.batches
    assert sum(sink.batches) == len(sent)
    assert [r.request_id for r in await sink.records(ALL)] == [r.request_id for r in sent]
