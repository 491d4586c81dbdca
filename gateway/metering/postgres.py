"""The PostgreSQL ledger (asyncpg; the only module that imports it) and its migrator.

A batch is one ``INSERT ... SELECT FROM unnest(...)`` (one round trip, one transaction) with
``ON CONFLICT (request_id) DO NOTHING``, so replays and retries never duplicate a row. The pool
opens connections lazily (``min_size=0``): start-up never fails because PostgreSQL is down, and
every failure to reach it becomes ``SinkUnavailable`` for the ledger to spill and retry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import asyncpg
import orjson

from gateway.metering.migrations import LOCK_KEY, MIGRATIONS, VERSION_TABLE
from gateway.metering.records import TokenUsage, UsageRecord
from gateway.metering.sink import SinkAuthFailed, SinkUnavailable, UsageQuery, UsageTotal

_COLUMNS: Final = (
    ("request_id", "text"), ("tenant_id", "text"), ("app_id", "text"), ("user_id", "text"),
    ("app_user_id", "text"), ("conversation_id", "text"), ("model", "text"),
    ("upstream", "text"), ("provider", "text"), ("endpoint", "text"), ("stream", "boolean"),
    ("outcome", "text"), ("input_tokens", "bigint"), ("output_tokens", "bigint"),
    ("total_tokens", "bigint"), ("cached_tokens", "bigint"), ("reasoning_tokens", "bigint"),
    ("estimated", "boolean"), ("cost", "numeric"), ("billed", "numeric"),
    ("latency_ms", "float8"), ("ttft_ms", "float8"), ("phi_counts", "jsonb"),
    ("started_at", "timestamptz"), ("finished_at", "timestamptz"),
)  # fmt: skip
_NAMES: Final = ", ".join(name for name, _ in _COLUMNS)
_ARRAYS: Final = ", ".join(f"${i}::{kind}[]" for i, (_, kind) in enumerate(_COLUMNS, 1))
_INSERT: Final = f"INSERT INTO usage_records ({_NAMES}) SELECT * FROM unnest({_ARRAYS}) ON CONFLICT (request_id) DO NOTHING"  # noqa: S608, E501 -- constant column list
_TOTALS: Final = """
SELECT tenant_id, (started_at AT TIME ZONE 'UTC')::date AS day, provider, model,
       count(*) AS requests, sum(input_tokens) AS input_tokens,
       sum(output_tokens) AS output_tokens, sum(cost) AS cost, sum(billed) AS billed
