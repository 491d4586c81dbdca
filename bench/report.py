"""Results: machine and git facts, the JSON/markdown/PNG files, and the README sections."""

from __future__ import annotations

import math
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Final

import orjson

ROOT: Final = Path(__file__).resolve().parent.parent
RESULTS: Final = ROOT / "bench" / "results"
START: Final = "<!-- bench:latest:start -->"
END: Final = "<!-- bench:latest:end -->"
TARGETS: Final = (
    "direct", "passthrough", "gateway-noauth", "gateway", "gateway-nometer", "gateway-nocache",
    "gateway-limits-mem", "gateway-limits-redis",
)  # fmt: skip
#: The CPU per request metering may add to ``gateway`` (against ``gateway-nometer``).
METERING_AIM_US: Final = 15.0


def machine() -> dict[str, object]:
    """CPU model, CPU count, memory, kernel and Python version."""
    cpu = "unknown"
    mem_kib = 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    idle = Path("/sys/devices/system/cpu/cpuidle/current_driver")
    poll = Path("/sys/module/haltpoll/parameters/guest_halt_poll_ns")
    return {
        "cpu_model": cpu,
        "cpuidle_driver": idle.read_text().strip() if idle.exists() else None,
        "guest_halt_poll_ns": int(poll.read_text()) if poll.exists() else None,
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, check=False, timeout=30)
    return out.stdout.decode(errors="replace").strip() if out.returncode == 0 else ""


def git_info() -> dict[str, object]:
    """Commit and whether the tree differs from it (results files not counted)."""
    status = [
        line for line in _git("status", "--porcelain").splitlines() if "bench/results/" not in line
    ]
    return {
        "commit": _git("rev-parse", "HEAD") or "unknown",
        "short": _git("rev-parse", "--short", "HEAD") or "nogit",
        "dirty": bool(status),
    }


def _f(value: object, digits: int = 2) -> str:
    if not isinstance(value, int | float) or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _noise_note(noise: dict[str, float] | None) -> str:
    if not noise:
        return ""
    return (
        f" Other processes used {max(0.0, noise['foreign_cpu_pct']):.1f} % of the machine's CPU"
        f" during the run{' (noisy)' if noise['foreign_cpu_pct'] > 3 else ''}."
    )


def _pair(a: object, b: object, digits: int) -> str:
    return f"{_f(a, digits)} / {_f(b, digits)}"


def _row(name: str, res: dict[str, Any]) -> str:
    t = res["targets"][name]
    d = res["derived"][name]
    lat = t["latency_c1"]
    tp = t["throughput"]
    rss = t.get("rss") or {}
    direct = name == "direct"
    cells = [
        f"**{name}**",
        _f(lat.get("p50"), 3),
        _f(lat.get("p99"), 3),
        _f(d.get("added_p50_ms"), 3),
        _f(d.get("added_p99_ms"), 3),
        _f(tp.get("16", {}).get("rps"), 0),
        _f(tp.get("64", {}).get("rps"), 0),
        _f(d.get("cpu_us_per_req"), 0),
        _f(d.get("rps_vs_direct"), 2),
        _f(d.get("rps_vs_passthrough"), 2),
        _f(d.get("cpu_vs_passthrough"), 2),
        "-" if direct else _pair(d.get("ttft_added_p99_ms_c1"), d.get("ttft_added_p99_ms_cN"), 3),
        _pair(d.get("gap_p99_ms_c1"), d.get("gap_p99_ms_cN"), 2),
        "-" if direct else _pair(rss.get("idle_mb"), rss.get("peak_mb"), 0),
    ]
    return "| " + " | ".join(cells) + " |"


