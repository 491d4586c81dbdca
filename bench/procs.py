"""Processes the bench starts: pinned with ``taskset``, awaited on their "listening" line, stopped
by PID (SIGTERM, then SIGKILL) -- also on errors and Ctrl-C. Plus CPU and memory readings.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psutil

_READY = re.compile(rb"listening on (?:http://[^:\s]+:)?(\d+)")


class StartFailed(Exception):
    """A process exited or stayed silent instead of announcing its port."""


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinning_available() -> bool:
    """Two CPUs and ``taskset``: proxy on CPU 0, mock and load generator on CPU 1."""
    return (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None


@dataclass
class Proc:
    """A started process and the port it announced."""

    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid


class Procs:
    """Owns every process the bench starts; ``stop_all`` ends them by PID."""

    def __init__(self, log_dir: Path, *, pin: bool) -> None:
        self.log_dir = log_dir
        self.pin = pin
        self._running: list[subprocess.Popen[bytes]] = []
        self._files: list[IO[bytes]] = []

    def pinned(self, argv: list[str], cpu: int) -> list[str]:
        """``argv`` under ``taskset -c cpu`` when pinning is on."""
        return ["taskset", "-c", str(cpu), *argv] if self.pin else argv

    def popen(
        self, argv: list[str], *, log_name: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a helper (e.g. wrk) whose output goes to ``log_name``; stopped by ``stop_all``."""
        out = (self.log_dir / log_name).open("wb")
        self._files.append(out)
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        self._running.append(proc)
        return proc

    def start(
        self,
        name: str,
        argv: list[str],
        *,
        cpu: int,
        env: dict[str, str] | None = None,
        timeout_s: float = 30.0,
    ) -> Proc:
        """Start a server and wait for its ``listening on PORT`` line.

        Raises:
            StartFailed: it exited or did not announce itself in time.
        """
        log = self.log_dir / f"{name}.log"
        proc = self.popen(self.pinned(argv, cpu), log_name=log.name, env=env)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            match = _READY.search(log.read_bytes())
            if match:
                return Proc(name, proc, int(match.group(1)), log)
            if proc.poll() is not None:
                break
            time.sleep(0.02)
        tail = log.read_bytes()[-2000:].decode(errors="replace")
        self.stop(proc)
        raise StartFailed(f"{name} did not start (exit {proc.poll()}); log {log}:\n{tail}")

    def stop(self, proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> int | None:
        """SIGTERM by PID, wait, then SIGKILL; returns the exit status."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if proc in self._running:
            self._running.remove(proc)
        return proc.returncode

    def stop_all(self) -> None:
        """Stop everything still running, newest first."""
        for proc in reversed(list(self._running)):
            self.stop(proc)
        for out in self._files:
            out.close()
        self._files.clear()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process (not its children)."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def runtime_seconds(pid: int) -> float:
    """On-CPU time of all the process's threads from the scheduler (``/proc/PID/task/*/schedstat``,
    nanosecond precision), or ``cpu_seconds`` where that is missing. A precise count for short
    phases, where psutil's clock-tick granularity (10 ms) is too coarse.
    """
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return cpu_seconds(pid)
    return total / 1e9


def rss_mb(pid: int) -> float:
    """Resident set size in MiB."""
    return psutil.Process(pid).memory_info().rss / 2**20


def peak_rss_mb(pid: int) -> float:
    """High-water mark of the resident set (``VmHWM``) in MiB, or the current RSS if unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return rss_mb(pid)


def cpu_account() -> dict[str, float]:
    """Busy and steal CPU seconds of the whole machine, and this process's own plus its reaped
    children's (the mock, the proxies, wrk). Deltas over a run give the CPU used by *other* work.
    """
    host = psutil.cpu_times()
    busy = host.user + host.nice + host.system + host.irq + host.softirq
    own = psutil.Process().cpu_times()
    return {
        "host_busy_s": float(busy),
        "steal_s": float(getattr(host, "steal", 0.0)),
        "bench_s": float(own.user + own.system + own.children_user + own.children_system),
        "wall_s": time.monotonic(),
    }


def foreign_load(start: dict[str, float], end: dict[str, float]) -> dict[str, float]:
    """What else ran on the machine during the run (measurements are noisy when this is high)."""
    wall = end["wall_s"] - start["wall_s"]
    foreign = (end["host_busy_s"] - start["host_busy_s"]) - (end["bench_s"] - start["bench_s"])
    cpus = os.cpu_count() or 1
    return {
        "wall_s": wall,
        "foreign_cpu_s": foreign,
        "foreign_cpu_pct": max(0.0, foreign) / (wall * cpus) * 100 if wall > 0 else 0.0,
        "steal_s": end["steal_s"] - start["steal_s"],
        "loadavg_end": os.getloadavg()[0],
    }
