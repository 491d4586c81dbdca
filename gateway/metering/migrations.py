"""The ledger's PostgreSQL schema as versioned migrations (applied in order by ``gateway migrate``;
each runs once, in one transaction with its version row). Append new versions; never edit one
that shipped."""

from __future__ import annotations

from typing import Final

VERSION_TABLE: Final = "gateway_schema_migrations"
LOCK_KEY: Final = 0x6761_7465_7761_79  # pg_advisory_xact_lock: one migrator at a time

MIGRATIONS: Final[tuple[tuple[int, str, str], ...]] = (
    (
        1,
        "usage_records",
        """
CREATE TABLE usage_records (
    request_id        text PRIMARY KEY,
    tenant_id         text NOT NULL,
    app_id            text,
    user_id           text NOT NULL,
    app_user_id       text,
    conversation_id   text,
    model             text NOT NULL,
    upstream          text NOT NULL,
    provider          text NOT NULL,
    endpoint          text NOT NULL CHECK (endpoint IN ('chat', 'embedding')),
    stream            boolean NOT NULL,
    outcome           text NOT NULL
        CHECK (outcome IN ('completed', 'client_disconnected', 'upstream_error', 'timeout')),
    input_tokens      bigint NOT NULL CHECK (input_tokens >= 0),
    output_tokens     bigint NOT NULL CHECK (output_tokens >= 0),
    total_tokens      bigint NOT NULL CHECK (total_tokens >= 0),
    cached_tokens     bigint,
    reasoning_tokens  bigint,
    estimated         boolean NOT NULL,
    cost              numeric NOT NULL,
    billed            numeric NOT NULL,
    latency_ms        double precision NOT NULL,
    ttft_ms           double precision,
    phi_counts        jsonb NOT NULL DEFAULT '{}'::jsonb,
    started_at        timestamptz NOT NULL,
    finished_at       timestamptz NOT NULL,
    recorded_at       timestamptz NOT NULL DEFAULT now()
)""",
    ),
    (
        2,
        "usage_records_by_tenant_and_time",
        "CREATE INDEX usage_records_tenant_started ON usage_records (tenant_id, started_at)",
    ),
)
