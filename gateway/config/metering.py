"""The configuration of metering: model pricing and the usage ledger (``[metering]``).

Money is ``Decimal`` end to end (TOML numbers are read through their text, so ``0.15`` is exactly
0.15), and rounded only when presented.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal
from urllib.parse import urlsplit

from gateway.config.secret import Secret

SinkKind = Literal["file", "postgres"]
_DEFAULT_DIR = os.path.join("~", ".local", "share", "phi-gateway")


@dataclass(frozen=True, slots=True, kw_only=True)
class PricingConfig:
    """What a model costs the platform and what it bills (`[models.<alias>.pricing]`)."""

    input_per_million: Decimal = Decimal(0)
    """Cost of one million input (prompt) tokens, in the platform's currency."""
    output_per_million: Decimal = Decimal(0)
    """Cost of one million output (completion) tokens."""
    markup: Decimal = Decimal(0)
    """Billed = cost x (1 + markup); 0.2 bills 20 % over cost."""

    def check(self, where: str) -> Iterator[str]:
        """Problems beyond the field types."""
        for name in ("input_per_million", "output_per_million", "markup"):
            value: Decimal = getattr(self, name)
            if not value.is_finite() or value < 0:
                yield f"{where}.{name}: must be a number >= 0"


@dataclass(frozen=True, slots=True, kw_only=True)
class MeteringConfig:
    """The usage ledger: where records go, and how much is buffered when it is unreachable."""

    enabled: bool = True
    """Record one usage row per request that reached an upstream."""
    sink: SinkKind = "file"
    """`file` (embedded default: a JSON-lines file, one process or several on one host) or
    `postgres` (the shared ledger; run `gateway migrate` first)."""
    path: str = os.path.join(_DEFAULT_DIR, "usage.jsonl")
    """The file ledger (`sink = "file"`)."""
    postgres_dsn: Secret | None = None
    """PostgreSQL DSN for `sink = "postgres"`, e.g. postgresql://user@host:5432/db with
    `postgres_password`, or postgresql://user:password@host:5432/db (set it via the environment)."""
    postgres_password: Secret | None = None
    """Password PostgreSQL checks at connection, so the DSN carries no secret; only with
    `sink = "postgres"` and a DSN without a password of its own."""
    pool_size: int = 4
    """Connections per worker (x workers x replicas must stay below the server's limit)."""
    command_timeout_s: float = 5.0
    """Longest wait for one ledger statement; then the batch is retried or spilled."""
    statement_cache: bool = True
    """asyncpg's prepared-statement cache; false behind PgBouncer/RDS Proxy transaction pooling."""
    queue_size: int = 10_000
    """Records held in memory per worker while the ledger is slow or down."""
    batch_size: int = 500
    """Most records written in one statement."""
    batch_interval_s: float = 0.2
    """Longest time a record waits in memory before its batch is written."""
    spill_dir: str = os.path.join(_DEFAULT_DIR, "spill")
    """Local directory for records the ledger could not take (fsynced; replayed when it is back)."""
    spill_max_bytes: int = 256 * 1024 * 1024
    """Largest spill file per worker; with it and the queue full, admission answers 503."""
    retry_interval_s: float = 1.0
    """Pause between attempts to reach an unreachable ledger."""
    drain_timeout_s: float = 3.0
    """At shutdown, time to write what is queued before the rest is spilled; with
    `server.drain_timeout_s` it must fit the container's stop timeout (Fargate: 30 s)."""

    def check(self, where: str) -> Iterator[str]:
        """Problems beyond the field types."""
        yield from self._check_postgres(where)
        if self.sink == "file" and not self.path:
            yield f"{where}.path: required for sink 'file'"
        for name in ("pool_size", "queue_size", "batch_size"):
            if getattr(self, name) < 1:
                yield f"{where}.{name}: must be >= 1"
        for name in ("command_timeout_s", "batch_interval_s", "retry_interval_s",
                     "drain_timeout_s"):  # fmt: skip
            if getattr(self, name) <= 0:
                yield f"{where}.{name}: must be > 0"
        if self.spill_max_bytes < 0:
            yield f"{where}.spill_max_bytes: must be >= 0"
        if not self.spill_dir:
            yield f"{where}.spill_dir: required"

    def _check_postgres(self, where: str) -> Iterator[str]:
        dsn = self.postgres_dsn.reveal() if self.postgres_dsn is not None else ""
        if self.sink == "postgres" and not dsn.startswith(("postgres://", "postgresql://")):
            yield f"{where}.postgres_dsn: sink 'postgres' needs a postgresql:// DSN"
        elif self.sink == "postgres" and not _parses(dsn):
            yield f"{where}.postgres_dsn: not a valid URL (host, or port as a number)"
        if self.postgres_password is None:
            return
        if self.sink != "postgres":
            yield f"{where}.postgres_password: only used with sink = 'postgres'"
        elif _dsn_password(dsn):
            # Two sources would hide which one asyncpg uses.
            yield f"{where}.postgres_password: the postgres_dsn carries a password too; keep one"


def _parses(dsn: str) -> bool:
    try:
        _ = urlsplit(dsn).port
    except ValueError:
        return False
    return True


def _dsn_password(dsn: str) -> str | None:
    try:
        return urlsplit(dsn).password
    except ValueError:
        return None
