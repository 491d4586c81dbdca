"""Metrics (Prometheus text format, aggregated across worker processes) and JSON logging.

Each worker keeps its series in memory (a few dict updates per request) and, when several workers
share the port, writes a snapshot to a shared directory once a second; ``/metrics`` in any worker
merges its live series with the other workers' snapshots. Logs are JSON lines; a filter drops
bearer tokens and JWT-looking strings from every record (``SECURITY``: aiohttp logs the first bytes
of an oversized header value, which can be a token).
"""

from __future__ import annotations

import bisect
import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

import orjson

LabelValues = tuple[str, ...]

LATENCY_BUCKETS_S: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0, 300.0,
)  # fmt: skip


class Counter:
    """A monotonically increasing count per label set."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: tuple[str, ...] = ()) -> None:
        self.name, self.help, self.labels = name, help_text, labels
        self.values: dict[LabelValues, float] = {}

    def inc(self, labels: LabelValues = (), amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount


class Gauge(Counter):
    """A value that goes up and down (summed across workers)."""

    kind = "gauge"

    def dec(self, labels: LabelValues = (), amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) - amount

    def set(self, value: float, labels: LabelValues = ()) -> None:
        self.values[labels] = value


class Histogram:
    """Cumulative-bucket histogram per label set."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: tuple[str, ...] = (),
        buckets: tuple[float, ...] = LATENCY_BUCKETS_S,
    ) -> None:
        self.name, self.help, self.labels, self.buckets = name, help_text, labels, buckets
        # per label set: [count per bucket (+Inf last)..., sum]
        self.values: dict[LabelValues, list[float]] = {}

    def observe(self, value: float, labels: LabelValues = ()) -> None:
        series = self.values.get(labels)
        if series is None:
            series = self.values[labels] = [0.0] * (len(self.buckets) + 2)
        series[bisect.bisect_left(self.buckets, value)] += 1
        series[-1] += value


Metric = Counter | Histogram


class Metrics:
    """The gateway's metric families for one worker."""

    def __init__(self) -> None:
        self.requests = Counter(
            "gateway_requests_total", "HTTP requests by route and status.", ("route", "status")
        )
        self.latency = Histogram(
            "gateway_request_duration_seconds",
            "Time from request to the end of the response (whole stream for SSE).",
            ("route",),
        )
        self.ttft = Histogram(
            "gateway_time_to_first_token_seconds",
            "Time from request to the first streamed chunk sent to the client.",
            ("model",),
        )
        self.open_streams = Gauge("gateway_open_streams", "SSE streams currently open.")
        self.upstream_errors = Counter(
            "gateway_upstream_errors_total",
            "Upstream failures by upstream and kind.",
            ("upstream", "kind"),
        )
        self.ratelimit_degraded = Gauge(
            "gateway_ratelimit_degraded",
            "1 per worker whose limiter decides locally because the shared store is unreachable.",
        )
        self.ratelimit_fallbacks = Counter(
            "gateway_ratelimit_fallback_total",
            "Admissions decided by the local fallback limiter (shared store unreachable).",
        )
        self.usage_records = Counter(
            "gateway_usage_records_total",
            "Usage records settled (one per request that reached an upstream), by outcome.",
            ("outcome",),
        )
        self.ledger_queued = Gauge(
            "gateway_ledger_queued_records", "Usage records waiting in memory for the ledger."
        )
        self.ledger_degraded = Gauge(
            "gateway_ledger_degraded", "1 per worker whose usage ledger is unreachable (spilling)."
        )
        self.ledger_spilled = Counter(
            "gateway_ledger_spilled_records_total",
            "Usage records written to the local spill file because the ledger was unreachable.",
        )
        self.families: tuple[Metric, ...] = (
            self.requests, self.latency, self.ttft, self.open_streams, self.upstream_errors,
            self.ratelimit_degraded, self.ratelimit_fallbacks, self.usage_records,
            self.ledger_queued, self.ledger_degraded, self.ledger_spilled,
        )  # fmt: skip

    def snapshot(self) -> bytes:
        """This worker's series as JSON (for the cross-worker merge)."""
        return orjson.dumps(
            {m.name: [[list(k), v] for k, v in m.values.items()] for m in self.families}
        )

    def render(self, others: Iterable[bytes] = ()) -> str:
        """Prometheus text exposition of this worker merged with other workers' snapshots."""
        merged: dict[str, dict[LabelValues, float | list[float]]] = {
            m.name: dict(m.values) for m in self.families
        }
        for raw in others:
            try:
                snap = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue  # a snapshot being replaced; the next scrape will have it
            for name, series in snap.items():
                target = merged.get(name)
                if target is not None:
                    for labels, value in series:
                        _merge(target, tuple(labels), value)
        lines: list[str] = []
        for family in self.families:
            lines.append(f"# HELP {family.name} {family.help}")
            lines.append(f"# TYPE {family.name} {family.kind}")
            for labels, value in sorted(merged[family.name].items()):
                lines.extend(_render_series(family, labels, value))
        return "\n".join(lines) + "\n"


