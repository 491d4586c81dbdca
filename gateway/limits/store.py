"""The limit store seam (``LimitStore``) and its in-memory implementation for one process.

Every store decides one admission atomically: all buckets of a request are checked first, and
only if every one admits are they all charged (GCRA cells, token reservation, stream slot). A
refused request charges nothing.

Token quotas: per bucket and UTC day, ``used`` (settled actual tokens) and ``reserved`` (in-flight
estimates). Admission needs ``used + reserved + estimate <= tokens_per_day``. ``settle`` moves a
reservation to ``used`` with the actual count, once per request id; a reservation still open after
``reservation_ttl_s`` is dropped at the next admission of its bucket (a crashed process). Stream
slots expire the same way. Usage is counted on the day the request was admitted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar

from gateway.limits.gcra import US_PER_S, emission_interval_us, gcra, utc_day
from gateway.limits.rules import Admission, Bucket

Refusal = Literal["requests", "tokens", "quota", "streams"]
"""``requests``: RPM; ``tokens``: in-flight reservations fill the day's budget (retry soon);
``quota``: the day's budget is spent; ``streams``: too many open streams."""
BUSY_RETRY_US = US_PER_S
_V = TypeVar("_V")


class StoreUnavailable(Exception):
    """The shared store did not answer (connection, protocol or server error)."""


class StoreAuthFailed(StoreUnavailable):
    """The shared store refused the credentials (missing or wrong password): a configuration
    error, though handled like an outage so requests are still decided."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """A store's answer, with the numbers for the ``x-ratelimit-*`` headers."""

    allowed: bool
    refusal: Refusal | None = None
    retry_after_us: int = 0
    day: int = 0
    """The UTC day the reservation was made on (settled on the same day)."""
    limit_requests: int | None = None
    remaining_requests: int = 0
    reset_requests_us: int = 0
    limit_tokens: int | None = None
    remaining_tokens: int = 0
    reset_tokens_us: int = 0
    is_local: bool = False
    """Decided by the local fallback while the shared store is unreachable."""


class LimitStore(Protocol):
    """Where counters live: this process (``MemoryStore``) or Redis (``RedisStore``)."""

    async def start(self) -> None:
        """Prepare (connect, load scripts); must not fail when the store is unreachable."""

    async def admit(self, admission: Admission) -> Verdict:
        """Decide and, if admitted, charge every bucket of ``admission``."""

    async def settle(self, admission: Admission, verdict: Verdict, actual_tokens: int) -> None:
        """Replace the reservation by ``actual_tokens`` and free the stream slot (idempotent)."""

    async def usage(self, key: str) -> tuple[int, int]:
        """Today's ``(used, reserved)`` tokens of bucket ``key`` (tests, admin)."""

    async def add_usage(self, entries: list[tuple[str, int, int]]) -> None:
        """Add ``(bucket key, day, tokens)`` to ``used`` (usage settled elsewhere, e.g. locally
        during an outage)."""

    async def aclose(self) -> None:
        """Release connections."""


@dataclass
class _Day:
    day: int
    used: int = 0
    reserved: int = 0
    reservations: dict[str, tuple[int, int]] = field(default_factory=dict)
    """request id -> (tokens, expiry us)."""


def wall_clock_us() -> int:
    """Microseconds since the epoch (the in-memory store's clock)."""
    return time.time_ns() // 1000


