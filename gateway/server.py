"""The process model: uvloop workers sharing one port (SO_REUSEPORT), supervised and drained.

One worker runs in-process. Several workers are separate processes (``spawn``): the supervisor
binds the port first (without listening, so it never takes connections) to fix the port number,
then each worker binds its own listening socket to it with ``SO_REUSEPORT`` and the kernel spreads
connections over them. SIGTERM/SIGINT reach every worker; each turns readiness off, stops
accepting, drains its requests within ``server.drain_timeout_s`` and exits. A worker that dies
on its own is restarted.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Final

import uvloop
from aiohttp import web

from gateway import tasks
from gateway.app import Services, create_app
from gateway.config import GatewayConfig
from gateway.keys import IN_FLIGHT
from gateway.telemetry import SnapshotDir, configure_logging

_log = logging.getLogger("gateway.server")
#: aiohttp's own wait after our drain; handlers are already done or cancelled by then.
_SERVER_SHUTDOWN_S: Final = 5.0
_MIN_UPTIME_S: Final = 2.0
_ORPHAN_CHECK_S: Final = 1.0


def worker_count(config: GatewayConfig) -> int:
    """``server.workers``, or one per CPU when it is 0."""
    return config.server.workers or os.cpu_count() or 1


def serve(config: GatewayConfig, announce: Callable[[str, int, int], None]) -> int:
    """Run the gateway until SIGTERM/SIGINT; ``announce(host, port, workers)`` once it listens."""
    workers = worker_count(config)
    host = config.server.host
    if workers == 1:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(
                run_worker(config, port=config.server.port, reuse_port=False,
                           services=Services(), ready=lambda port: announce(host, port, 1))
            )  # fmt: skip
        return 0
    return _supervise(config, workers, announce)


async def run_worker(
    config: GatewayConfig,
    *,
    port: int,
    reuse_port: bool,
    services: Services,
    ready: Callable[[int], None],
) -> None:
    """Serve one worker until SIGTERM/SIGINT, then shut down in order."""
    app = create_app(config, services)
    runner = web.AppRunner(
        app,
        handler_cancellation=True,
        access_log=logging.getLogger("gateway.access") if config.server.access_log else None,
        shutdown_timeout=_SERVER_SHUTDOWN_S,
        handle_signals=False,
    )
    await runner.setup()
    # Everything alive now (modules, config, app) lives as long as the worker: keep it out of the
    # collector's full passes, which otherwise cost ~12 ms each under load (bench).
    gc.freeze()
    site = web.TCPSite(runner, config.server.host, port, reuse_port=reuse_port, backlog=2048)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    orphan_watch = (
        tasks.spawn(_stop_when_orphaned(stop), name="orphan-watch") if reuse_port else None
    )
    ready(int(runner.addresses[0][1]))
    await stop.wait()
    if orphan_watch is not None:
        await tasks.cancel_and_wait(orphan_watch)
    # 1. readiness off; 2. runner.cleanup: stop accepting, close idle connections, drain
    # (on_shutdown), then close upstream clients (cleanup contexts).
    app[IN_FLIGHT].draining = True
    await runner.cleanup()


async def _stop_when_orphaned(stop: asyncio.Event) -> None:
    """A worker whose supervisor died (even by SIGKILL) drains and exits instead of lingering."""
    parent = os.getppid()
    while True:  # no event tells us the parent died, short of Linux-only prctl: poll
        await asyncio.sleep(_ORPHAN_CHECK_S)
        if os.getppid() != parent:
            break
    _log.warning("supervisor %s is gone; shutting down", parent)
    stop.set()


def _reserve_port(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _supervise(
    config: GatewayConfig, workers: int, announce: Callable[[str, int, int], None]
) -> int:
    reserved = _reserve_port(config.server.host, config.server.port)
    port = int(reserved.getsockname()[1])
    metrics_dir = Path(tempfile.mkdtemp(prefix="gateway-metrics-"))
    ctx = multiprocessing.get_context("spawn")
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs:
            if proc.pid is not None and proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)

    def start() -> tuple[BaseProcess, Connection, float]:
        parent_end, child_end = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=_worker_main, args=(config, port, str(metrics_dir), child_end), daemon=False
        )
        proc.start()
        child_end.close()
        return proc, parent_end, time.monotonic()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    started = [start() for _ in range(workers)]
    procs = [p for p, _, _ in started]
    try:
        for proc, pipe, _ in started:
            if not pipe.poll(60) or pipe.recv() != "ready":
                _log.error("worker %s did not start", proc.pid)
                on_signal(signal.SIGTERM, None)
                return 1
        announce(config.server.host, port, workers)
        return _watch(started, procs, start, lambda: stopping)
    finally:
        for proc in procs:
            proc.join()
        reserved.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _watch(
    started: list[tuple[BaseProcess, Connection, float]],
    procs: list[BaseProcess],
    start: Callable[[], tuple[BaseProcess, Connection, float]],
    is_stopping: Callable[[], bool],
) -> int:
    """Restart workers that die on their own; return once all exited after a stop signal."""
    while True:
        if is_stopping():
            return 0
        for i, (proc, pipe, since) in enumerate(started):
            proc.join(timeout=0.2 / len(started))
            if proc.is_alive() or is_stopping():
                continue
            _log.error("worker %s exited with %s; restarting", proc.pid, proc.exitcode)
            if time.monotonic() - since < _MIN_UPTIME_S:
                _log.error("worker keeps failing at start-up; giving up")
                return 1
            pipe.close()
            started[i] = start()
            procs[i] = started[i][0]


def _worker_main(config: GatewayConfig, port: int, metrics_dir: str, pipe: Connection) -> None:
    configure_logging(config.server.log_level)
    services = Services(snapshots=SnapshotDir(Path(metrics_dir)))

    def ready(_port: int) -> None:
        pipe.send("ready")
        pipe.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run_worker(config, port=port, reuse_port=True, services=services, ready=ready))
