"""SageMaker scenario: what the gateway adds to a SageMaker stream, and what decoding a chunk costs.

    python -m bench.sagemaker [--tokens 200] [--gap-ms 1] [--streams 40] [--rounds 4]

The fake SageMaker runtime (``tests/fakes/sagemaker.py``, real event-stream frames, one
``PayloadPart`` per token of a TGI container, ``--gap-ms`` apart) runs in its own process on the
load CPU; the gateway (1 worker, ``kind = "sagemaker"``) on the proxy CPU. Two targets, measured in
alternating rounds at concurrency 1:

- ``direct``: this process calls the fake with aioboto3 ``invoke_endpoint_with_response_stream``;
  TTFT = call -> first ``PayloadPart``, gaps between parts.
- ``gateway``: the bench's raw HTTP client streams ``/v1/chat/completions`` through the gateway;
  TTFT = request written -> first ``data:`` event, gaps between events.

*added* = gateway - direct, per percentile. Then a micro-benchmark of the sans-io decoder
(``StreamDecoder.feed`` per payload part, chunk serialisation included) for each dialect: the
per-chunk cost the gateway adds on top of botocore's own frame parsing. Results go to
``bench/results/<stamp>-<commit>-sagemaker.{json,md}``. Every loop is bounded; every process is
stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import aioboto3
import orjson
import uvloop
from aiobotocore.config import AioConfig

from bench import report
from bench.client import Client, http_request
from bench.phases import NS_PER_MS, StreamSamples
from bench.procs import Procs, free_port, pinning_available
from bench.targets import LOAD_CPU, start_gateway
from gateway.config import SageMakerDialect
from gateway.upstreams.sagemaker_dialects import StreamDecoder, StreamSettings
from tests.fakes.sagemaker import FakeEndpoint, FakeSageMaker, start_fake_sagemaker, stream_output

ENDPOINT: Final = "bench-tgi"
MODEL: Final = "bench-sm"
RESULTS: Final = Path(__file__).resolve().parent / "results"
AWS_ENV: Final = {
    "AWS_ACCESS_KEY_ID": "AKIDBENCHBENCH",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}
_BODY: Final = {"messages": [{"role": "user", "content": "Hello, benchmark!"}], "max_tokens": 200}


def _text(tokens: int) -> str:
    return "".join(f" w{i % 10}" for i in range(tokens))


def _fake(tokens: int, gap_ms: float) -> FakeSageMaker:
    fake = FakeSageMaker()
    fake.endpoints[ENDPOINT] = FakeEndpoint(dialect="tgi", text=_text(tokens), gap_s=gap_ms / 1000)
    return fake


async def _serve_fake(tokens: int, gap_ms: float) -> None:
    runner, port = await start_fake_sagemaker(_fake(tokens, gap_ms))
    print(f"fake sagemaker listening on {port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def _gateway_config(port: int, fake_port: int, log_dir: Path) -> str:
    """One worker, auth off, the fake endpoint, metering into the run's own file ledger."""
    return f"""\
[server]
host = "127.0.0.1"
port = {port}
workers = 1
log_level = "warning"

[auth]
enabled = false

[tenants.anonymous]
models = ["*"]

[metering]
path = "{log_dir / "usage.jsonl"}"
spill_dir = "{log_dir / "spill"}"

[upstreams.sm]
kind = "sagemaker"
region = "us-east-1"
endpoint_url = "http://127.0.0.1:{fake_port}"
max_retries = 0

[models."{MODEL}"]
upstream = "sm"
target = "tgi"

[models."{MODEL}".sagemaker]
endpoint_name = "{ENDPOINT}"
dialect = "tgi"
chat_template = "llama3"
"""


async def _direct(client: Any, samples: StreamSamples, count: int, parts: int) -> None:
    body = orjson.dumps({"inputs": "Hello, benchmark!", "parameters": {}, "stream": True})
    for _ in range(count):
        sent = time.perf_counter_ns()
        response = await client.invoke_endpoint_with_response_stream(
            EndpointName=ENDPOINT, Body=body, ContentType="application/json"
        )
        times = [time.perf_counter_ns() async for _ in response["Body"]]
        samples.streams += 1
        if len(times) != parts:
            samples.errors += 1
            continue
        samples.ttft_ms.append((times[0] - sent) / NS_PER_MS)
        samples.gaps_ms.extend((b - a) / NS_PER_MS for a, b in itertools.pairwise(times))
        samples.total_ms.append((times[-1] - sent) / NS_PER_MS)


async def _through_gateway(port: int, samples: StreamSamples, count: int, events: int) -> None:
    raw = http_request(port, orjson.dumps({**_BODY, "model": MODEL, "stream": True}))
    client = Client(port)
    try:
        for _ in range(count):
            samples.add(await client.request(raw, sse=True), events)
    finally:
        client.close()