def table(res: dict[str, Any]) -> str:
    """The one summary table (plus its legend and the goal checks)."""
    s = res["settings"]
    head = (
        "| target | p50 ms c=1 | p99 ms c=1 | added p50 ms | added p99 ms | req/s c=16 "
        "| req/s c=64 | CPU µs/req | req/s vs direct | req/s vs passthrough | CPU vs passthrough "
        "| TTFT added p99 ms c=1 / c=16 | chunk gap p99 ms c=1 / c=16 | RSS idle / peak MB |"
    )
    lines = [head, "|" + "---|" * 14]
    lines += [_row(name, res) for name in TARGETS if name in res["targets"]]
    m, g = res["machine"], res["git"]
    lines += [
        "",
        f"{res['date']}, commit `{g['short']}`{' (dirty tree)' if g['dirty'] else ''}, "
        f"{'quick' if s['quick'] else 'full'} run; {m['cpu_model']}, {m['nproc']} CPUs, "
        f"{m['memory_gib']} GiB, Linux {m['kernel']}, Python {m['python']}. Throughput driver: "
        f"{res['driver']}; CPU/req and ratios at c={s['cpu_point']}; "
        f"{'proxy on CPU 0, mock and load on CPU 1' if s['pinned'] else 'no CPU pinning'}; "
        f"targets measured in interleaved rounds. "
        f"Streams: {s['chunks']} chunks {s['chunk_gap_ms']:g} ms apart, "
        f"measured at c=1 and c={s['stream_concurrency']}." + _noise_note(res.get("noise")),
    ]
    goals = res.get("goals") or {}
    if goals:
        checks = ", ".join(
            f"{k} {_f(v['value'], v['digits'])} ≤ {v['limit']:g} "
            + ("n/a" if v["ok"] is None else "✅" if v["ok"] else "❌")
            for k, v in goals.items()
        )
        lines += ["", f"Gateway goals: {checks}."]
    auth = [
        f"{name} {_f(d.get('auth_cpu_us_per_req'), 1)} µs CPU/req "
        f"(ratio {_f(d.get('auth_cpu_ratio'), 3)}), p99 c=1 {_f(d.get('auth_added_p99_ms'), 3)} ms"
        for name in ("gateway", "gateway-nocache")
        if name in res["targets"] and "gateway-noauth" in res["targets"]
        for d in [res["derived"][name]]
    ]
    if auth:
        lines += [
            "",
            "Cost of authentication against `gateway-noauth` (same token sent to every target): "
            + "; ".join(auth)
            + ". `gateway` serves repeat tokens from its verified-token cache; `gateway-nocache` "
            "runs the full RS256 verification on every request.",
        ]
    limits = [
        f"{name} {_f(d.get('limits_added_p50_us'), 1)} µs added p50 c=1 "
        f"(ratio {_f(d.get('limits_p50_ratio'), 3)}), {_f(d.get('limits_cpu_us_per_req'), 1)} µs "
        f"CPU/req"
        for name in ("gateway-limits-mem", "gateway-limits-redis")
        if name in res["targets"] and "gateway" in res["targets"]
        for d in [res["derived"][name]]
    ]
    if limits:
        lines += [
            "",
            "Cost of rate limits against `gateway` (same auth, no limits): "
            + "; ".join(limits)
            + " (goals: memory <= 20 µs, Redis on loopback <= 300 µs).",
        ]
    lines += _metering_note(res)
    soak = res.get("soak")
    if soak:
        lines += [
            "",
            f"Soak {soak['duration_s']:.0f} s (gateway, {soak['load']}): RSS first "
            f"{soak['first_mb']:.1f} MB, last {soak['last_mb']:.1f} MB, max {soak['max_mb']:.1f} "
            f"MB, growth {soak['growth_pct']:+.1f} %; {soak['requests']:.0f} requests, "
            f"{soak['errors']:.0f} errors.",
        ]
    return "\n".join(lines)


def _metering_note(res: dict[str, Any]) -> list[str]:
    if "gateway" not in res["targets"] or "gateway-nometer" not in res["targets"]:
        return []
    d = res["derived"]["gateway"]
    return [
        "",
        "Cost of metering (file ledger, the default) against `gateway-nometer` (metering off; "
        f"c=1 and c={res['settings']['cpu_point']} only): "
        f"{_f(d.get('metering_cpu_us_per_req'), 1)} µs CPU/req "
        f"(ratio {_f(d.get('metering_cpu_ratio'), 3)}; aim <= {METERING_AIM_US:g} µs), "
        f"p50 c=1 {_f(d.get('metering_added_p50_ms'), 3)} ms.",
    ]


def markdown(res: dict[str, Any]) -> str:
    """The markdown results file."""
    return (
        f"# Bench v0 results ({res['date']})\n\n"
        f"Command: `{' '.join(res['command'])}`\n\n{table(res)}\n\n"
        "Columns: `bench/README.md`. Raw numbers: the JSON file of the same name.\n"
    )


