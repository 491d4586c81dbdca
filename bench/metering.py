"""Metering scenario: what metering adds to a request, and how fast the ledger writes PostgreSQL.

    python -m bench.metering [--requests 20000] [--rounds 6] [--records 100000]

1. **Request path** (in process, one event loop): the pipeline serves requests from an in-memory
   upstream (no network, so nothing hides the cost) with metering on (a ledger) and off (none), in
   interleaved rounds of ``--requests`` each: non-streamed completions and 10-chunk streams (the
   stream also pays for asking the upstream for usage and hiding the usage chunk). Metering on the
   request path is settlement only -- classify, build the record, append to the queue; the
   ledger's writer is not running during these rounds, so the figure is the request path's share
   and nothing else. *added* = on - off, per request (mean and p50).
2. **Ledger write rate**: a throwaway PostgreSQL (``tests/postgres_server.py``, fsync on, as in
   production) on loopback, migrated; ``--records`` records are queued into a ``Ledger`` with the
   PostgreSQL sink at the default batch size and the time until the sink took them all is measured
   (records/s), plus the same for the file sink.

Results go to ``bench/results/<stamp>-<commit>-metering.{json,md}``. Loops are bounded; the
PostgreSQL server is stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, cast

import uvloop

from bench import report
from gateway.auth.policy import AccessPolicy
from gateway.config import (
    AuthConfig,
    GatewayConfig,
    MeteringConfig,
    ModelConfig,
    PricingConfig,
    TenantConfig,
    UpstreamConfig,
)
from gateway.context import ChatRequest, Principal, RequestContext, new_request_id
from gateway.metering.file_sink import FileSink
from gateway.metering.ledger import Ledger
from gateway.metering.postgres import PostgresSink, migrate
from gateway.metering.spill import Spill
from gateway.pipeline import Pipeline
from gateway.telemetry import Metrics
from gateway.upstreams.base import UpstreamRequest
from gateway.upstreams.registry import UpstreamRegistry
from gateway.wire import Chunk, Payload, dumps
from tests.metering.factory import record
from tests.postgres_server import PostgresServer

RESULTS: Final = Path(__file__).resolve().parent / "results"
GOAL_ADDED_MS: Final = 0.1
GOAL_RECORDS_S: Final = 5000
_USAGE = {"prompt_tokens": 12, "completion_tokens": 10, "total_tokens": 22}
_PRINCIPAL = Principal(subject="bench-user", tenant_id="bench", app_id="chat", via="bench")


class MemoryUpstream:
    """An upstream answering from memory: a completion, or 10 content chunks + the usage chunk."""

    name = "memory"

    def __init__(self) -> None:
        base = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m"}
        self._chunks = [
            Chunk(dumps({**base, "choices": [{"index": 0, "delta": {"content": f" w{i}"}}]}))
            for i in range(10)
        ]
        self._usage = dumps({**base, "choices": [], "usage": _USAGE})
        self._completion = dumps({"id": "c", "object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"},
             "finish_reason": "stop"}], "usage": _USAGE})  # fmt: skip

    async def complete(self, request: UpstreamRequest) -> Payload:
        return Payload(self._completion)

    @contextlib.asynccontextmanager
    async def stream(self, request: UpstreamRequest) -> AsyncIterator[AsyncIterator[list[Chunk]]]:
        yield self._iterate(request)

    async def _iterate(self, request: UpstreamRequest) -> AsyncIterator[list[Chunk]]:
        for chunk in self._chunks:
            yield [chunk]
        options = request.body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            yield [Chunk(self._usage)]

    async def embed(self, request: UpstreamRequest) -> Payload:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


class _Registry:
    def __init__(self, model: ModelConfig) -> None:
        self.model = model
        self.upstream = MemoryUpstream()

    def resolve(self, alias: str, kind: str) -> tuple[ModelConfig, MemoryUpstream]:
        return self.model, self.upstream


def _config() -> GatewayConfig:
    pricing = PricingConfig(input_per_million=2, output_per_million=8, markup=0)  # type: ignore[arg-type]
    return GatewayConfig(
        auth=AuthConfig(enabled=False, anonymous_tenant="bench"),
        tenants={"bench": TenantConfig(models=("*",))},
        upstreams={"memory": UpstreamConfig(base_url="http://127.0.0.1:1")},
        models={"m": ModelConfig(upstream="memory", target="m", pricing=pricing)},
        metering=MeteringConfig(enabled=False),
    )


def _pipeline(config: GatewayConfig, ledger: Ledger | None) -> Pipeline:
    model = config.models["m"]
    registry = cast("UpstreamRegistry", _Registry(model))
    return Pipeline(registry, AccessPolicy(config), Metrics(), None, ledger=ledger)


async def _round(pipeline: Pipeline, *, stream: bool, count: int) -> list[int]:
    loop = asyncio.get_running_loop()
    body = {"model": "m", "messages": [{"role": "user", "content": "Hello, benchmark!"}]}
    request = ChatRequest(model="m", stream=stream, body={**body, "stream": stream})
    durations = []
    clock = time.perf_counter_ns
    for _ in range(count):
        ctx = RequestContext(request_id=new_request_id(), started_at=loop.time(),
                             principal=_PRINCIPAL)  # fmt: skip
        start = clock()
        if stream:
            async with pipeline.stream(ctx, request) as chunks:
                async for _batch in chunks:
                    pass
        else:
            await pipeline.complete(ctx, request)
        durations.append(clock() - start)
    return durations


async def request_path(requests: int, rounds: int) -> dict[str, Any]:
    """Per-request time with metering on and off, interleaved."""
    config = _config()
    folder = Path(tempfile.mkdtemp(prefix="bench-metering-"))
    ledger = Ledger(FileSink(folder / "usage.jsonl"), Spill(folder / "spill", 1 << 30),
                    queue_size=10**9, batch_size=500, batch_interval_s=0.2,
                    retry_interval_s=1.0)  # fmt: skip
    pipelines = {"off": _pipeline(config, None), "on": _pipeline(config, ledger)}
    samples: dict[str, list[int]] = {}
    gc.collect()
    gc.freeze()
    for kind in ("complete", "stream"):
        for pipeline in pipelines.values():  # warm-up
            await _round(pipeline, stream=kind == "stream", count=requests // 10)
        for _ in range(rounds):
            for name, pipeline in pipelines.items():
                key = f"{kind}-{name}"
                durations = await _round(pipeline, stream=kind == "stream", count=requests)
                samples.setdefault(key, []).extend(durations)
                ledger._queue.clear()  # keep memory flat; writes are measured below
    out: dict[str, Any] = {}
    for key, values in samples.items():
        out[key] = {"mean_us": statistics.fmean(values) / 1000,
                    "p50_us": statistics.median(values) / 1000,
                    "p99_us": statistics.quantiles(values, n=100)[98] / 1000,
                    "n": len(values)}  # fmt: skip
    for kind in ("complete", "stream"):
        on, off = out[f"{kind}-on"], out[f"{kind}-off"]
        out[f"{kind}-added"] = {
            "mean_us": on["mean_us"] - off["mean_us"], "p50_us": on["p50_us"] - off["p50_us"],
            "ratio_mean": on["mean_us"] / off["mean_us"],
        }  # fmt: skip
    return out


async def _drain_rate(ledger: Ledger, records: int) -> float:
    await ledger.start()
    batch = [record() for _ in range(records)]
    start = time.perf_counter()
    for i, r in enumerate(batch):
        ledger.record(r)
        if i % 1000 == 999:
            await asyncio.sleep(0)
    for _ in range(600_000):
        if ledger.written >= records:
            break
        await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - start
    if ledger.written < records:
        raise RuntimeError(f"only {ledger.written} of {records} records written")
    await ledger.drain(5.0)
    return records / elapsed


async def write_rates(records: int, dsn: str, folder: Path) -> dict[str, float]:
    """Records/s into PostgreSQL and into the file ledger, through the ``Ledger``."""
    await migrate(dsn)
    settings = {"queue_size": 10**9, "batch_size": 500, "batch_interval_s": 0.2,
                "retry_interval_s": 1.0}  # fmt: skip
    pg = Ledger(PostgresSink(dsn, pool_size=4, command_timeout_s=30.0),
                Spill(folder / "spill-pg", 1 << 30), **settings)  # type: ignore[arg-type]  # fmt: skip
    file = Ledger(FileSink(folder / "usage.jsonl"), Spill(folder / "spill-file", 1 << 30),
                  **settings)  # type: ignore[arg-type]  # fmt: skip
    return {
        "postgres_records_s": await _drain_rate(pg, records),
        "file_records_s": await _drain_rate(file, records),
    }


def _markdown(doc: dict[str, Any]) -> str:
    path, rates = doc["request_path"], doc["write_rates"]
    lines = [
        f"# Metering bench {doc['date']}, commit `{doc['git']['short']}`",
        "",
        f"Command: `{' '.join(doc['command'])}`; machine: {doc['machine']}",
        "",
        "| request | metering off mean µs | on mean µs | added mean µs | added p50 µs | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for kind in ("complete", "stream"):
        off, on, added = path[f"{kind}-off"], path[f"{kind}-on"], path[f"{kind}-added"]
        lines.append(
            f"| {kind} | {off['mean_us']:.1f} | {on['mean_us']:.1f} | {added['mean_us']:.1f} | "
            f"{added['p50_us']:.1f} | {added['ratio_mean']:.3f} |"
        )
    worst = max(path["complete-added"]["mean_us"], path["stream-added"]["mean_us"]) / 1000
    ok = "✅" if worst <= GOAL_ADDED_MS else "❌"
    pg = rates["postgres_records_s"]
    ok_pg = "✅" if pg >= GOAL_RECORDS_S else "❌"
    lines += [
        "",
        f"Ledger write rate: PostgreSQL {pg:,.0f} records/s (fsync on, batches of 500), "
        f"file {rates['file_records_s']:,.0f} records/s.",
        "",
        f"Goals: added per request {worst:.4f} ms <= {GOAL_ADDED_MS} ms {ok}; "
        f"PostgreSQL {pg:,.0f} records/s >= {GOAL_RECORDS_S:,} {ok_pg}.",
    ]
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.metering", description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--records", type=int, default=100_000, help="records for the write rate")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = uvloop.run(request_path(args.requests, args.rounds))
    server = PostgresServer(fsync=True).start()
    try:
        folder = Path(tempfile.mkdtemp(prefix="bench-ledger-"))
        rates = uvloop.run(write_rates(args.records, server.dsn(), folder))
    finally:
        server.close()
    git = report.git_info()
    doc = {
        "schema": "bench-metering-v0",
        "date": datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).isoformat(),
        "command": ["python", "-m", "bench.metering", *(sys.argv[1:] if argv is None else argv)],
        "machine": report.machine(),
        "git": git,
        "settings": vars(args),
        "request_path": path,
        "write_rates": rates,
    }
    report.write_scenario(doc, _markdown(doc), stamp, "metering")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