FROM usage_records
WHERE ($1::text IS NULL OR tenant_id = $1) AND started_at >= $2 AND started_at < $3
GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"""
_RECORDS: Final = f"""
SELECT {_NAMES} FROM usage_records
WHERE ($1::text IS NULL OR tenant_id = $1) AND started_at >= $2 AND started_at < $3
ORDER BY started_at, request_id"""  # noqa: S608 -- constant column list
_VERSIONS: Final = f"SELECT version FROM {VERSION_TABLE}"  # noqa: S608 -- a constant name
#: What "PostgreSQL is unreachable, retry later" looks like to asyncpg.
_UNAVAILABLE: Final = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # e.g. the server shut down mid-statement (seen in the chaos test)
)
#: What a refused password or user looks like (28P01, 28000).
_AUTH_FAILED: Final = (
    asyncpg.InvalidPasswordError,
    asyncpg.InvalidAuthorizationSpecificationError,
)
PostgresError = asyncpg.PostgresError
"""What the database raises when it refuses a statement (for callers that must not import
asyncpg)."""


class PostgresSink:
    """A ``UsageSink`` on a PostgreSQL database migrated by ``migrate``."""

    name = "postgres"

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int,
        command_timeout_s: float,
        statement_cache: bool = True,
        password: str | None = None,
    ) -> None:
        self._dsn = dsn
        self._password = _password(dsn, password)
        self._pool_size = pool_size
        self._timeout_s = command_timeout_s
        self._cache_size = 100 if statement_cache else 0
        self._pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        self._pool = await asyncpg.create_pool(
            self._dsn,
            password=self._password,
            min_size=0,
            max_size=self._pool_size,
            command_timeout=self._timeout_s,
            timeout=self._timeout_s,
            statement_cache_size=self._cache_size,
            max_inactive_connection_lifetime=60.0,
        )

    def _require_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("PostgresSink.start() was not called")
        return self._pool

    async def write(self, records: Sequence[UsageRecord]) -> None:
        if not records:
            return
        columns = _column_arrays(records)
        try:
            async with self._require_pool().acquire(timeout=self._timeout_s) as conn:
                await conn.execute(_INSERT, *columns)
        except _AUTH_FAILED as exc:
            raise SinkAuthFailed(f"postgres: {type(exc).__name__}") from exc
        except _UNAVAILABLE as exc:
            raise SinkUnavailable(f"postgres: {type(exc).__name__}") from exc

    async def totals(self, query: UsageQuery) -> list[UsageTotal]:
        rows = await self._fetch(_TOTALS, query)
        return [
            UsageTotal(
                tenant_id=r["tenant_id"],
                day=r["day"],
                provider=r["provider"],
                model=r["model"],
                requests=r["requests"],
                input_tokens=int(r["input_tokens"]),
                output_tokens=int(r["output_tokens"]),
                cost=r["cost"],
                billed=r["billed"],
            )
            for r in rows
        ]

    async def records(self, query: UsageQuery) -> list[UsageRecord]:
        return [_record(row) for row in await self._fetch(_RECORDS, query)]

    async def _fetch(self, sql: str, query: UsageQuery) -> list[asyncpg.Record]:
        async with self._require_pool().acquire(timeout=self._timeout_s) as conn:
            return await conn.fetch(sql, query.tenant_id, query.start_at, query.end_before)

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def _column_arrays(records: Sequence[UsageRecord]) -> list[list[Any]]:
    rows = [
        (
            r.request_id,
            r.tenant_id,
            r.app_id,
            r.user_id,
            r.app_user_id,
            r.conversation_id,
            r.model,
            r.upstream,
            r.provider,
            r.endpoint,
            r.stream,
            r.outcome,
            r.usage.input_tokens,
            r.usage.output_tokens,
            r.usage.total_tokens,
            r.usage.cached_tokens,
            r.usage.reasoning_tokens,
            r.usage.estimated,
            r.cost,
            r.billed,
            r.latency_ms,
            r.ttft_ms,
            orjson.dumps(r.phi_counts).decode(),
            r.started_at,
            r.finished_at,
        )
        for r in records
    ]
    return [list(column) for column in zip(*rows, strict=True)]


def _record(row: asyncpg.Record) -> UsageRecord:
    usage = TokenUsage(
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        cached_tokens=row["cached_tokens"],
        reasoning_tokens=row["reasoning_tokens"],
        estimated=row["estimated"],
    )
    fields = {name: row[name] for name, _ in _COLUMNS if name not in _TOKEN_COLUMNS}
    fields["phi_counts"] = orjson.loads(fields["phi_counts"])
    return UsageRecord(usage=usage, **fields)


_TOKEN_COLUMNS: Final = frozenset(
    {"input_tokens", "output_tokens", "total_tokens", "cached_tokens", "reasoning_tokens",
     "estimated"}
)  # fmt: skip


async def migrate(dsn: str, *, timeout_s: float = 30.0, password: str | None = None) -> list[int]:
    """Bring the schema up to date; returns the versions applied now (empty: already current).

    Raises:
        OSError, asyncpg.PostgresError: the database is unreachable or refused a migration.
    """
    conn = await asyncpg.connect(
        dsn, password=_password(dsn, password), timeout=timeout_s, command_timeout=timeout_s
    )
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version integer PRIMARY KEY, "
                "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await conn.fetch(_VERSIONS)}
            applied = []
            for version, name, sql in MIGRATIONS:
                if version in done:
                    continue
                await conn.execute(sql)
                await conn.execute(
                    f"INSERT INTO {VERSION_TABLE} (version, name) VALUES ($1, $2)",  # noqa: S608
                    version,
                    name,
                )
                applied.append(version)
            return applied
    finally:
        await conn.close()


def _password(dsn: str, password: str | None) -> str:
    """``password`` (``metering.postgres_password``; the config refuses it next to a DSN with a
    password of its own), else the DSN's ("" without one). Always passed explicitly: otherwise
    asyncpg looks for ``~/.pgpass`` with blocking file calls on every new connection."""
    if password is not None:
        return password
    return unquote(urlsplit(dsn).password or "")
