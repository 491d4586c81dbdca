"""Both stores (in-memory and real Redis) decide the same: GCRA, reservations, streams, expiry."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from gateway.limits.gcra import US_PER_S
from gateway.limits.redis_store import RedisStore
from gateway.limits.rules import Admission, Bucket
from gateway.limits.store import LimitStore, MemoryStore, Verdict

START_US = 1_800_000_000 * US_PER_S + 3600 * US_PER_S  # 01:00 UTC, far from midnight


@dataclass
class Harness:
    store: LimitStore
    advance: Callable[[float], Awaitable[None]]


@pytest.fixture(params=["memory", "redis"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    ttl_s = 0.3
    if request.param == "memory":
        now = [START_US]

        async def tick(seconds: float) -> None:
            now[0] += int(seconds * US_PER_S)

        yield Harness(MemoryStore(ttl_s, clock=lambda: now[0]), tick)
        return
    url = request.getfixturevalue("redis_url")
    store = RedisStore(url, key_prefix=f"test:{uuid.uuid4().hex}:", reservation_ttl_s=ttl_s)
    yield Harness(store, asyncio.sleep)
    await store.aclose()


def _admission(*buckets: Bucket, tokens: int = 0, stream: bool = False) -> Admission:
    return Admission(f"req_{uuid.uuid4().hex}", buckets, tokens, stream)


async def test_burst_then_refusal_with_retry_and_headers(harness: Harness) -> None:
    bucket = Bucket("t:a", requests_per_minute=60, burst=3)
    verdicts = [await harness.store.admit(_admission(bucket)) for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert [v.remaining_requests for v in verdicts[:3]] == [2, 1, 0]
    assert all(v.limit_requests == 60 for v in verdicts)
    refused = verdicts[3]
    assert refused.refusal == "requests"
    assert 0 < refused.retry_after_us <= US_PER_S
    assert 2 * US_PER_S < refused.reset_requests_us <= 3 * US_PER_S
    assert verdicts[0].limit_tokens is None


async def test_a_refusal_charges_no_bucket(harness: Harness) -> None:
    tenant = Bucket("t:b", requests_per_minute=60, burst=5)
    user = Bucket("u:b:alice", requests_per_minute=60, burst=1)
    assert (await harness.store.admit(_admission(tenant, user))).remaining_requests == 0
    refused = await harness.store.admit(_admission(tenant, user))
    assert refused.refusal == "requests"
    # The tenant bucket was not charged for the refused request: 3 of 5 left, not 2.
    alone = await harness.store.admit(_admission(tenant))
    assert alone.remaining_requests == 3


async def test_reserve_then_settle_exactly_once(harness: Harness) -> None:
    bucket = Bucket("t:c", tokens_per_day=1000)
    admission = _admission(bucket, tokens=400)
    verdict = await harness.store.admit(admission)
    assert verdict.allowed
    assert (verdict.limit_tokens, verdict.remaining_tokens) == (1000, 600)
    assert 0 < verdict.reset_tokens_us <= 86_400 * US_PER_S
    assert await harness.store.usage("t:c") == (0, 400)
    await harness.store.settle(admission, verdict, 123)
    assert await harness.store.usage("t:c") == (123, 0)
    await harness.store.settle(admission, verdict, 123)  # a repeat changes nothing
    assert await harness.store.usage("t:c") == (123, 0)


async def test_busy_budget_is_retryable_spent_budget_is_quota(harness: Harness) -> None:
    bucket = Bucket("t:d", tokens_per_day=100)
    first = _admission(bucket, tokens=60)
    v1 = await harness.store.admit(first)
    busy = await harness.store.admit(_admission(bucket, tokens=50))
    assert (busy.allowed, busy.refusal) == (False, "tokens")
    assert busy.retry_after_us == US_PER_S
    await harness.store.settle(first, v1, 30)
    second = _admission(bucket, tokens=50)
    v2 = await harness.store.admit(second)
    assert v2.allowed
    assert v2.remaining_tokens == 20
    await harness.store.settle(second, v2, 70)
    spent = await harness.store.admit(_admission(bucket, tokens=1))
    assert (spent.allowed, spent.refusal, spent.remaining_tokens) == (False, "quota", 0)
    assert spent.retry_after_us == spent.reset_tokens_us > 0


async def test_stream_slots(harness: Harness) -> None:
    bucket = Bucket("t:e", max_streams=2)
    streams = [_admission(bucket, stream=True) for _ in range(3)]
    verdicts: list[Verdict] = [await harness.store.admit(a) for a in streams]
    assert [v.allowed for v in verdicts] == [True, True, False]
    assert verdicts[2].refusal == "streams"
    assert (await harness.store.admit(_admission(bucket))).allowed  # not a stream
    await harness.store.settle(streams[0], verdicts[0], 0)
    assert (await harness.store.admit(_admission(bucket, stream=True))).allowed


async def test_unsettled_reservations_and_slots_expire(harness: Harness) -> None:
    bucket = Bucket("t:f", tokens_per_day=100, max_streams=1)
    assert (await harness.store.admit(_admission(bucket, tokens=100, stream=True))).allowed
    blocked = await harness.store.admit(_admission(bucket, tokens=10, stream=True))
    assert blocked.refusal == "tokens"
    await harness.advance(0.35)  # past the 0.3 s reservation TTL: a crashed request
    again = await harness.store.admit(_admission(bucket, tokens=10, stream=True))
    assert again.allowed
    assert await harness.store.usage("t:f") == (0, 10)


async def test_usage_settled_elsewhere_is_added(harness: Harness) -> None:
    bucket = Bucket("t:g", tokens_per_day=100)
    first = _admission(bucket, tokens=10)
    verdict = await harness.store.admit(first)
    await harness.store.add_usage([("t:g", verdict.day, 85), ("t:g", verdict.day - 1, 1000)])
    assert await harness.store.usage("t:g") == (85, 10)
    spent = await harness.store.admit(_admission(bucket, tokens=20))
    assert spent.refusal == "quota"
