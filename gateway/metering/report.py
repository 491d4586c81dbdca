"""The usage report (``gateway usage``, ``GET /v1/usage``) in the platform's report shape:
tenant, period, totals (requests, input/output tokens, cost, billed) and a breakdown by provider
and model with one entry per day. Amounts are decimal strings rounded half-even to 6 places.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from gateway.metering.cost import present
from gateway.metering.sink import UsageQuery, UsageTotal


def usage_report(query: UsageQuery, totals: Sequence[UsageTotal]) -> dict[str, Any]:
    """The report of ``totals`` (rows of ``UsageSink.totals(query)``)."""
    models: dict[tuple[str, str], list[UsageTotal]] = {}
    for row in totals:
        models.setdefault((row.provider, row.model), []).append(row)
    breakdown = []
    for (provider, model), rows in sorted(models.items()):
        days: dict[str, list[UsageTotal]] = {}
        for row in rows:
            days.setdefault(row.day.isoformat(), []).append(row)
        entry = {"provider": provider, "model": model, **_sums(rows)}
        entry["days"] = [{"date": day, **_sums(group)} for day, group in sorted(days.items())]
        breakdown.append(entry)
    sums = _sums(totals)
    return {
        "object": "usage.report",
        "tenant": query.tenant_id,
        "period": {"start": query.start.isoformat(), "end": query.end.isoformat()},
        "total_requests": sums["requests"],
        "total_input_tokens": sums["input_tokens"],
        "total_output_tokens": sums["output_tokens"],
        "total_cost": sums["cost"],
        "total_billed": sums["billed"],
        "breakdown": breakdown,
    }


def _sums(rows: Sequence[UsageTotal]) -> dict[str, Any]:
    return {
        "requests": sum(r.requests for r in rows),
        "input_tokens": sum(r.input_tokens for r in rows),
        "output_tokens": sum(r.output_tokens for r in rows),
        "cost": present(sum((r.cost for r in rows), Decimal(0))),
        "billed": present(sum((r.billed for r in rows), Decimal(0))),
    }
