"""Throughput load: ``wrk`` (one thread, pinned to the load CPU) with a Lua script for the POST
body, or the Python driver when wrk is missing. Both are bounded by a duration.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from pathlib import Path
from typing import Final

import orjson
import uvloop

from bench import phases
from bench.client import AUTHORIZATION, PATH, request_body
from bench.procs import Procs

_MARK: Final = "BENCH_RESULT "
_LUA: Final = """\
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
{headers}

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{mark}{{"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50_us":%.1f,"p90_us":%.1f,"p99_us":%.1f,' ..
    '"max_us":%.1f,"mean_us":%.1f}}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""


def wrk_path() -> str | None:
    return shutil.which("wrk")


def wrk_version() -> str:
    path = wrk_path()
    if path is None:
        return "none"
    out = subprocess.run([path, "--version"], capture_output=True, check=False, timeout=10)
    text = (out.stdout or out.stderr).decode(errors="replace")
    match = re.search(r"wrk (\S+)", text)
    return match.group(1) if match else "unknown version"


def write_script(directory: Path, *, stream: bool) -> Path:
    """The Lua script posting the bench body (streamed or not)."""
    path = directory / ("post-stream.lua" if stream else "post.lua")
    headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in AUTHORIZATION.items())
    lua = _LUA.format(body=request_body(stream=stream).decode(), mark=_MARK, headers=headers)
    path.write_text(lua)
    return path


def parse_wrk(output: str) -> dict[str, float]:
    """Numbers from the Lua ``done`` line, plus ``Requests/sec`` from wrk's own text.

    Raises:
        ValueError: the output has no result line.
    """
    line = next((ln for ln in output.splitlines() if ln.startswith(_MARK)), None)
    if line is None:
        raise ValueError(f"no wrk result line in:\n{output[-2000:]}")
    raw = orjson.loads(line[len(_MARK) :])
    errors = raw["connect"] + raw["read"] + raw["write"] + raw["timeout"] + raw["status"]
    duration_s = raw["duration_us"] / 1e6
    rps_text = re.search(r"Requests/sec:\s*([\d.]+)", output)
    return {
        "requests": float(raw["requests"]),
        "errors": float(errors),
        "non_2xx": float(raw["status"]),
        "duration_s": duration_s,
        "rps": float(rps_text.group(1)) if rps_text else raw["requests"] / duration_s,
        "latency_p50_ms": raw["p50_us"] / 1000,
        "latency_p90_ms": raw["p90_us"] / 1000,
        "latency_p99_ms": raw["p99_us"] / 1000,
        "latency_max_ms": raw["max_us"] / 1000,
    }


class Load:
    """Runs one load point against a port, with wrk if present."""

    def __init__(self, procs: Procs, scripts: Path, cpu: int) -> None:
        self.procs = procs
        self.cpu = cpu
        self.wrk = wrk_path()
        self.driver = f"wrk ({wrk_version()})" if self.wrk else "python (wrk not installed)"
        self._scripts = {s: write_script(scripts, stream=s) for s in (False, True)}
        self._runs = 0

    def start_wrk(
        self, port: int, connections: int, duration_s: float, *, stream: bool = False
    ) -> tuple[subprocess.Popen[bytes], Path]:
        """Start wrk in the background; read the result with ``finish_wrk``."""
        assert self.wrk is not None
        self._runs += 1
        argv = [
            self.wrk, "-t1", f"-c{connections}", f"-d{max(1, round(duration_s))}s", "--latency",
            "--timeout", "10s", "-s", str(self._scripts[stream]), f"http://127.0.0.1:{port}{PATH}",
        ]  # fmt: skip
        log_name = f"wrk-{self._runs:03d}.log"
        proc = self.procs.popen(self.procs.pinned(argv, self.cpu), log_name=log_name)
        return proc, self.procs.log_dir / log_name

    def finish_wrk(
        self, proc: subprocess.Popen[bytes], log: Path, timeout_s: float
    ) -> dict[str, float]:
        try:
            proc.wait(timeout_s)
        finally:
            self.procs.stop(proc)
        return parse_wrk(log.read_text(errors="replace"))

    def run(self, port: int, connections: int, duration_s: float) -> dict[str, float]:
        """One closed-loop load point of non-streamed requests."""
        if self.wrk is None:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(phases.python_load(port, connections, duration_s))
        proc, log = self.start_wrk(port, connections, duration_s)
        return self.finish_wrk(proc, log, duration_s + 30)