async def _measure(args: argparse.Namespace, fake_port: int, gw_port: int) -> dict[str, Any]:
    parts = args.tokens + 1  # one PayloadPart per token, plus the final ``details`` event
    direct, gateway = StreamSamples(), StreamSamples()
    config = AioConfig(max_pool_connections=4, retries={"max_attempts": 0, "mode": "standard"})
    session = await asyncio.to_thread(aioboto3.Session)
    async with session.client(
        "sagemaker-runtime",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{fake_port}",
        config=config,
    ) as client:
        await _direct(client, StreamSamples(), 3, parts)  # warm-up
        await _through_gateway(gw_port, StreamSamples(), 3, parts)
        per_round = max(1, args.streams // args.rounds)
        for _ in range(args.rounds):
            await _direct(client, direct, per_round, parts)
            await _through_gateway(gw_port, gateway, per_round, parts)
    return {"direct": direct.summary(), "gateway": gateway.summary()}


def decode_cost(dialect: SageMakerDialect, tokens: int, repeat: int) -> dict[str, float]:
    """ns per payload part for ``StreamDecoder`` over a ``tokens``-token stream, one part per
    container event (min and median over ``repeat`` runs)."""
    body = {**_BODY, "stream_options": {"include_usage": True}}
    output = stream_output(FakeEndpoint(dialect=dialect, text=_text(tokens)), body)
    sep = b"\n" if dialect == "lmi" else b"\n\n"
    parts = [p + sep for p in output.split(sep) if p]
    settings = StreamSettings(
        chunk_id="chatcmpl-bench", created=0, model="m", include_usage=True, prompt_chars=20
    )
    runs: list[float] = []
    for _ in range(repeat):
        decoder = StreamDecoder(dialect, settings)
        start = time.perf_counter_ns()
        for part in parts:
            for chunk in decoder.feed(part):
                chunk.raw  # noqa: B018 -- the bytes the route writes
        decoder.finish()
        runs.append((time.perf_counter_ns() - start) / len(parts))
    runs.sort()
    return {"parts": len(parts), "min_ns": runs[0], "median_ns": runs[len(runs) // 2]}


def _added(res: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for metric in ("ttft_ms", "gap_ms"):
        for pct in ("p50", "p90", "p99"):
            d, g = res["direct"][metric].get(pct), res["gateway"][metric].get(pct)
            if d is not None and g is not None:
                out[f"{metric}_{pct}"] = g - d
    return out


def _markdown(doc: dict[str, Any]) -> str:
    lines = [
        f"# SageMaker scenario ({doc['date']}, commit {doc['git']['short']})",
        "",
        f"Command: `{' '.join(doc['command'])}`  ",
        f"Machine: {doc['machine']['cpu_model']}, {doc['machine']['nproc']} CPUs, "
        f"Python {doc['machine']['python']}; pinned: {doc['settings']['pinned']}",
        "",
        "| target | streams | errors | TTFT p50 / p99 ms | gap p50 / p99 ms |",
        "|---|---|---|---|---|",
    ]
    for name in ("direct", "gateway"):
        r = doc["targets"][name]
        t, g = r["ttft_ms"], r["gap_ms"]
        lines.append(
            f"| {name} | {r['streams']} | {r['errors']} | {t['p50']:.3f} / {t['p99']:.3f} "
            f"| {g['p50']:.3f} / {g['p99']:.3f} |"
        )
    a = doc["added"]
    lines += [
        f"| *added* | | | {a['ttft_ms_p50']:+.3f} / {a['ttft_ms_p99']:+.3f} "
        f"| {a['gap_ms_p50']:+.3f} / {a['gap_ms_p99']:+.3f} |",
        "",
        "Decoder cost per payload part (`StreamDecoder.feed` + chunk bytes; goal <= 30 us):",
        "",
        "| dialect | parts | min us | median us |",
        "|---|---|---|---|",
    ]
    for dialect, cost in doc["decode"].items():
        lines.append(
            f"| {dialect} | {cost['parts']} | {cost['min_ns'] / 1000:.2f} "
            f"| {cost['median_ns'] / 1000:.2f} |"
        )
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.sagemaker", description=__doc__.split("\n")[0]
    )
    p.add_argument("--tokens", type=int, default=200)
    p.add_argument("--gap-ms", type=float, default=1.0)
    p.add_argument("--streams", type=int, default=40, help="measured streams per target")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--decode-repeat", type=int, default=200)
    p.add_argument("--no-pin", action="store_true")
    p.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.serve_fake:
        uvloop.run(_serve_fake(args.tokens, args.gap_ms))
        return 0
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    log_dir = RESULTS / "tmp" / stamp
    log_dir.mkdir(parents=True, exist_ok=True)
    pin = pinning_available() and not args.no_pin
    procs = Procs(log_dir, pin=pin)
    os.environ.update(AWS_ENV)  # for this process's direct client and the gateway's
    try:
        fake_argv = [sys.executable, "-m", "bench.sagemaker", "--serve-fake",
                     "--tokens", str(args.tokens), "--gap-ms", str(args.gap_ms)]  # fmt: skip
        fake = procs.start("fake-sagemaker", fake_argv, cpu=LOAD_CPU)
        config = log_dir / "gateway-sagemaker.toml"
        config.write_text(_gateway_config(free_port(), fake.port, log_dir))
        gateway = start_gateway(procs, config)
        if pin:
            os.sched_setaffinity(0, {LOAD_CPU})
        targets = uvloop.run(_measure(args, fake.port, gateway.port))
    finally:
        procs.stop_all()
    decode = {
        d: decode_cost(d, args.tokens, args.decode_repeat)
        for d in ("tgi", "messages", "lmi", "vllm")
    }
    git = report.git_info()
    doc = {
        "schema": "bench-sagemaker-v0",
        "date": datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).isoformat(),
        "command": ["python", "-m", "bench.sagemaker", *(sys.argv[1:] if argv is None else argv)],
        "machine": report.machine(),
        "git": git,
        "settings": {**{k: v for k, v in vars(args).items() if k != "serve_fake"}, "pinned": pin},
        "targets": targets,
        "added": _added(targets),
        "decode": decode,
    }
    report.write_scenario(doc, _markdown(doc), stamp, "sagemaker")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
