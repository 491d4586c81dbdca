"""Measurements driven by the precise client: latency at c=1, streams, and a fallback load driver.

All loops are bounded by a request count or a deadline.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field

from bench.client import Client, Result, http_request, request_body

NS_PER_MS = 1_000_000


def percentile(values: list[float], pct: float) -> float:
    """Linear-interpolated percentile of ``values`` (nan when empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(values: list[float]) -> dict[str, float]:
    """n, mean, p50, p90, p99 and max of millisecond samples."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "mean": sum(values) / len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values),
    }


class CheckFailed(Exception):
    """A target answered something other than what the mock sends."""


async def check_target(port: int, chunks: int) -> None:
    """One JSON request and one stream must come back complete.

    Raises:
        CheckFailed: wrong status, body or number of chunks.
    """
    client = Client(port)
    try:
        res = await client.request(http_request(port, request_body(stream=False)), keep_body=True)
        if res.status != 200 or b'"chat.completion"' not in res.body:
            raise CheckFailed(f"JSON answer {res.status}: {res.body[:300]!r}")
        res = await client.request(
            http_request(port, request_body(stream=True)), sse=True, keep_body=True
        )
        if res.status != 200 or len(res.events_ns) != chunks or not res.done_event:
            raise CheckFailed(
                f"stream answer {res.status}: {len(res.events_ns)} chunks (want {chunks}), "
                f"[DONE] {'seen' if res.done_event else 'missing'}: {res.body[:300]!r}"
            )
    finally:
        client.close()


async def latency_c1(port: int, warmup: int, count: int) -> list[float]:
    """Round-trip times (ms) of ``count`` sequential non-streamed requests on one connection."""
    client = Client(port)
    raw = http_request(port, request_body(stream=False))
    samples: list[float] = []
    try:
        for i in range(warmup + count):
            res = await client.request(raw)
            if res.status != 200:
                raise CheckFailed(f"status {res.status} during the latency run")
            if i >= warmup:
                samples.append((res.done_ns - res.sent_ns) / NS_PER_MS)
    finally:
        client.close()
    return samples


@dataclass
class StreamSamples:
    """Time to first ``data:`` event and gaps between events (ms) over many streams."""

    ttft_ms: list[float] = field(default_factory=list)
    gaps_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    streams: int = 0
    errors: int = 0

    def add(self, res: Result, chunks: int) -> None:
        self.streams += 1
        if res.status != 200 or len(res.events_ns) != chunks or not res.done_event:
            self.errors += 1
            return
        times = res.events_ns
        self.ttft_ms.append((times[0] - res.sent_ns) / NS_PER_MS)
        self.gaps_ms.extend((b - a) / NS_PER_MS for a, b in itertools.pairwise(times))
        self.total_ms.append((res.done_ns - res.sent_ns) / NS_PER_MS)

    def summary(self) -> dict[str, object]:
        return {
            "streams": self.streams,
            "errors": self.errors,
            "ttft_ms": summary_ms(self.ttft_ms),
            "gap_ms": summary_ms(self.gaps_ms),
            "total_ms": summary_ms(self.total_ms),
        }


async def streams(
    port: int,
    concurrency: int,
    per_connection: int,
    chunks: int,
    samples: StreamSamples | None = None,
) -> StreamSamples:
    """``concurrency`` connections each run ``per_connection`` streams back to back (added to
    ``samples`` when given)."""
    raw = http_request(port, request_body(stream=True))
    samples = StreamSamples() if samples is None else samples

    async def one_connection() -> None:
        client = Client(port)
        try:
            for _ in range(per_connection):
                samples.add(await client.request(raw, sse=True), chunks)
        finally:
            client.close()

    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(one_connection())
    return samples


async def python_load(port: int, concurrency: int, duration_s: float) -> dict[str, float]:
    """Fallback throughput driver (when wrk is missing): closed loop until the deadline."""
    raw = http_request(port, request_body(stream=False))
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration_s

    async def one_connection() -> None:
        nonlocal errors
        client = Client(port)
        try:
            while time.perf_counter() < deadline:
                res = await client.request(raw)
                if res.status == 200:
                    latencies.append((res.done_ns - res.sent_ns) / NS_PER_MS)
                else:
                    errors += 1
        finally:
            client.close()

    start = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(one_connection())
    elapsed = time.perf_counter() - start
    return {
        "requests": float(len(latencies) + errors),
        "errors": float(errors),
        "duration_s": elapsed,
        "rps": (len(latencies) + errors) / elapsed,
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p99_ms": percentile(latencies, 99),
    }
