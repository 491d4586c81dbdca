"""Store-outage policy: the shared store with a bounded wait, a circuit breaker and a local share.

Requests are neither failed nor let through unlimited when Redis is unreachable
(``reliability.md`` section 2.2):

- each shared-store call may wait ``limits.timeout_ms``; a timeout or error opens the breaker;
- while it is open, this process decides alone with a ``MemoryStore`` at every limit divided by
  ``limits.replicas`` (so the fleet as a whole stays near the limit), counted in
  ``gateway_ratelimit_fallback_total`` and flagged by the ``gateway_ratelimit_degraded`` gauge;
- after ``limits.retry_interval_s`` one request probes Redis again (the others stay local until
  it answers); the first success closes the breaker. Each transition is logged once; a refused
  password (``StoreAuthFailed``) is handled the same way but logged as an error that names
  ``limits.redis_password``, since waiting will not fix it.
- A request is settled in the store that admitted it. Tokens settled locally during an outage
  are added to Redis's daily counters once it answers again (best effort: lost if this process
  stops first or Redis fails again mid-copy twice).
- The local share starts from zero: what the fleet used earlier that day is unknown to it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace

from gateway import tasks
from gateway.limits.rules import Admission
from gateway.limits.store import (
    LimitStore,
    MemoryStore,
    StoreAuthFailed,
    StoreUnavailable,
    Verdict,
)
from gateway.telemetry import Metrics

_log = logging.getLogger("gateway.limits")
RECONCILE_TASK = "limits-reconcile"


class FallbackStore:
    """A ``LimitStore`` that survives the shared store's outages."""

    def __init__(  # noqa: PLR0913 -- the policy's knobs, all keyword-only
        self,
        shared: LimitStore,
        *,
        local: MemoryStore,
        replicas: int,
        timeout_s: float,
        retry_interval_s: float,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._shared = shared
        self._local = local
        self._replicas = replicas
        self._timeout_s = timeout_s
        self._retry_s = retry_interval_s
        self._metrics = metrics
        self._clock = clock
        self._open_until: float | None = None
        """None while Redis answers; else when the next probe may go."""
        self._pending: dict[tuple[str, int], int] = {}
        """Tokens settled locally, by (bucket key, day), not yet added to Redis."""

    @property
    def degraded(self) -> bool:
        """Whether the local fallback is deciding."""
        return self._open_until is not None

    async def start(self) -> None:
        """Start the shared store (it must not fail when Redis is down)."""
        await self._shared.start()

    async def aclose(self) -> None:
        """Close the shared store."""
        await self._shared.aclose()

    async def admit(self, admission: Admission) -> Verdict:
        """Ask Redis within the time bound; else decide locally at the per-replica share."""
        if self._open_until is not None:
            now = self._clock()
            if now < self._open_until:
                return self._admit_locally(admission)
            self._open_until = now + self._retry_s  # this request probes; others stay local
        try:
            async with asyncio.timeout(self._timeout_s):
                verdict = await self._shared.admit(admission)
        except (StoreUnavailable, TimeoutError) as exc:
            self._trip(exc)
            return self._admit_locally(admission)
        if self._open_until is not None:
            self._open_until = None
            self._metrics.ratelimit_degraded.dec()
            _log.warning("rate-limit store answers again; shared limits restored")
            if self._pending:
                _ = tasks.spawn(self._copy_pending(), name=RECONCILE_TASK)
        return verdict

    async def _copy_pending(self) -> None:
        """Add the tokens settled locally during the outage to Redis's counters."""
        pending, self._pending = self._pending, {}
        entries = [(key, day, tokens) for (key, day), tokens in pending.items()]
        try:
            async with asyncio.timeout(self._timeout_s * 4):
                await self._shared.add_usage(entries)
        except (StoreUnavailable, TimeoutError):
            for (key, day), tokens in pending.items():  # keep them for the next recovery
                self._pending[key, day] = self._pending.get((key, day), 0) + tokens

    async def settle(self, admission: Admission, verdict: Verdict, actual_tokens: int) -> None:
        """Settle where the request was admitted; a lost settle expires with its reservation."""
        if verdict.is_local:
            self._local.settle_now(self._share(admission), verdict, actual_tokens)
            for bucket in admission.buckets:
                if bucket.tokens_per_day is not None and actual_tokens:
                    slot = (bucket.key, verdict.day)
                    self._pending[slot] = self._pending.get(slot, 0) + actual_tokens
            return
        try:
            async with asyncio.timeout(self._timeout_s * 4):  # off the hot path: wait longer
                await self._shared.settle(admission, verdict, actual_tokens)
        except (StoreUnavailable, TimeoutError) as exc:
            self._trip(exc)
            _log.warning("could not settle a reservation; it expires after its TTL")

    async def add_usage(self, entries: list[tuple[str, int, int]]) -> None:
        """Add usage to the shared store."""
        await self._shared.add_usage(entries)

    async def usage(self, key: str) -> tuple[int, int]:
        """Today's usage from the store currently deciding."""
        if self.degraded:
            return await self._local.usage(key)
        return await self._shared.usage(key)

    def _trip(self, exc: BaseException) -> None:
        if self._open_until is None:
            self._metrics.ratelimit_degraded.inc()
            if isinstance(exc, StoreAuthFailed):
                _log.error(
                    "rate-limit store refused authentication (check limits.redis_password); "
                    "deciding locally at 1/%d of each limit",
                    self._replicas,
                )
            else:
                _log.warning(
                    "rate-limit store unreachable (%s); deciding locally at 1/%d of each limit",
                    type(exc).__name__,
                    self._replicas,
                )
        self._open_until = self._clock() + self._retry_s

    def _admit_locally(self, admission: Admission) -> Verdict:
        self._metrics.ratelimit_fallbacks.inc()
        verdict = self._local.decide(self._share(admission))
        return replace(verdict, is_local=True)

    def _share(self, admission: Admission) -> Admission:
        buckets = tuple(b.share(self._replicas) for b in admission.buckets)
        return replace(admission, buckets=buckets)
