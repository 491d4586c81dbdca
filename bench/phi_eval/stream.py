"""``python -m bench.phi_eval.stream [--write]``: CPU per streamed chunk and hold-back of the
transducers, and input redaction throughput, on the generated corpus (``phi.md`` §2.5 setup:
random 2-6 character chunks, one process, CPU time via ``perf_counter_ns``)."""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import time
from pathlib import Path

from bench.phi_eval.corpus import generate
from gateway.phi.detectors import Detector
from gateway.phi.redactor import PlaceholderBook, redact_text
from gateway.phi.transducer import Masker, Reidentifier
from gateway.phi.warmup import warm_up

RESULTS = Path(__file__).resolve().parent / "stream_results.md"


def _chunks(text: str, rng: random.Random) -> list[str]:
    out, pos = [], 0
    while pos < len(text):
        n = rng.randint(2, 6)
        out.append(text[pos : pos + n])
        pos += n
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _run(t: Masker | Reidentifier, chunks: list[str]) -> dict[str, float]:
    times: list[float] = []
    held: list[int] = []
    for chunk in chunks:
        start = time.perf_counter_ns()
        t.feed(chunk)
        times.append((time.perf_counter_ns() - start) / 1000)
        held.append(t.held)
    t.flush()
    return {
        "chunks": len(chunks),
        "us_mean": statistics.fmean(times),
        "us_p50": _pct(times, 0.50),
        "us_p99": _pct(times, 0.99),
        "held_mean": statistics.fmean(held),
        "held_p99": _pct([float(h) for h in held], 0.99),
        "held_max": max(held),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-template", type=int, default=20)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    rng = random.Random(6)
    detector = Detector()
    texts = [e.text for e in generate(args.per_template)]
    text = " ".join(texts)
    book = PlaceholderBook()
    start = time.perf_counter()
    redacted = redact_text(text, detector, book)
    cold_s = time.perf_counter() - start
    start = time.perf_counter()
    redact_text(text, detector, PlaceholderBook())
    warm_s = time.perf_counter() - start
    chunks, rchunks = _chunks(text, rng), _chunks(redacted, rng)
    # Pass 1 is cold (RE2 builds its DFA states lazily, on first sight of each state); pass 2
    # uses a fresh detector warmed by `warm_up()` on its built-in sample (what start-up can do);
    # pass 3 repeats the same chunks with everything warm (a long-lived worker).
    results = []
    for label in ("cold", "after warm_up()", "warm"):
        if label == "after warm_up()":
            detector = Detector()  # fresh automata, warmed on the built-in sample only
            warm_up(detector)
        masker = Masker(detector, PlaceholderBook(book.originals))
        results.append((f"Masker (generated PHI + echoes), {label}", _run(masker, chunks)))
        reidentifier = Reidentifier(book.originals)
        results.append((f"Reidentifier, {label}", _run(reidentifier, rchunks)))
    lines = [
        "# PHI streaming micro-benchmark",
        "",
        f"`.venv/bin/python -m bench.phi_eval.stream --write` on {platform.machine()}, "
        f"Python {platform.python_version()}; {len(text) / 1000:.0f} KB of generated clinical "
        "text, random 2-6 character chunks. Goals: p99 <= 50 us per chunk, mean hold-back <= 24 "
        "chars.",
        "",
        f"Input redaction (`redact_text`, whole text): {len(text) / cold_s / 1e6:.2f} MB/s cold, "
        f"{len(text) / warm_s / 1e6:.2f} MB/s warm ({len(book)} placeholders issued).",
        "",
        "| transducer | chunks | us/chunk mean | p50 | p99 | held mean | held p99 | held max |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results:
        cells = [f"{r['chunks']:.0f}", f"{r['us_mean']:.1f}", f"{r['us_p50']:.1f}"]
        cells += [f"{r['us_p99']:.1f}", f"{r['held_mean']:.1f}", f"{r['held_p99']:.0f}"]
        cells.append(f"{r['held_max']:.0f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.write:
        RESULTS.write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
