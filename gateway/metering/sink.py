"""The ``UsageSink`` protocol (file and PostgreSQL ledgers) and the values it reads and writes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from gateway.metering.records import UsageRecord


class SinkUnavailable(Exception):
    """The ledger could not take a batch (unreachable, timed out); nothing of it was lost."""


class SinkAuthFailed(SinkUnavailable):
    """The ledger refused the credentials (wrong or missing password): a configuration error,
    handled like an outage (records are spilled) but reported as an error."""


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """Records of one tenant (None: every tenant) started in ``[start, end]`` (UTC days)."""

    tenant_id: str | None
    start: dt.date
    end: dt.date

    @property
    def start_at(self) -> dt.datetime:
        """The first instant of the period."""
        return dt.datetime.combine(self.start, dt.time(), tzinfo=dt.UTC)

    @property
    def end_before(self) -> dt.datetime:
        """The first instant after the period."""
        return dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)

    def matches(self, record: UsageRecord) -> bool:
        """Whether ``record`` belongs to the query."""
        if self.tenant_id is not None and record.tenant_id != self.tenant_id:
            return False
        return self.start_at <= record.started_at < self.end_before


@dataclass(frozen=True, slots=True)
class UsageTotal:
    """The usage of one tenant, day, provider and model."""

    tenant_id: str
    day: dt.date
    provider: str
    model: str
    requests: int
    input_tokens: int
    output_tokens: int
    cost: Decimal
    billed: Decimal


class UsageSink(Protocol):
    """Where usage records end up. ``write`` is idempotent per request id."""

    name: str

    async def start(self) -> None:
        """Open the sink (never fails because the ledger is unreachable: writes retry)."""

    async def write(self, records: Sequence[UsageRecord]) -> None:
        """Store every record of the batch, or none (a record already stored is skipped).

        Raises:
            SinkUnavailable: the batch was not stored; the caller keeps it.
        """

    async def totals(self, query: UsageQuery) -> list[UsageTotal]:
        """Usage per tenant, day, provider and model, ordered by those."""

    async def records(self, query: UsageQuery) -> list[UsageRecord]:
        """The records themselves, ordered by start time."""

    async def aclose(self) -> None:
        """Release connections and files."""


def aggregate(records: Sequence[UsageRecord]) -> list[UsageTotal]:
    """``UsageTotal`` rows of ``records`` (the file sink's ``totals``; the same as PostgreSQL's)."""
    groups: dict[tuple[str, dt.date, str, str], list[UsageRecord]] = {}
    for record in records:
        key = (record.tenant_id, record.started_at.astimezone(dt.UTC).date(), record.provider,
               record.model)  # fmt: skip
        groups.setdefault(key, []).append(record)
    return [
        UsageTotal(
            tenant_id=tenant,
            day=day,
            provider=provider,
            model=model,
            requests=len(group),
            input_tokens=sum(r.usage.input_tokens for r in group),
            output_tokens=sum(r.usage.output_tokens for r in group),
            cost=sum((r.cost for r in group), Decimal(0)),
            billed=sum((r.billed for r in group), Decimal(0)),
        )
        for (tenant, day, provider, model), group in sorted(groups.items())
    ]