def _merge(
    target: dict[LabelValues, float | list[float]], labels: LabelValues, value: float | list[float]
) -> None:
    current = target.get(labels)
    if current is None:
        target[labels] = value
    elif isinstance(current, list) and isinstance(value, list):
        target[labels] = [a + b for a, b in zip(current, value, strict=True)]
    elif isinstance(current, float | int) and isinstance(value, float | int):
        target[labels] = current + value


def _label_text(names: tuple[str, ...], values: LabelValues, extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _render_series(family: Metric, labels: LabelValues, value: float | list[float]) -> list[str]:
    if isinstance(family, Histogram) and isinstance(value, list):
        out, cumulative = [], 0.0
        for bound, count in zip((*family.buckets, float("inf")), value[:-1], strict=True):
            cumulative += count
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            bucket_labels = _label_text(family.labels, labels, 'le="' + le + '"')
            out.append(f"{family.name}_bucket{bucket_labels} {cumulative:g}")
        out.append(f"{family.name}_sum{_label_text(family.labels, labels)} {value[-1]:.6f}")
        out.append(f"{family.name}_count{_label_text(family.labels, labels)} {cumulative:g}")
        return out
    if isinstance(value, list):
        raise TypeError(f"{family.name}: histogram data in a {family.kind}")
    return [f"{family.name}{_label_text(family.labels, labels)} {value:g}"]


class SnapshotDir:
    """Where workers exchange metric snapshots (one file per worker process)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.own = path / f"worker-{os.getpid()}.json"

    def write(self, data: bytes) -> None:
        tmp = self.own.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(self.own)

    def read_others(self) -> list[bytes]:
        out = []
        for file in self.path.glob("worker-*.json"):
            if file != self.own:
                try:
                    out.append(file.read_bytes())
                except OSError:
                    continue  # the worker is exiting
        return out

    def remove(self) -> None:
        self.own.unlink(missing_ok=True)


# --- logging -------------------------------------------------------------------------------------

_SECRET_PATTERNS: Final = (
    re.compile(r"(?i)bearer\s+\S+"),
    re.compile(r"eyJ[A-Za-z0-9_\-]+\.?[A-Za-z0-9_\-]*\.?[A-Za-z0-9_\-]*"),
    re.compile(r"sk-[A-Za-z0-9_\-]{6,}"),
)


def scrub(text: str) -> str:
    """Remove bearer tokens, JWTs and API keys from a log message."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub("[REDACTED]", text)
    return text


class JSONFormatter(logging.Formatter):
    """One JSON object per line, secrets scrubbed."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": scrub(record.getMessage()),
            "pid": record.process,
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, Mapping):
            entry.update(extra)
        if record.exc_info:
            entry["exc"] = scrub(self.formatException(record.exc_info))
        return orjson.dumps(entry).decode()


def configure_logging(level: str) -> None:
    """JSON logs on stderr at ``level`` for the gateway and the libraries it uses."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
