"""The sans-io core: GCRA decisions on an injected clock, the UTC day, Go-style durations."""

from __future__ import annotations

import pytest

from gateway.limits.gcra import (
    DAY_US,
    MINUTE_US,
    US_PER_S,
    emission_interval_us,
    gcra,
    go_duration,
    utc_day,
)


def _run(times_us: list[int], rate: int, burst: int) -> list[bool]:
    """Decide requests arriving at ``times_us`` against one key."""
    interval = emission_interval_us(rate)
    tat, out = 0, []
    for now in times_us:
        result = gcra(tat, now, interval, burst)
        if result.allowed:
            tat = result.tat_us
        out.append(result.allowed)
    return out


def test_a_burst_is_admitted_at_once_then_one_per_interval() -> None:
    now = 10 * MINUTE_US
    decisions = _run([now] * 12, rate=60, burst=10)
    assert decisions == [True] * 10 + [False] * 2
    interval = emission_interval_us(60)
    assert interval == US_PER_S
    tat = now + 10 * interval
    early = gcra(tat, now + interval - 1, interval, 10)
    assert not early.allowed
    assert early.retry_after_us == 1
    assert early.tat_us == tat  # a refusal charges nothing
    on_time = gcra(tat, now + interval, interval, 10)
    assert on_time.allowed
    assert on_time.remaining == 0


def test_remaining_and_reset_count_down() -> None:
    interval = emission_interval_us(60)
    first = gcra(0, MINUTE_US, interval, 3)
    assert (first.allowed, first.remaining, first.reset_us) == (True, 2, interval)
    second = gcra(first.tat_us, MINUTE_US, interval, 3)
    assert (second.remaining, second.reset_us) == (1, 2 * interval)
    refused = gcra(gcra(second.tat_us, MINUTE_US, interval, 3).tat_us, MINUTE_US, interval, 3)
    assert not refused.allowed
    assert refused.remaining == 0
    assert refused.retry_after_us == interval
    assert refused.reset_us == 3 * interval


@pytest.mark.parametrize(("rate", "burst"), [(60, 1), (600, 1), (600, 25), (7, 3)])
def test_no_window_admits_more_than_burst_plus_window_over_interval(rate: int, burst: int) -> None:
    """Requests every 1/7 of an interval for 3 minutes; count admissions in sliding windows."""
    interval = emission_interval_us(rate)
    step = max(1, interval // 7)
    times = list(range(MINUTE_US, 4 * MINUTE_US, step))
    admitted = [t for t, ok in zip(times, _run(times, rate, burst), strict=True) if ok]
    assert len(admitted) > 2 * rate  # the limiter is not just refusing
    window = MINUTE_US
    j = 0
    for i, start in enumerate(admitted):
        while j < len(admitted) and admitted[j] < start + window:
            j += 1
        assert j - i <= burst + (window - 1) // interval
    if burst == 1:  # never more than `rate` in any rolling minute
        assert max(sum(1 for t in admitted if s <= t < s + window) for s in admitted) <= rate


def test_cost_charges_several_cells() -> None:
    interval = emission_interval_us(60)
    result = gcra(0, MINUTE_US, interval, burst=5, cost=5)
    assert result.allowed
    assert result.remaining == 0
    assert not gcra(result.tat_us, MINUTE_US, interval, burst=5, cost=1).allowed


def test_utc_day_and_time_to_midnight() -> None:
    day, left = utc_day(3 * DAY_US + 3_600 * US_PER_S)
    assert day == 3
    assert left == 23 * 3_600 * US_PER_S
    assert utc_day(4 * DAY_US) == (4, DAY_US)


@pytest.mark.parametrize(
    ("us", "text"),
    [
        (0, "0s"),
        (1, "1ms"),
        (250_000, "250ms"),
        (999_999, "1s"),
        (1_000_000, "1s"),
        (1_500_000, "1.5s"),
        (1_020_000, "1.02s"),
        (360 * US_PER_S, "6m0s"),
        (3_723 * US_PER_S, "1h2m3s"),
        (86_400 * US_PER_S, "24h0m0s"),
        (-5, "0s"),
    ],
)
def test_go_durations(us: int, text: str) -> None:
    assert go_duration(us) == text