def plot(res: dict[str, Any], path: Path) -> None:
    """Latency percentiles at c=1 and throughput at c=16/c=64 per target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in TARGETS if n in res["targets"]]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    width = 0.2
    for i, pct in enumerate(("p50", "p90", "p99", "max")):
        values = [res["targets"][n]["latency_c1"].get(pct, 0.0) for n in names]
        xs = [j + (i - 1.5) * width for j in range(len(names))]
        bars = ax1.bar(xs, values, width, label=pct)
        ax1.bar_label(bars, fmt="%.3g", fontsize=7)
    ax1.set_xticks(range(len(names)), names)
    ax1.set_ylabel("ms")
    ax1.set_yscale("log")
    ax1.set_title("Non-streamed latency at concurrency 1")
    ax1.legend(fontsize=8)
    for i, conc in enumerate(("16", "64")):
        values = [res["targets"][n]["throughput"].get(conc, {}).get("rps", 0.0) for n in names]
        xs = [j + (i - 0.5) * 0.35 for j in range(len(names))]
        bars = ax2.bar(xs, values, 0.35, label=f"c={conc}")
        ax2.bar_label(bars, fmt="%.0f", fontsize=8)
    ax2.set_xticks(range(len(names)), names)
    ax2.set_ylabel("requests / s")
    ax2.set_title(f"Throughput ({res['driver'].split(' ')[0]})")
    ax2.legend(fontsize=8)
    g = res["git"]
    fig.suptitle(
        f"bench v0 — {g['short']}{' (dirty)' if g['dirty'] else ''} — {res['date']}"
        f"{' — quick' if res['settings']['quick'] else ''}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def replace_section(path: Path, body: str) -> bool:
    """Rewrite the text between the markers of ``path``; False if it has none."""
    if not path.exists():
        return False
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        return False
    new = pattern.sub(lambda _m: f"{START}\n{body}\n{END}", text, count=1)
    path.write_text(new, encoding="utf-8")
    return True


def write_all(res: dict[str, Any], stamp: str, *, readme: bool) -> list[Path]:
    """Timestamped and ``latest`` JSON/markdown/PNG, and the README sections."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    base = RESULTS / f"{stamp}-{res['git']['short']}"
    written = [base.with_suffix(".json"), base.with_suffix(".md"), base.with_suffix(".png")]
    written[0].write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2) + b"\n")
    written[1].write_text(markdown(res), encoding="utf-8")
    plot(res, written[2])
    for src in list(written):
        latest = RESULTS / f"latest{src.suffix}"
        shutil.copyfile(src, latest)
        written.append(latest)
    section = table(res) + "\n\nReproduce: `scripts/bench` (details: `bench/README.md`)."
    if readme:
        readmes = (ROOT / "bench" / "README.md", ROOT / "README.md")
        written.extend(path for path in readmes if replace_section(path, section))
    return written