class MemoryStore:
    """Counters in this process; exact for a single worker. Synchronous inside, hence atomic."""

    def __init__(self, reservation_ttl_s: float, clock: Callable[[], int] = wall_clock_us) -> None:
        self._ttl_us = int(reservation_ttl_s * US_PER_S)
        self._clock = clock
        self._tats: dict[str, int] = {}
        self._days: dict[str, _Day] = {}
        self._streams: dict[str, dict[str, int]] = {}
        self._settled: dict[str, int] = {}

    async def start(self) -> None:
        """Nothing to prepare."""

    async def aclose(self) -> None:
        """Nothing to release."""

    async def admit(self, admission: Admission) -> Verdict:
        """See ``LimitStore.admit``."""
        return self.decide(admission)

    def decide(self, admission: Admission) -> Verdict:
        """``admit`` without a coroutine (the fallback calls it directly)."""
        now = self._clock()
        day, day_left = utc_day(now)
        tally = _Tally(day, day_left)
        for bucket in admission.buckets:
            refusal = (
                self._check_rate(bucket, now, tally)
                or self._check_tokens(bucket, admission.tokens, now, tally)
                or self._check_streams(bucket, admission, now, tally)
            )
            if refusal is not None:
                return tally.verdict(refusal)
        self._charge(admission, tally.tats, day, now + self._ttl_us, now)
        return tally.verdict(Verdict(True, day=day))

    def _check_rate(self, bucket: Bucket, now: int, tally: _Tally) -> Verdict | None:
        rpm = bucket.requests_per_minute
        if rpm is None:
            return None
        result = gcra(self._tats.get(bucket.key, 0), now, emission_interval_us(rpm), bucket.burst)
        if not result.allowed:
            tally.req = (rpm, 0, result.reset_us)
            return Verdict(False, "requests", result.retry_after_us, tally.day)
        tally.tats.append((bucket.key, result.tat_us))
        if tally.req[0] is None or result.remaining < tally.req[1]:
            tally.req = (rpm, result.remaining, result.reset_us)
        return None

    def _check_tokens(self, bucket: Bucket, tokens: int, now: int, tally: _Tally) -> Verdict | None:
        limit = bucket.tokens_per_day
        if limit is None:
            return None
        state = self._day(bucket.key, tally.day, now)
        left = limit - state.used - state.reserved - tokens
        if state.used + tokens > limit:
            tally.tok = (limit, 0)
            return Verdict(False, "quota", tally.day_left, tally.day)
        if left < 0:
            tally.tok = (limit, 0)
            return Verdict(False, "tokens", BUSY_RETRY_US, tally.day)
        if tally.tok[0] is None or left < tally.tok[1]:
            tally.tok = (limit, left)
        return None

    def _check_streams(
        self, bucket: Bucket, admission: Admission, now: int, tally: _Tally
    ) -> Verdict | None:
        if not admission.is_stream or bucket.max_streams is None:
            return None
        if len(self._open_streams(bucket.key, now)) >= bucket.max_streams:
            return Verdict(False, "streams", BUSY_RETRY_US, tally.day)
        return None

    def _charge(
        self, admission: Admission, tats: list[tuple[str, int]], day: int, expiry: int, now: int
    ) -> None:
        self._tats.update(tats)
        if len(self._tats) > 100_000:  # forget keys back at a full burst
            self._tats = {k: t for k, t in self._tats.items() if t > now}
        for bucket in admission.buckets:
            if bucket.tokens_per_day is not None and admission.tokens:
                state = self._day(bucket.key, day, now)
                state.reserved += admission.tokens
                state.reservations[admission.request_id] = (admission.tokens, expiry)
            if admission.is_stream and bucket.max_streams is not None:
                self._streams.setdefault(bucket.key, {})[admission.request_id] = expiry

    async def settle(self, admission: Admission, verdict: Verdict, actual_tokens: int) -> None:
        """See ``LimitStore.settle``."""
        self.settle_now(admission, verdict, actual_tokens)

    def settle_now(self, admission: Admission, verdict: Verdict, actual_tokens: int) -> None:
        """``settle`` without a coroutine."""
        now = self._clock()
        if admission.request_id in self._settled:
            return
        self._settled[admission.request_id] = now + 2 * self._ttl_us
        _drop_expired(self._settled, now, lambda expiry: expiry)
        for bucket in admission.buckets:
            if bucket.tokens_per_day is not None:
                state = self._days.get(bucket.key)
                if state is None or state.day != verdict.day:
                    continue  # the day is over; its counters are gone
                held = state.reservations.pop(admission.request_id, None)
                if held is not None:
                    state.reserved -= held[0]
                state.used += actual_tokens
            if admission.is_stream:
                self._streams.get(bucket.key, {}).pop(admission.request_id, None)

    async def add_usage(self, entries: list[tuple[str, int, int]]) -> None:
        """See ``LimitStore.add_usage``; entries of another day than today are dropped."""
        now = self._clock()
        for key, day, tokens in entries:
            if day == utc_day(now)[0]:
                self._day(key, day, now).used += tokens

    async def usage(self, key: str) -> tuple[int, int]:
        """See ``LimitStore.usage``."""
        now = self._clock()
        state = self._day(key, utc_day(now)[0], now)
        return state.used, state.reserved

    def _day(self, key: str, day: int, now: int) -> _Day:
        state = self._days.get(key)
        if state is None or state.day != day:
            state = self._days[key] = _Day(day)
        for tokens, _ in _drop_expired(state.reservations, now, lambda held: held[1]):
            state.reserved -= tokens
        return state

    def _open_streams(self, key: str, now: int) -> dict[str, int]:
        slots = self._streams.setdefault(key, {})
        _drop_expired(slots, now, lambda expiry: expiry)
        return slots


def _drop_expired(entries: dict[str, _V], now: int, expiry: Callable[[_V], int]) -> list[_V]:
    """Remove and return the expired entries of ``entries``.

    Entries are inserted with ``now + ttl`` and one TTL, so insertion order is expiry order: the
    scan stops at the first live entry (amortised O(1) per entry).
    """
    dropped: list[_V] = []
    while entries:
        key = next(iter(entries))
        if expiry(entries[key]) > now:
            break
        dropped.append(entries.pop(key))
    return dropped


@dataclass
class _Tally:
    """The strictest bucket of each kind seen so far, for the headers; GCRA updates to apply."""

    day: int
    day_left: int
    req: tuple[int | None, int, int] = (None, 0, 0)
    """(limit, remaining, reset us) of requests."""
    tok: tuple[int | None, int] = (None, 0)
    """(limit, remaining) of tokens."""
    tats: list[tuple[str, int]] = field(default_factory=list)

    def verdict(self, verdict: Verdict) -> Verdict:
        return Verdict(
            verdict.allowed,
            verdict.refusal,
            verdict.retry_after_us,
            verdict.day,
            limit_requests=self.req[0],
            remaining_requests=self.req[1],
            reset_requests_us=self.req[2],
            limit_tokens=self.tok[0],
            remaining_tokens=max(0, self.tok[1]),
            reset_tokens_us=self.day_left if self.tok[0] is not None else 0,
        )
