"""The measurement plan of one run: every target is up at once and the phases alternate between
them in rounds, so slow drift of the machine (other VMs, CPU frequency) hits all targets alike.

Order: start the proxies -> check each target answers correctly -> idle RSS -> latency at c=1
(rounds) -> throughput at each concurrency (rounds, wrk) -> streams -> peak RSS -> soak (gateway).
The ``CPU_ONLY`` targets (baselines of a feature's cost) skip the streams and every concurrency
but the CPU point, which keeps the run short.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import uvloop

from bench import phases
from bench.load import Load
from bench.procs import (
    Proc,
    Procs,
    cpu_seconds,
    peak_rss_mb,
    pinning_available,
    rss_mb,
    runtime_seconds,
)
from bench.soak import soak
from bench.targets import NOMETER, start_proxy

_T = TypeVar("_T")
#: Targets measured at c=1 and at the CPU point only (no streams, no other concurrency).
CPU_ONLY: Final = frozenset({NOMETER})
_T0: Final = time.monotonic()


def say(message: str) -> None:
    """A progress line."""
    print(f"[{time.monotonic() - _T0:6.1f}s] {message}", flush=True)


def arun(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a client coroutine on a fresh uvloop loop."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """What one run does (``--quick`` shrinks every count and duration)."""

    quick: bool
    targets: tuple[str, ...]
    pinned: bool
    latency_warmup: int
    latency_count: int
    latency_rounds: int
    load_warmup_s: float
    load_rounds: int
    load_round_s: int
    concurrencies: tuple[int, ...]
    cpu_point: int
    chunks: int
    chunk_gap_ms: float
    stream_c1_count: int
    stream_concurrency: int
    stream_per_connection: int
    stream_rounds: int
    soak_s: float
    soak_interval_s: float


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the command line."""
    quick = bool(args.quick)
    rounds = 2 if quick else 3
    duration = args.duration or (4.0 if quick else 12.0)
    return Settings(
        quick=quick,
        targets=tuple(t.strip() for t in args.targets.split(",") if t.strip()),
        pinned=pinning_available() and not args.no_pin,
        latency_warmup=200 if quick else 500,
        latency_count=1000 if quick else 3000,
        latency_rounds=2 if quick else 6,
        load_warmup_s=1.0 if quick else 2.0,
        load_rounds=rounds,
        load_round_s=max(1, math.ceil(duration / rounds)),
        concurrencies=(16, 64),
        cpu_point=64,
        chunks=args.chunks,
        chunk_gap_ms=args.chunk_gap_ms,
        stream_c1_count=20 if quick else 100,
        stream_concurrency=16,
        stream_per_connection=4 if quick else 8,
        stream_rounds=2 if quick else 4,
        soak_s=args.soak,
        soak_interval_s=args.soak_interval,
    )


