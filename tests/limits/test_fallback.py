"""The outage policy without a network: bounded wait, local share, breaker, one log per change."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from gateway import tasks
from gateway.limits.fallback import RECONCILE_TASK, FallbackStore
from gateway.limits.rules import Admission, Bucket
from gateway.limits.store import MemoryStore, StoreUnavailable, Verdict
from gateway.telemetry import Metrics

BUCKET = Bucket("t:x", requests_per_minute=600, burst=8)


class FlakyStore:
    """A shared store that answers, hangs or fails on command."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.calls = 0
        self.inner = MemoryStore(60.0)

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    async def admit(self, admission: Admission) -> Verdict:
        self.calls += 1
        if self.mode == "hang":
            await asyncio.sleep(3600)
        if self.mode == "fail":
            raise StoreUnavailable("connection refused")
        return await self.inner.admit(admission)

    async def settle(self, admission: Admission, verdict: Verdict, actual_tokens: int) -> None:
        await self.inner.settle(admission, verdict, actual_tokens)

    async def usage(self, key: str) -> tuple[int, int]:
        return await self.inner.usage(key)

    async def add_usage(self, entries: list[tuple[str, int, int]]) -> None:
        if self.mode != "ok":
            raise StoreUnavailable("connection refused")
        await self.inner.add_usage(entries)


def _admission(i: int) -> Admission:
    return Admission(f"req_{i}", (BUCKET,), 0, is_stream=False)


async def test_hanging_store_costs_one_timeout_then_the_breaker_decides_locally(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.limits")
    shared, metrics = FlakyStore(), Metrics()
    now = [100.0]
    store = FallbackStore(
        shared, local=MemoryStore(60.0), replicas=4, timeout_s=0.02, retry_interval_s=1.0,
        metrics=metrics, clock=lambda: now[0],
    )  # fmt: skip
    assert (await store.admit(_admission(0))).is_local is False
    shared.mode = "hang"
    started = time.monotonic()
    first = await store.admit(_admission(1))
    assert time.monotonic() - started < 0.5  # bounded by timeout_s
    assert first.is_local
    assert first.allowed
    assert store.degraded
    assert metrics.ratelimit_degraded.values[()] == 1.0
    verdicts = [await store.admit(_admission(i)) for i in range(2, 6)]
    assert shared.calls == 2  # the open breaker does not ask the hanging store again
    # The local share: burst 8 / 4 replicas = 2 at once.
    assert [v.allowed for v in [first, *verdicts]] == [True, True, False, False, False]
    assert verdicts[0].limit_requests == 150  # 600 / 4
    now[0] += 1.5  # past retry_interval_s: the next request probes
    shared.mode = "ok"
    back = await store.admit(_admission(9))
    assert back.is_local is False
    assert metrics.ratelimit_degraded.values[()] == 0.0
    assert metrics.ratelimit_fallbacks.values[()] == 5
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unreachable" in m for m in messages) == 1
    assert sum("answers again" in m for m in messages) == 1


async def test_settle_goes_to_the_store_that_admitted() -> None:
    shared, local = FlakyStore(), MemoryStore(60.0)
    bucket = Bucket("t:y", tokens_per_day=1000)
    store = FallbackStore(
        shared, local=local, replicas=2, timeout_s=0.05, retry_interval_s=10.0, metrics=Metrics()
    )
    remote = Admission("req_r", (bucket,), 100, is_stream=False)
    remote_verdict = await store.admit(remote)
    shared.mode = "fail"
    here = Admission("req_l", (bucket,), 100, is_stream=False)
    local_verdict = await store.admit(here)
    assert local_verdict.is_local
    assert local_verdict.limit_tokens == 500  # half of the daily budget per replica
    shared.mode = "ok"
    await store.settle(remote, remote_verdict, 40)
    await store.settle(here, local_verdict, 30)
    assert await shared.usage("t:y") == (40, 0)
    assert await local.usage("t:y") == (30, 0)


async def test_tokens_settled_locally_reach_the_shared_store_after_recovery() -> None:
    shared, metrics = FlakyStore(), Metrics()
    now = [100.0]
    bucket = Bucket("t:z", tokens_per_day=10_000)
    store = FallbackStore(
        shared, local=MemoryStore(60.0), replicas=2, timeout_s=0.05, retry_interval_s=1.0,
        metrics=metrics, clock=lambda: now[0],
    )  # fmt: skip
    shared.mode = "fail"
    for i in range(3):
        admission = Admission(f"req_o{i}", (bucket,), 100, is_stream=False)
        verdict = await store.admit(admission)
        assert verdict.is_local
        await store.settle(admission, verdict, 25)
    assert await shared.inner.usage("t:z") == (0, 0)
    shared.mode = "ok"
    now[0] += 2.0
    assert not (await store.admit(Admission("req_p", (bucket,), 1, is_stream=False))).is_local
    await tasks.wait_named(RECONCILE_TASK, 1.0)
    assert await shared.inner.usage("t:z") == (75, 1)  # outage usage copied; the probe reserved 1
