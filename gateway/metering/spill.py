"""The spill: a local, fsynced JSON-lines file per process for records the ledger could not take.

Each process appends to its own file (``spill-<pid>-<nonce>.jsonl``, held under an exclusive
``flock`` while the process lives) and empties it once the ledger took its records back. Files
whose owner died (no lock held) are adopted and replayed by whichever process finds them first.
A torn last line (a crash mid-append) is skipped; every complete line is a record. All file work
runs in a thread: nothing here blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Final

import orjson

from gateway.metering import jsonl
from gateway.metering.records import UsageRecord

_PREFIX: Final = "spill-"
_READ_HINT: Final = 1 << 20
_log = logging.getLogger("gateway.metering")


class Spill:
    """This process's spill file, and the adoption of orphaned ones."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._file: IO[bytes] | None = None
        self._path: Path | None = None
        self.size = 0

    @property
    def has_room(self) -> bool:
        """Whether more records may be spilled (admission refuses when this and the queue fail)."""
        return self.size < self.max_bytes

    @property
    def pending(self) -> bool:
        """Whether this process's file holds records to replay."""
        return self.size > 0

    async def open(self) -> None:
        """Create the directory and this process's locked file."""
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"{_PREFIX}{os.getpid()}-{secrets.token_hex(4)}.jsonl"
        self._path = self.directory / name
        self._file = self._path.open("a+b")
        fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.size = 0

    async def append(self, records: Sequence[UsageRecord], *, force: bool = False) -> bool:
        """Append and fsync ``records``; False (nothing written) when over ``max_bytes``, unless
        ``force`` (shutdown: better over the bound than lost)."""
        data, _ = jsonl.encode_all(records)
        if not force and self.size + len(data) > self.max_bytes:
            return False
        await asyncio.to_thread(self._write, data)
        self.size += len(data)
        return True

    def _write(self, data: bytes | bytearray) -> None:
        if self._file is None:
            raise RuntimeError("spill not open")
        self._file.write(data)
        self._file.flush()
        os.fsync(self._file.fileno())

    async def read_own(self) -> list[UsageRecord]:
        """The records in this process's file."""
        if self._path is None:
            return []
        return await asyncio.to_thread(_read, self._path)

    async def clear_own(self, expected_size: int) -> None:
        """Empty this process's file once its first ``expected_size`` bytes were replayed
        (records appended meanwhile stay: the file is rewritten with just them)."""
        await asyncio.to_thread(self._clear, expected_size)

    def _clear(self, expected_size: int) -> None:
        if self._file is None:
            return
        self._file.seek(expected_size)
        rest = self._file.read()
        self._file.seek(0)
        self._file.truncate()
        self._file.write(rest)
        self._file.flush()
        os.fsync(self._file.fileno())
        self.size = len(rest)

    async def orphans(self) -> list[Path]:
        """Spill files of other processes (locked or not; ``adopt`` decides)."""
        return await asyncio.to_thread(self._orphans)

    def _orphans(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.glob(f"{_PREFIX}*.jsonl") if p != self._path)

    async def close(self) -> None:
        """Close the file; an empty one is removed."""
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        if self._file is None or self._path is None:
            return
        if self.size == 0:
            with contextlib.suppress(OSError):
                self._path.unlink()
        self._file.close()
        self._file = None


class Orphan:
    """An orphaned spill file, locked by this process while it is replayed (blocking methods:
    run them in a thread)."""

    def __init__(self, path: Path, handle: IO[bytes], records: list[UsageRecord]) -> None:
        self.path = path
        self.records = records
        self._handle = handle

    @classmethod
    def claim(cls, path: Path) -> Orphan | None:
        """Lock and read ``path``; None if its owner still holds it or it is gone."""
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        if not path.exists():  # adopted and removed by another process meanwhile
            handle.close()
            return None
        return cls(path, handle, _parse(handle))

    def release(self, *, replayed: bool) -> None:
        """Remove the file once its records are in the ledger; unlock it either way."""
        if replayed:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self._handle.close()


def _read(path: Path) -> list[UsageRecord]:
    with path.open("rb") as handle:
        return _parse(handle)


def _parse(handle: IO[bytes]) -> list[UsageRecord]:
    records: list[UsageRecord] = []
    torn = 0
    while lines := handle.readlines(_READ_HINT):
        for line in lines:
            try:
                records.append(jsonl.decode(line))
            except (orjson.JSONDecodeError, KeyError, ValueError, TypeError, AttributeError):
                torn += 1
    if torn:
        _log.warning("skipped %d unreadable spill lines", torn)
    return records
