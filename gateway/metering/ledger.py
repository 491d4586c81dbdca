"""The ledger: a bounded in-memory queue written in batches to a ``UsageSink``, spilled to a local
file while the sink is unreachable and replayed when it returns. Nothing is ever dropped.

- ``record`` only appends to a deque (no await, so a cancelled request cannot lose its record);
  the writer task takes batches of ``batch_size`` at least every ``batch_interval_s``.
- A batch leaves the queue only after the sink (or the spill file, fsynced) took it.
- While the sink fails, the queue is moved to the spill file (up to ``spill_max_bytes``) and the
  sink is retried every ``retry_interval_s``; once it answers, spilled records (this process's and
  those of dead processes) are replayed first. Replays may repeat records: sinks ignore repeats.
- ``admit`` refuses new requests (503 ``LedgerFull``) only when the queue and the spill are both
  full; requests already admitted still append (the overshoot is bounded by requests in flight).
- ``drain`` (shutdown, after in-flight requests settled) writes what is left within its budget and
  spills the rest, past the spill bound if need be.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from itertools import islice
from pathlib import Path
from typing import Final

from gateway import tasks
from gateway.config import MeteringConfig
from gateway.config.secret import Secret
from gateway.errors import LedgerFull
from gateway.metering.file_sink import FileSink
from gateway.metering.postgres import PostgresSink
from gateway.metering.records import UsageRecord
from gateway.metering.sink import SinkAuthFailed, SinkUnavailable, UsageSink
from gateway.metering.spill import Orphan, Spill
from gateway.telemetry import Metrics

WRITER_TASK: Final = "metering-writer"
_ORPHAN_SCAN_S: Final = 10.0
_log = logging.getLogger("gateway.metering")


class Ledger:
    """This process's path from settled requests to the usage sink."""

    def __init__(  # noqa: PLR0913 -- the [metering] tuning knobs, by keyword
        self,
        sink: UsageSink,
        spill: Spill,
        *,
        queue_size: int,
        batch_size: int,
        batch_interval_s: float,
        retry_interval_s: float,
        metrics: Metrics | None = None,
    ) -> None:
        self.sink = sink
        self._metrics = metrics or Metrics()
        self.spill = spill
        self._queue: deque[UsageRecord] = deque()
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._interval_s = batch_interval_s
        self._retry_s = retry_interval_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._next_orphan_scan = 0.0
        self.healthy = True
        """Whether the last write reached the sink."""
        self.written = 0
        """Records the sink took (including replays), for metrics and tests."""

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def accepting(self) -> bool:
        """Whether a new request may be admitted (queue or spill has room)."""
        return len(self._queue) < self._queue_size or self.spill.has_room

    def admit(self) -> None:
        """Refuse a new request when nothing could hold its record.

        Raises:
            LedgerFull: queue and spill full (503 with ``retry-after``).
        """
        if not self.accepting:
            raise LedgerFull(
                "The usage ledger is unavailable; retry shortly.", retry_after_s=self._retry_s
            )

    def record(self, record: UsageRecord) -> None:
        """Queue ``record`` (never blocks, never drops)."""
        self._queue.append(record)
        self._metrics.usage_records.inc((record.outcome,))
        if len(self._queue) >= self._batch_size:
            self._wake.set()

    async def start(self) -> None:
        """Open the sink and the spill file, start the writer."""
        await self.sink.start()
        await self.spill.open()
        self._task = tasks.spawn(self._run(), name=WRITER_TASK)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval_s):
                    await self._wake.wait()
            self._wake.clear()
            if self._stopped():
                return
            healthy = await self.flush()
            self._metrics.ledger_queued.set(len(self._queue))
            self._metrics.ledger_degraded.set(0 if healthy else 1)
            if not healthy:
                await asyncio.sleep(self._retry_s)

    def _stopped(self) -> bool:
        return self._stopping

    async def flush(self) -> bool:
        """Replay spilled records, then write the records queued when it started (those queued
        meanwhile wait for the next batch: under load the writer would otherwise chase the queue
        with a write per handful of records); False when the sink failed (the queue has then
        been spilled as far as the spill's bound allows)."""
        try:
            await self._replay()
            left = len(self._queue)
            while left > 0:
                batch = list(islice(self._queue, min(left, self._batch_size)))
                await self.sink.write(batch)
                self._taken(len(batch))
                left -= len(batch)
        except SinkAuthFailed as exc:
            if self.healthy:
                _log.error("usage ledger refused authentication (%s; check "
                           "metering.postgres_password); spilling to %s", exc,
                           self.spill.directory)  # fmt: skip
            return await self._failed()
        except SinkUnavailable as exc:
            if self.healthy:
                _log.warning("usage ledger unavailable (%s); spilling to %s", exc,
                             self.spill.directory)  # fmt: skip
            return await self._failed()
        except Exception:  # noqa: BLE001 -- the writer must outlive any sink bug: keep records, retry
            _log.exception("usage ledger write failed; spilling to %s", self.spill.directory)
            return await self._failed()
        if not self.healthy:
            _log.warning("usage ledger reachable again")
        self.healthy = True
        return True

    async def _failed(self) -> bool:
        self.healthy = False
        await self._spill_queue(force=False)
        return False

    def _taken(self, count: int) -> None:
        for _ in range(count):
            self._queue.popleft()
        self.written += count

    async def _spill_queue(self, *, force: bool) -> None:
        while self._queue:
            batch = list(islice(self._queue, self._batch_size))
            if not await self.spill.append(batch, force=force):
                return  # spill full: the rest waits in memory
            self._metrics.ledger_spilled.inc(amount=len(batch))
            for _ in batch:
                self._queue.popleft()

    async def _replay(self) -> None:
        if self.spill.pending:
            size = self.spill.size
            await self._write_all(await self.spill.read_own())
            await self.spill.clear_own(size)
        now = time.monotonic()
        if now >= self._next_orphan_scan:
            self._next_orphan_scan = now + _ORPHAN_SCAN_S
            for path in await self.spill.orphans():
                orphan = await asyncio.to_thread(Orphan.claim, path)
                if orphan is None:
                    continue
                try:
                    await self._write_all(orphan.records)
                except BaseException:
                    await asyncio.to_thread(orphan.release, replayed=False)
                    raise
                await asyncio.to_thread(orphan.release, replayed=True)
                _log.info("replayed %d records from %s", len(orphan.records), path.name)

    async def _write_all(self, records: Sequence[UsageRecord]) -> None:
        for i in range(0, len(records), self._batch_size):
            batch = records[i : i + self._batch_size]
            await self.sink.write(batch)
            self.written += len(batch)

    async def drain(self, timeout_s: float) -> None:
        """Shutdown: stop the writer, write what is queued within ``timeout_s``, spill the rest,
        close the sink and the spill."""
        self._stopping = True
        if self._task is not None:  # safe at any await: a batch leaves the queue once stored
            await tasks.cancel_and_wait(self._task)
        try:
            async with asyncio.timeout(timeout_s):
                while self._queue and await self.flush():
                    pass
        except TimeoutError:
            _log.warning("ledger drain budget exhausted; spilling %d records", len(self._queue))
        await self._spill_queue(force=True)
        await self.spill.close()
        await self.sink.aclose()


def open_sink(config: MeteringConfig) -> UsageSink:
    """The sink ``[metering]`` configures (not started)."""
    if config.sink == "postgres" and config.postgres_dsn is not None:
        return PostgresSink(
            config.postgres_dsn.reveal(),
            pool_size=config.pool_size,
            command_timeout_s=config.command_timeout_s,
            statement_cache=config.statement_cache,
            password=_reveal(config.postgres_password),
        )
    return FileSink(Path(config.path).expanduser())


def _reveal(secret: Secret | None) -> str | None:
    return secret.reveal() if secret is not None else None


def open_ledger(config: MeteringConfig, metrics: Metrics | None = None) -> Ledger | None:
    """This worker's ledger (None when metering is off); ``start`` it in the event loop."""
    if not config.enabled:
        return None
    return Ledger(
        open_sink(config),
        Spill(Path(config.spill_dir).expanduser(), config.spill_max_bytes),
        queue_size=config.queue_size,
        batch_size=config.batch_size,
        batch_interval_s=config.batch_interval_s,
        retry_interval_s=config.retry_interval_s,
        metrics=metrics,
    )
