"""Start-up and shutdown of one worker's resources, in order.

Start: upstream clients -> authentication (dev key, JWKS warm-up and refreshes) -> limit store ->
usage ledger -> metrics snapshot writer (multi-worker only).
Shutdown (``on_shutdown`` runs after aiohttp stopped accepting and closed idle connections):
readiness off and drain in-flight requests within ``server.drain_timeout_s`` (streams still open
then end with a ``server_shutdown`` event; every request is settled as it ends) -> stop the
snapshot writer -> flush the usage ledger within ``metering.drain_timeout_s`` (the rest to the
spill file), then close its pool -> close the limit store (after the drain, so the last
settlements still reach it) -> stop JWKS refreshes -> close upstream clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from aiohttp import web

from gateway import tasks
from gateway.keys import CONFIG, IN_FLIGHT, METRICS, SNAPSHOTS
from gateway.limits.limiter import Limiter
from gateway.metering.ledger import Ledger
from gateway.telemetry import Metrics, SnapshotDir

_SNAPSHOT_INTERVAL_S = 1.0
_SETTLE_WAIT_S = 2.0
LIMITS_TASKS = "limits-"
"""Name prefix of the limiter's background tasks (``limits-settle``, ``limits-reconcile``)."""
_log = logging.getLogger("gateway.lifecycle")


class Service(Protocol):
    """A resource opened at start-up and closed at shutdown (upstream clients, authentication)."""

    async def start(self) -> None:
        """Open it (authentication: load keys, warm every JWKS)."""

    async def aclose(self) -> None:
        """Close it."""


def service(resource: Service) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context that starts ``resource`` and closes it at shutdown (reverse order)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        await resource.start()
        yield
        await resource.aclose()

    return ctx


def limit_store(limiter: Limiter) -> Callable[[web.Application], AsyncIterator[None]]:
    """Open the limit store's client (never fails on an unreachable Redis); close it late."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        await limiter.store.start()
        yield
        await tasks.wait_named(LIMITS_TASKS, _SETTLE_WAIT_S)  # settlements, outage usage copy
        await limiter.store.aclose()

    return ctx


def usage_ledger(
    ledger: Ledger, drain_timeout_s: float
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Open the ledger (never fails on an unreachable database); flush it after the drain."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        await ledger.start()
        yield
        queued = len(ledger)
        await ledger.drain(drain_timeout_s)
        _log.info("usage ledger drained (%d records were queued)", queued)

    return ctx


async def metrics_snapshots(app: web.Application) -> AsyncIterator[None]:
    """Share this worker's metrics with its siblings once a second."""
    snapshots = app.get(SNAPSHOTS)
    if snapshots is None:
        yield
        return
    task = tasks.spawn(_write_snapshots(app[METRICS], snapshots), name="metrics-snapshots")
    yield
    await tasks.cancel_and_wait(task)
    snapshots.remove()


async def _write_snapshots(metrics: Metrics, snapshots: SnapshotDir) -> None:
    while True:
        with contextlib.suppress(OSError):
            snapshots.write(metrics.snapshot())
        await asyncio.sleep(_SNAPSHOT_INTERVAL_S)


async def drain(app: web.Application) -> None:
    """``on_shutdown``: readiness off, let requests finish within the budget, then end them."""
    budget = app[CONFIG].server.drain_timeout_s
    in_flight = app[IN_FLIGHT]
    _log.info("draining %d in-flight requests (budget %.0fs)", len(in_flight), budget)
    cancelled = await in_flight.drain(budget)
    if cancelled:
        _log.warning("drain budget exhausted; ended %d requests", cancelled)
