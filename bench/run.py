"""Bench v0: direct vs bare aiohttp pass-through vs gateway, in one run (see ``bench/README.md``).

Usage: ``python -m bench.run [--quick] [--soak SECONDS] [--targets direct,passthrough,gateway]``
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from bench import client, report
from bench.load import Load
from bench.procs import Procs, cpu_account, foreign_load
from bench.suite import Settings, Suite, say, settings_from
from bench.targets import LOAD_CPU, PROXY_CPU, drop_ledgers, mint_token

#: Other processes' CPU share (of all CPUs) during a run above which the results are flagged.
NOISE_WARN_PCT = 3.0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench.run", description=__doc__)
    p.add_argument("--quick", action="store_true", help="~40 s smoke run")
    p.add_argument(
        "--soak",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="then load the gateway this long, sampling RSS (e.g. 600)",
    )
    p.add_argument("--soak-interval", type=float, default=5.0, metavar="SECONDS")
    p.add_argument(
        "--duration",
        type=float,
        default=0.0,
        help="seconds per throughput point and target (12; 4 with --quick)",
    )
    p.add_argument("--chunks", type=int, default=20, help="chunks per mock stream")
    p.add_argument("--chunk-gap-ms", type=float, default=5.0, help="gap between mock chunks")
    p.add_argument("--targets", default=",".join(report.TARGETS))
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    p.add_argument("--no-readme", action="store_true", help="do not rewrite the README sections")
    return p  # fmt: skip


def _on_sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(143)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    s = settings_from(args)
    unknown = set(s.targets) - set(report.TARGETS)
    if unknown or not s.targets:
        parser.error(f"--targets: choose from {', '.join(report.TARGETS)}")
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    if s.pinned:
        os.sched_setaffinity(0, {LOAD_CPU})  # this process is the precise client
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = report.RESULTS / "tmp" / stamp
    run_dir.mkdir(parents=True, exist_ok=True)
    procs = Procs(run_dir, pin=s.pinned)
    say(f"bench v0 ({'quick' if s.quick else 'full'}), logs in {run_dir}")
    context: dict[str, Any] = {
        "machine": report.machine(),
        "git": report.git_info(),
        "loadavg_start": os.getloadavg()[0],
    }
    if context["loadavg_start"] > 0.5:
        say(f"WARNING: load average {context['loadavg_start']:.2f} before start: other work runs")
    cpu_start = cpu_account()
    results: dict[str, Any] = {}
    driver = "none"
    try:
        mock = procs.start(
            "mock",
            [sys.executable, "-m", "bench.mock", "--port", "0", "--chunks", str(s.chunks),
             "--chunk-gap-ms", str(s.chunk_gap_ms)],
            cpu=LOAD_CPU,
        )  # fmt: skip
        client.AUTHORIZATION["Authorization"] = f"Bearer {mint_token(run_dir)}"
        load = Load(procs, run_dir, LOAD_CPU)
        driver = load.driver
        say(f"mock on {mock.port} (pid {mock.pid}); throughput driver: {driver}")
        results = Suite(s, procs, load, mock).run()
    finally:
        procs.stop_all()
        context["usage_records"] = drop_ledgers(run_dir)
    context["noise"] = foreign_load(cpu_start, cpu_account())
    res = assemble(argv, s, results, driver, stamp, context)
    noise = context["noise"]
    if noise["foreign_cpu_pct"] > NOISE_WARN_PCT:
        say(
            f"WARNING: other processes used {noise['foreign_cpu_s']:.1f} CPU-s "
            f"({noise['foreign_cpu_pct']:.1f} % of the machine) during the run: numbers are noisy"
        )
    update_readme = not (s.quick or args.no_readme or set(s.targets) != set(report.TARGETS))
    for path in report.write_all(res, stamp, readme=update_readme):
        say(f"wrote {path.relative_to(report.ROOT)}")
    print()
    print(report.table(res))
    return 0


def assemble(
    argv: Sequence[str] | None,
    s: Settings,
    results: dict[str, Any],
    driver: str,
    stamp: str,
    context: dict[str, Any],
) -> dict[str, Any]:
    """The results document."""
    res: dict[str, Any] = {
        "schema": "bench-v0",
        "date": datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).isoformat(),
        "command": ["python", "-m", "bench.run", *(sys.argv[1:] if argv is None else argv)],
        "settings": {**asdict(s), "proxy_cpu": PROXY_CPU, "load_cpu": LOAD_CPU},
        **context,
        "driver": driver,
        "targets": {k: {n: v for n, v in r.items() if n != "soak"} for k, r in results.items()},
        "soak": results.get("gateway", {}).get("soak"),
    }
    res["derived"] = report.derive(res)
    res["goals"] = report.goals(res)
    return res


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        print("interrupted; every process the bench started has been stopped", file=sys.stderr)
        raise SystemExit(130) from None
