"""Migrations: from an empty database to the current schema; running them again changes nothing."""

from __future__ import annotations

import asyncpg

from gateway.metering.migrations import MIGRATIONS, VERSION_TABLE
from gateway.metering.postgres import migrate


async def _schema(dsn: str) -> list[tuple[str, str, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY 1, 2"
        )
        indexes = await conn.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return [tuple(r) for r in rows] + [("index", r["indexname"], "") for r in indexes]


async def test_from_empty_then_a_no_op(database: str) -> None:
    assert await _schema(database) == []
    applied = await migrate(database)
    assert applied == [version for version, _, _ in MIGRATIONS]
    first = await _schema(database)
    assert ("usage_records", "cost", "numeric") in first
    assert ("usage_records", "phi_counts", "jsonb") in first
    assert ("index", "usage_records_tenant_started", "") in first
    assert await migrate(database) == []
    assert await _schema(database) == first
    conn = await asyncpg.connect(database)
    try:
        versions = [r["version"] for r in await conn.fetch(f"SELECT version FROM {VERSION_TABLE}")]  # noqa: S608
    finally:
        await conn.close()
    assert sorted(versions) == [1, 2]


async def test_a_partly_migrated_database_gets_the_rest(database: str) -> None:
    conn = await asyncpg.connect(database)
    try:
        await conn.execute(
            f"CREATE TABLE {VERSION_TABLE} (version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        await conn.execute(MIGRATIONS[0][2])
        await conn.execute(f"INSERT INTO {VERSION_TABLE} (version, name) VALUES (1, 'x')")  # noqa: S608
    finally:
        await conn.close()
    assert await migrate(database) == [2]
