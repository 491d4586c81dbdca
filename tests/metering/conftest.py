"""Fixtures of the ledger's tests: the suite's PostgreSQL, a fresh migrated database per test, and
both sinks behind one parametrised fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.metering.file_sink import FileSink
from gateway.metering.postgres import PostgresSink, migrate
from gateway.metering.sink import UsageSink
from tests.postgres_server import fresh_database


@pytest.fixture
async def database(postgres_dsn: str) -> str:
    """An empty database of its own (not migrated)."""
    return await fresh_database(postgres_dsn)


@pytest.fixture
async def migrated(database: str) -> str:
    """A database of its own with the ledger's schema."""
    await migrate(database)
    return database


@pytest.fixture(params=["file", "postgres"])
async def sink(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_dsn: str
) -> AsyncIterator[UsageSink]:
    """Each ``UsageSink`` implementation, started (the same tests run over both)."""
    opened: UsageSink
    if request.param == "file":
        opened = FileSink(tmp_path / "usage.jsonl")
    else:
        dsn = await fresh_database(postgres_dsn)
        await migrate(dsn)
        opened = PostgresSink(dsn, pool_size=2, command_timeout_s=5.0)
    await opened.start()
    yield opened
    await opened.aclose()
