"""Sustained load on the gateway (``--soak SECONDS``), sampling its RSS to spot growth.

Two wrk processes run for the whole soak: non-streamed requests on 48 connections and streams on
16. Without wrk, the Python driver sends non-streamed requests on 64 connections. The sampling loop
ends when the load ends, and at the latest a minute after the soak's duration.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Final

from bench.load import Load
from bench.procs import peak_rss_mb, rss_mb

JSON_CONNECTIONS: Final = 48
STREAM_CONNECTIONS: Final = 16
_PRINT_EVERY_S: Final = 30.0


def _start(
    load: Load, port: int, seconds: float
) -> tuple[str, Callable[[], bool], Callable[[], list[dict[str, float]]]]:
    """Start the load: (description, is it running, wait for and return its results)."""
    if load.wrk is not None:
        runs = [
            load.start_wrk(port, JSON_CONNECTIONS, seconds),
            load.start_wrk(port, STREAM_CONNECTIONS, seconds, stream=True),
        ]
        return (
            f"wrk c={JSON_CONNECTIONS} non-streamed + c={STREAM_CONNECTIONS} streamed at once",
            lambda: any(proc.poll() is None for proc, _ in runs),
            lambda: [load.finish_wrk(proc, log, 60) for proc, log in runs],
        )
    results: list[dict[str, float]] = []
    thread = threading.Thread(
        target=lambda: results.append(load.run(port, 64, seconds)), daemon=True
    )
    thread.start()

    def finish() -> list[dict[str, float]]:
        thread.join(60)
        return results

    return "python driver c=64 non-streamed", thread.is_alive, finish


def soak(
    load: Load,
    port: int,
    pid: int,
    seconds: float,
    interval_s: float,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Load the gateway for ``seconds``; RSS every ``interval_s``; first/last/max and growth."""
    description, running, finish = _start(load, port, seconds)
    say(f"soak: {seconds:.0f} s on the gateway ({description}), RSS every {interval_s:g} s")
    samples: list[tuple[float, float]] = []
    start = time.monotonic()
    last_print = start
    while running() and time.monotonic() - start < seconds + 60:
        time.sleep(max(0.05, min(interval_s, seconds + 1 - (time.monotonic() - start))))
        now = time.monotonic()
        samples.append((round(now - start, 1), rss_mb(pid)))
        if now - last_print >= _PRINT_EVERY_S or not running():
            last_print = now
            say(f"soak: {now - start:5.0f}/{seconds:.0f} s, gateway RSS {samples[-1][1]:.1f} MB")
    points = finish()
    rss = [mb for _, mb in samples] or [rss_mb(pid)]
    out: dict[str, Any] = {
        "duration_s": seconds,
        "load": description,
        "interval_s": interval_s,
        "first_mb": rss[0],
        "last_mb": rss[-1],
        "max_mb": max(rss),
        "peak_hwm_mb": peak_rss_mb(pid),
        "growth_pct": (rss[-1] - rss[0]) / rss[0] * 100,
        "requests": sum(p["requests"] for p in points),
        "errors": sum(p["errors"] for p in points),
        "points": points,
        "samples": samples,
    }
    say(
        f"soak: RSS first {out['first_mb']:.1f}, last {out['last_mb']:.1f}, "
        f"max {out['max_mb']:.1f} MB, growth {out['growth_pct']:+.1f} %, "
        f"{out['requests']:.0f} requests, {out['errors']:.0f} errors"
    )
    return out
