"""The same suite over both ``UsageSink`` implementations: idempotent writes, round trips,
totals per tenant, day, provider and model, and the report built from them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from gateway.metering.records import TokenUsage
from gateway.metering.report import usage_report
from gateway.metering.sink import UsageQuery, UsageSink
from tests.metering.factory import T0, record

DAY = T0.date()
ALL = UsageQuery(None, DAY - dt.timedelta(days=30), DAY + dt.timedelta(days=30))


async def test_round_trip_keeps_every_field(sink: UsageSink) -> None:
    original = record(
        usage=TokenUsage(input_tokens=7, output_tokens=9, cached_tokens=3, reasoning_tokens=4,
                         estimated=True),
        cost=Decimal("0.000000123456789"), ttft_ms=None, app_id=None, conversation_id=None,
        phi_counts={"NAME": 1, "MRN": 2},
    )  # fmt: skip
    await sink.write([original])
    [back] = await sink.records(ALL)
    assert back == original


async def test_writing_a_request_twice_keeps_one_row(sink: UsageSink) -> None:
    first = record(request_id="req_same")
    again = record(request_id="req_same", usage=TokenUsage(input_tokens=1, output_tokens=1))
    other = record()
    await sink.write([first])
    await sink.write([again, other])
    await sink.write([first, other])
    rows = await sink.records(ALL)
    assert sorted(r.request_id for r in rows) == sorted(["req_same", other.request_id])
    assert next(r for r in rows if r.request_id == "req_same").usage.input_tokens == 100


async def test_duplicates_inside_one_batch_keep_one_row(sink: UsageSink) -> None:
    one = record(request_id="req_dup")
    await sink.write([one, one])
    assert [r.request_id for r in await sink.records(ALL)] == ["req_dup"]


async def test_totals_group_by_tenant_day_provider_model(sink: UsageSink) -> None:
    next_day = T0 + dt.timedelta(days=1)
    await sink.write([
        record(usage=TokenUsage(10, 5), cost=Decimal("0.1"), billed=Decimal("0.12")),
        record(usage=TokenUsage(20, 5), cost=Decimal("0.2"), billed=Decimal("0.24")),
        record(usage=TokenUsage(1, 1), model="other", cost=Decimal(0), billed=Decimal(0)),
        record(usage=TokenUsage(3, 4), started_at=next_day),
        record(usage=TokenUsage(99, 99), tenant_id="globex"),
    ])  # fmt: skip
    rows = await sink.totals(UsageQuery("acme", DAY, DAY + dt.timedelta(days=1)))
    summary = [(r.day, r.model, r.requests, r.input_tokens, r.output_tokens, r.cost, r.billed)
               for r in rows]  # fmt: skip
    assert summary == [
        (DAY, "gpt-x", 2, 30, 10, Decimal("0.3"), Decimal("0.36")),
        (DAY, "other", 1, 1, 1, Decimal(0), Decimal(0)),
        (next_day.date(), "gpt-x", 1, 3, 4, Decimal("0.00125"), Decimal("0.0015")),
    ]
    everyone = await sink.totals(ALL)
    assert {r.tenant_id for r in everyone} == {"acme", "globex"}


async def test_period_bounds_are_whole_utc_days(sink: UsageSink) -> None:
    inside = record(started_at=dt.datetime(2026, 11, 20, 23, 59, 59, tzinfo=dt.UTC))
    before = record(started_at=dt.datetime(2026, 11, 19, 23, 59, 59, tzinfo=dt.UTC))
    after = record(started_at=dt.datetime(2026, 11, 21, 0, 0, tzinfo=dt.UTC))
    await sink.write([inside, before, after])
    rows = await sink.records(UsageQuery("acme", DAY, DAY))
    assert [r.request_id for r in rows] == [inside.request_id]


async def test_report_shape(sink: UsageSink) -> None:
    await sink.write([
        record(usage=TokenUsage(10, 5), cost=Decimal("0.1000004"), billed=Decimal("0.1200006")),
        record(usage=TokenUsage(1, 2), provider="bedrock", model="claude",
               cost=Decimal("0.5"), billed=Decimal("0.6")),
    ])  # fmt: skip
    query = UsageQuery("acme", DAY, DAY)
    report = usage_report(query, await sink.totals(query))
    assert report["tenant"] == "acme"
    assert report["period"] == {"start": "2026-11-20", "end": "2026-11-20"}
    assert report["total_requests"] == 2
    assert (report["total_input_tokens"], report["total_output_tokens"]) == (11, 7)
    assert report["total_cost"] == "0.600000"  # 0.6000004 rounded half-even on presentation
    assert report["total_billed"] == "0.720001"
    assert [(b["provider"], b["model"], b["requests"]) for b in report["breakdown"]] == [
        ("bedrock", "claude", 1),
        ("openai", "gpt-x", 1),
    ]
    assert report["breakdown"][1]["days"] == [
        {"date": "2026-11-20", "requests": 1, "input_tokens": 10, "output_tokens": 5,
         "cost": "0.100000", "billed": "0.120001"},
    ]  # fmt: skip


async def test_an_empty_ledger_reports_zero(sink: UsageSink) -> None:
    report = usage_report(ALL, await sink.totals(ALL))
    assert report["total_requests"] == 0
    assert report["total_cost"] == "0.000000"
    assert report["breakdown"] == []