def _get(res: dict[str, Any], name: str, *keys: str) -> float | None:
    node: Any = res["targets"].get(name)
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return float(node) if isinstance(node, int | float) else None


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def derive(res: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Per target: added latency and TTFT vs direct, ratios vs direct and passthrough."""
    s = res["settings"]
    cpu_point, cn = str(s["cpu_point"]), str(s["stream_concurrency"])
    out: dict[str, dict[str, float | None]] = {}
    for name in res["targets"]:
        d: dict[str, float | None] = {}
        for pct in ("p50", "p90", "p99"):
            d[f"added_{pct}_ms"] = _sub(
                _get(res, name, "latency_c1", pct), _get(res, "direct", "latency_c1", pct)
            )
        rps = _get(res, name, "throughput", cpu_point, "rps")
        cpu = _get(res, name, "throughput", cpu_point, "cpu_us_per_req")
        d["cpu_us_per_req"] = cpu
        d["rps_vs_direct"] = _div(rps, _get(res, "direct", "throughput", cpu_point, "rps"))
        d["rps_vs_passthrough"] = _div(
            rps, _get(res, "passthrough", "throughput", cpu_point, "rps")
        )
        d["cpu_vs_passthrough"] = _div(
            cpu, _get(res, "passthrough", "throughput", cpu_point, "cpu_us_per_req")
        )
        for conc, tag in (("1", "c1"), (cn, "cN")):
            for pct in ("p50", "p99"):
                ttft = ("streams", conc, "ttft_ms", pct)
                d[f"ttft_added_{pct}_ms_{tag}"] = _sub(
                    _get(res, name, *ttft), _get(res, "direct", *ttft)
                )
                d[f"ttft_vs_passthrough_{pct}_ms_{tag}"] = _sub(
                    _get(res, name, *ttft), _get(res, "passthrough", *ttft)
                )
                gap = _get(res, name, "streams", conc, "gap_ms", pct)
                d[f"gap_{pct}_ms_{tag}"] = gap
                d[f"gap_added_{pct}_ms_{tag}"] = _sub(gap, float(s["chunk_gap_ms"]))
        if name.startswith("gateway"):  # the cost of authentication, against the no-auth run
            noauth = _get(res, "gateway-noauth", "throughput", cpu_point, "cpu_us_per_req")
            d["auth_cpu_us_per_req"] = _sub(cpu, noauth)
            d["auth_cpu_ratio"] = _div(cpu, noauth)
            d["auth_added_p99_ms"] = _sub(
                _get(res, name, "latency_c1", "p99"),
                _get(res, "gateway-noauth", "latency_c1", "p99"),
            )
        if name == "gateway":  # the cost of metering, against the same set-up without it
            nometer = _get(res, "gateway-nometer", "throughput", cpu_point, "cpu_us_per_req")
            d["metering_cpu_us_per_req"] = _sub(cpu, nometer)
            d["metering_cpu_ratio"] = _div(cpu, nometer)
            d["metering_added_p50_ms"] = _sub(
                _get(res, name, "latency_c1", "p50"),
                _get(res, "gateway-nometer", "latency_c1", "p50"),
            )
        if name.startswith("gateway-limits"):  # the cost of limits, against `gateway`
            base_p50 = _get(res, "gateway", "latency_c1", "p50")
            p50 = _get(res, name, "latency_c1", "p50")
            added = _sub(p50, base_p50)
            d["limits_added_p50_us"] = None if added is None else added * 1000
            d["limits_p50_ratio"] = _div(p50, base_p50)
            d["limits_cpu_us_per_req"] = _sub(
                cpu, _get(res, "gateway", "throughput", cpu_point, "cpu_us_per_req")
            )
        out[name] = d
    return out


#: Gateway goals: label -> (derived or measured value, limit, digits shown).
GOALS: Final = {
    "added p50 ms (c=1)": ("added_p50_ms", 0.5, 3),
    "added p99 ms (c=1)": ("added_p99_ms", 1.0, 3),
    "CPU µs/req": ("cpu_us_per_req", 200.0, 0),
    "TTFT added p99 ms (c=1)": ("ttft_added_p99_ms_c1", 1.0, 3),
    "RSS peak MB": ("rss_peak_mb", 150.0, 1),
    "auth CPU µs/req": ("auth_cpu_us_per_req", 50.0, 1),
}


def goals(res: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The gateway's goals, each with its value, limit and verdict."""
    if "gateway" not in res["targets"]:
        return {}
    values = dict(res["derived"]["gateway"])
    peak = _get(res, "gateway", "rss", "peak_mb")
    soak = res.get("soak")
    if soak and peak is not None:
        peak = max(peak, float(soak["peak_hwm_mb"]))
    values["rss_peak_mb"] = peak
    out: dict[str, dict[str, Any]] = {}
    for label, (key, limit, digits) in GOALS.items():
        value = values.get(key)
        ok = None if value is None else value <= limit
        out[label] = {"value": value, "limit": limit, "ok": ok, "digits": digits}
    return out


def write_scenario(doc: dict[str, Any], text: str, stamp: str, kind: str) -> Path:
    """Write a focused scenario's results (``<stamp>-<commit>-<kind>.json`` and ``.md``), print
    the markdown and where it went; returns the path without suffix."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    base = RESULTS / f"{stamp}-{doc['git']['short']}-{kind}"
    base.with_suffix(".json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    base.with_suffix(".md").write_text(text)
    print(text)
    print(f"results: {base}.json, {base}.md")
    return base
