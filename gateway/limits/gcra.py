"""Rate-limit arithmetic without I/O: GCRA, the UTC-day token window, Go-style durations.

All times are integer microseconds on one clock supplied by the caller (Redis ``TIME`` for the
shared store, the wall clock for the in-memory one), so the Lua script in
``gateway.limits.redis_store`` and this module compute the same answers.

GCRA (generic cell rate algorithm) keeps one number per key, the theoretical arrival time
``tat``. With emission interval ``T = period / rate`` and a burst of ``B`` cells, a request of cost
``c`` is admitted iff ``max(tat, now) + c*T - B*T <= now``; admitting sets
``tat = max(tat, now) + c*T``. Invariant: in any window of length ``W`` at most
``B + floor(W / T)`` cells are admitted, so with ``B = 1`` never more than ``rate`` per period.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final

US_PER_S: Final = 1_000_000
MINUTE_US: Final = 60 * US_PER_S
DAY_US: Final = 86_400 * US_PER_S


@dataclass(frozen=True, slots=True)
class GCRAResult:
    """The outcome of one GCRA decision."""

    allowed: bool
    tat_us: int
    """The key's theoretical arrival time after the decision (unchanged when refused)."""
    remaining: int
    """Cells that could still be admitted right now."""
    retry_after_us: int
    """0 when allowed; else the wait until this request would be admitted."""
    reset_us: int
    """Time until the key is back to a full burst."""


def emission_interval_us(rate: int, period_us: int = MINUTE_US) -> int:
    """``T`` for ``rate`` cells per ``period_us`` (at least 1 us)."""
    return max(1, period_us // rate)


def gcra(tat_us: int, now_us: int, interval_us: int, burst: int, cost: int = 1) -> GCRAResult:
    """Decide one request of ``cost`` cells against a key whose stored TAT is ``tat_us``.

    ``tat_us`` is 0 for a key never seen. ``burst`` >= 1 cells may be admitted back-to-back.
    """
    base = max(tat_us, now_us)
    new_tat = base + cost * interval_us
    allow_at = new_tat - burst * interval_us
    if allow_at > now_us:
        return GCRAResult(False, tat_us, 0, allow_at - now_us, base - now_us)
    remaining = (now_us - allow_at) // interval_us
    return GCRAResult(True, new_tat, remaining, 0, new_tat - now_us)


def utc_day(now_us: int) -> tuple[int, int]:
    """The UTC calendar day of ``now_us`` (days since the epoch) and the time until it ends."""
    day = now_us // DAY_US
    return day, (day + 1) * DAY_US - now_us


def go_duration(us: int) -> str:
    """A duration as Go's ``time.Duration.String`` prints it, in ms resolution as OpenAI does.

    ``0s``, ``250ms``, ``1s``, ``1.5s``, ``6m0s``, ``1h2m3s``.
    """
    return _go_ms(max(0, -(-us // 1000)))  # round up: never tell a client to come back too early


@functools.lru_cache(maxsize=4096)
def _go_ms(ms: int) -> str:
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    text = f"{seconds}.{millis:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text
