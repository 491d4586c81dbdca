"""The embedded ledger: one JSON-lines file, appended under an exclusive ``flock``.

Idempotent like the PostgreSQL ledger: before appending, the writer reads what other processes
appended since its last look and skips request ids already present; readers also keep only the
first line of a request id. Each batch is one ``write`` followed by ``fsync``.

The lines are encoded on the event loop (``jsonl.encode``: a few µs a record, no lock needed);
the thread does the file work only (lock, catch-up, write, fsync), so it barely competes with the
loop for the GIL. The catch-up read is skipped when the file still has the size the writer left it
at (the usual case of one process per file); a file that shrank was replaced (rotated) and is read
from its start. A line torn by a crash mid-append is terminated before the next append, so it
cannot swallow the record written after it; readers skip it.

The writer remembers only the newest ``remember`` request ids (a replay comes from a spill file of
the last minutes, not from months ago), so a long-running process does not grow with its ledger;
readers deduplicate the whole file anyway, so an older duplicate line never counts twice.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import orjson

from gateway.metering import jsonl
from gateway.metering.records import UsageRecord
from gateway.metering.sink import SinkUnavailable, UsageQuery, UsageTotal, aggregate


class RecentIds:
    """The newest ``size`` request ids added, the oldest forgotten first, in O(1) per id (a dict
    used as an ordered set would scan its deleted head on every eviction: ~20-60 µs an id once
    it holds 100,000)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._ids: set[str] = set()
        self._order: deque[str] = deque()

    def __contains__(self, request_id: str) -> bool:
        return request_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[str]:
        """Oldest first."""
        return iter(self._order)

    def add(self, request_id: str) -> None:
        """Remember ``request_id`` (forgetting the oldest beyond ``size``)."""
        if request_id in self._ids:
            return
        self._ids.add(request_id)
        self._order.append(request_id)
        if len(self._order) > self._size:
            self._ids.discard(self._order.popleft())


class FileSink:
    """A ``UsageSink`` writing ``path``."""

    name = "file"

    def __init__(self, path: Path, *, remember: int = 100_000) -> None:
        self.path = path
        self._seen = RecentIds(remember)
        self._offset = 0
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)

    async def write(self, records: Sequence[UsageRecord]) -> None:
        data, ends = jsonl.encode_all(records)
        ids = [record.request_id for record in records]
        async with self._lock:
            try:
                await asyncio.to_thread(self._append, data, ids, ends)
            except OSError as exc:
                raise SinkUnavailable(f"usage file: {exc.strerror}") from exc

    def _append(self, data: bytearray, ids: Sequence[str], ends: Sequence[int]) -> None:
        """Append the lines of ``data`` (line ``i`` is request ``ids[i]`` and ends at
        ``ends[i]``) whose request ids the file does not hold yet; they count as written (are
        remembered) only once fsynced."""
        with self.path.open("a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            size = os.fstat(handle.fileno()).st_size
            torn = size != self._offset and self._catch_up(handle, size)
            fresh, new_ids = self._fresh(memoryview(data), ids, ends)
            if fresh:
                if torn:
                    fresh = b"\n" + fresh  # ends the torn line: the next one stays whole
                rest = memoryview(fresh)
                while rest:  # O_APPEND: at the end, whatever the position
                    rest = rest[os.write(handle.fileno(), rest) :]
                os.fsync(handle.fileno())
                size += len(fresh)
                for request_id in new_ids:
                    self._seen.add(request_id)
            self._offset = size

    def _fresh(
        self, data: memoryview, ids: Sequence[str], ends: Sequence[int]
    ) -> tuple[bytes, list[str]]:
        """The lines of request ids not seen yet (the first of a repeated one), and their ids."""
        kept: list[memoryview] = []
        new_ids: list[str] = []
        batch: set[str] = set()
        start = 0
        for request_id, end in zip(ids, ends, strict=True):
            if request_id not in self._seen and request_id not in batch:
                batch.add(request_id)
                new_ids.append(request_id)
                kept.append(data[start:end])
            start = end
        return (data.tobytes() if len(kept) == len(ids) else b"".join(kept)), new_ids

    def _catch_up(self, handle: IO[bytes], size: int) -> bool:
        """Learn the request ids appended since the last look (by any process); True when the
        file ends in a torn line. A file smaller than at the last look was replaced: read it all."""
        handle.seek(self._offset if size > self._offset else 0)
        line = b"\n"
        for line in handle:
            if line.endswith(b"\n"):
                self._seen.add(jsonl.request_id(line))
        return not line.endswith(b"\n")

    async def records(self, query: UsageQuery) -> list[UsageRecord]:
        return await asyncio.to_thread(self._records, query)

    def _records(self, query: UsageQuery) -> list[UsageRecord]:
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            return []
        seen: set[str] = set()
        found: list[UsageRecord] = []
        with handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
            for line in handle:
                try:
                    record = jsonl.decode(line)
                except (orjson.JSONDecodeError, KeyError, ValueError, TypeError, AttributeError):
                    continue  # torn by a crash mid-append
                if record.request_id not in seen:
                    seen.add(record.request_id)
                    if query.matches(record):
                        found.append(record)
        found.sort(key=lambda r: r.started_at)
        return found

    async def totals(self, query: UsageQuery) -> list[UsageTotal]:
        return aggregate(await self.records(query))

    async def aclose(self) -> None:
        return None
