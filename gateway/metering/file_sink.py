"""The embedded ledger: one JSON-lines file, appended under an exclusive ``flock``.

Idempotent like the PostgreSQL ledger: before appending, the writer reads what other processes
appended since its last look and skips request ids already present; readers also keep only the
first line of a request id. Each batch is one ``write`` followed by ``fsync``. File work runs in
a thread.

The writer remembers only the newest ``remember`` request ids (a replay comes from a spill file of
the last minutes, not from months ago), so a long-running process does not grow with its ledger;
readers deduplicate the whole file anyway, so an older duplicate line never counts twice.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import orjson

from gateway.metering.records import UsageRecord
from gateway.metering.sink import SinkUnavailable, UsageQuery, UsageTotal, aggregate


class FileSink:
    """A ``UsageSink`` writing ``path``."""

    name = "file"

    def __init__(self, path: Path, *, remember: int = 100_000) -> None:
        self.path = path
        self._seen: dict[str, None] = {}  # insertion-ordered: the oldest id goes first
        self._remember = remember
        self._offset = 0
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)

    async def write(self, records: Sequence[UsageRecord]) -> None:
        async with self._lock:
            try:
                await asyncio.to_thread(self._append, records)
            except OSError as exc:
                raise SinkUnavailable(f"usage file: {exc.strerror}") from exc

    def _append(self, records: Sequence[UsageRecord]) -> None:
        with self.path.open("a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            self._catch_up(handle)
            fresh = []
            for record in records:
                if record.request_id not in self._seen:
                    self._remember_id(record.request_id)
                    fresh.append(orjson.dumps(record.to_json()) + b"\n")
            if fresh:
                handle.seek(0, os.SEEK_END)
                handle.write(b"".join(fresh))
                handle.flush()
                os.fsync(handle.fileno())
            self._offset = handle.tell()

    def _catch_up(self, handle: IO[bytes]) -> None:
        """Learn the request ids appended since the last look (by any process)."""
        handle.seek(self._offset)
        for line in handle:
            if line.endswith(b"\n"):
                self._remember_id(_request_id(line))
        self._offset = handle.tell()

    def _remember_id(self, request_id: str) -> None:
        self._seen[request_id] = None
        if len(self._seen) > self._remember:
            del self._seen[next(iter(self._seen))]

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
                if not line.endswith(b"\n"):
                    continue  # torn by a crash mid-append
                record = UsageRecord.from_json(orjson.loads(line))
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


def _request_id(line: bytes) -> str:
    try:
        return str(orjson.loads(line)["request_id"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return ""