class Suite:
    """Runs every phase against every target; results by target name."""

    def __init__(self, s: Settings, procs: Procs, load: Load, mock: Proc) -> None:
        self.s = s
        self.procs = procs
        self.load = load
        self.mock = mock
        self.ports: dict[str, int] = {}
        self.pids: dict[str, int] = {}
        self.results: dict[str, dict[str, Any]] = {}

    def run(self) -> dict[str, dict[str, Any]]:
        """All phases; the proxies are stopped at the end, also on errors."""
        proxies: list[Proc] = []
        try:
            for name in self.s.targets:
                if name == "direct":
                    self.ports[name] = self.mock.port
                    continue
                proxy = start_proxy(name, self.procs, self.mock.port)
                proxies.append(proxy)
                self.ports[name], self.pids[name] = proxy.port, proxy.pid
                say(f"{name}: listening on {proxy.port} (pid {proxy.pid})")
            for name, port in self.ports.items():
                arun(phases.check_target(port, self.s.chunks))
                self.results[name] = {"port": port, "rss": {}}
            time.sleep(1.0)
            self._rss("idle_mb", rss_mb)
            self._latency()
            for conc in self.s.concurrencies:
                self._throughput(conc)
            self._streams()
            self._rss("after_mb", rss_mb)
            self._rss("peak_mb", peak_rss_mb)
            for name in self.pids:
                rss = self.results[name]["rss"]
                say(f"{name}: RSS idle {rss['idle_mb']:.1f} MB, peak {rss['peak_mb']:.1f} MB")
            if self.s.soak_s > 0 and "gateway" in self.pids:
                self.results["gateway"]["soak"] = soak(
                    self.load, self.ports["gateway"], self.pids["gateway"],
                    self.s.soak_s, self.s.soak_interval_s, say,
                )  # fmt: skip
        finally:
            for proxy in proxies:
                say(f"{proxy.name}: stopped (exit {self.procs.stop(proxy.popen)})")
        return self.results

    def _rss(self, key: str, read: Callable[[int], float]) -> None:
        self.results.get("direct", {}).setdefault("rss", {})[f"mock_{key}"] = read(self.mock.pid)
        for name, pid in self.pids.items():
            self.results[name]["rss"][key] = read(pid)

    def _latency(self) -> None:
        s = self.s
        samples: dict[str, list[float]] = {name: [] for name in self.ports}
        per_round = max(1, s.latency_count // s.latency_rounds)
        for i in range(s.latency_rounds):
            for name, port in self.ports.items():
                warmup = s.latency_warmup if i == 0 else 50  # each round opens a new connection
                samples[name] += arun(phases.latency_c1(port, warmup, per_round))
        for name, values in samples.items():
            lat = self.results[name]["latency_c1"] = phases.summary_ms(values)
            say(
                f"{name}: c=1 latency p50 {lat['p50']:.3f} p90 {lat['p90']:.3f} "
                f"p99 {lat['p99']:.3f} max {lat['max']:.3f} ms ({lat['n']} requests)"
            )

    def _throughput(self, conc: int) -> None:
        s = self.s
        if conc == s.concurrencies[0]:
            for port in self.ports.values():
                self.load.run(port, s.cpu_point, s.load_warmup_s)  # warm-up, not recorded
        ports = {n: p for n, p in self.ports.items() if conc == s.cpu_point or n not in CPU_ONLY}
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name in ports}
        for _ in range(s.load_rounds):
            for name, port in ports.items():
                pid = self.pids.get(name)
                cpu0, mock0 = cpu_seconds(pid) if pid else 0.0, cpu_seconds(self.mock.pid)
                sched0 = runtime_seconds(pid) if pid else 0.0
                point = dict(self.load.run(port, conc, s.load_round_s))
                if pid:
                    point["cpu_s"] = cpu_seconds(pid) - cpu0
                    point["sched_cpu_s"] = runtime_seconds(pid) - sched0
                point["mock_cpu_s"] = cpu_seconds(self.mock.pid) - mock0
                rounds[name].append(point)
        for name, points in rounds.items():
            merged = _merge_rounds(points)
            self.results[name].setdefault("throughput", {})[str(conc)] = merged
            cpu = merged.get("cpu_us_per_req")
            say(
                f"{name}: c={conc} {merged['rps']:,.0f} req/s (rounds "
                f"{', '.join(f'{r:,.0f}' for r in merged['rps_rounds'])}), p99 "
                f"{merged['latency_p99_ms']:.2f} ms, errors {merged['errors']:.0f}"
                + (f", proxy CPU {cpu:.0f} µs/req" if cpu is not None else "")
            )
            if merged["errors"]:
                say(f"WARNING: {name} had {merged['errors']:.0f} errors at c={conc}")

    def _streams(self) -> None:
        s = self.s
        rounds = s.stream_rounds
        plan = (
            (1, max(1, s.stream_c1_count // rounds)),
            (s.stream_concurrency, max(1, s.stream_per_connection // rounds)),
        )
        ports = {n: p for n, p in self.ports.items() if n not in CPU_ONLY}
        for conc, per in plan:
            samples = {name: phases.StreamSamples() for name in ports}
            cpu = {name: 0.0 for name in self.pids if name in ports}
            for _ in range(rounds):
                for name, port in ports.items():
                    pid = self.pids.get(name)
                    cpu0 = runtime_seconds(pid) if pid else 0.0
                    arun(phases.streams(port, conc, per, s.chunks, samples[name]))
                    if pid:
                        cpu[name] += runtime_seconds(pid) - cpu0
            for name, got in samples.items():
                summary = got.summary()
                if name in cpu:
                    summary["cpu_us_per_stream"] = cpu[name] / max(got.streams, 1) * 1e6
                self.results[name].setdefault("streams", {})[str(conc)] = summary
                ttft = phases.summary_ms(got.ttft_ms)
                gap = phases.summary_ms(got.gaps_ms)
                say(
                    f"{name}: streams c={conc} ({got.streams}) TTFT p50 "
                    f"{ttft.get('p50', 0):.3f} / p99 {ttft.get('p99', 0):.3f} ms, gap p50 "
                    f"{gap.get('p50', 0):.2f} / p99 {gap.get('p99', 0):.2f} ms, "
                    f"errors {got.errors}"
                    + (
                        f", proxy CPU {summary['cpu_us_per_stream']:.0f} µs/stream"
                        if name in cpu
                        else ""
                    )
                )


def _merge_rounds(points: list[dict[str, float]]) -> dict[str, Any]:
    """Totals over the rounds; latency percentiles are the median of the rounds' values."""
    requests = sum(p["requests"] for p in points)
    duration = sum(p["duration_s"] for p in points)
    done = max(requests, 1.0)
    out: dict[str, Any] = {
        "requests": requests,
        "errors": sum(p["errors"] for p in points),
        "duration_s": duration,
        "rps": requests / duration if duration else 0.0,
        "rps_rounds": [p["rps"] for p in points],
        "mock_cpu_us_per_req": sum(p["mock_cpu_s"] for p in points) / done * 1e6,
    }
    for key in ("latency_p50_ms", "latency_p99_ms"):
        out[key] = statistics.median(p[key] for p in points)
    if all("cpu_s" in p for p in points):
        out["cpu_us_per_req"] = sum(p["cpu_s"] for p in points) / done * 1e6
        out["cpu_us_per_req_rounds"] = [p["cpu_s"] / max(p["requests"], 1) * 1e6 for p in points]
        out["sched_cpu_us_per_req"] = sum(p["sched_cpu_s"] for p in points) / done * 1e6
    return out
