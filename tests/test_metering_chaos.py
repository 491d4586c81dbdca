"""Chaos: 1,000 requests through two `gateway serve` workers writing a real PostgreSQL ledger while
30 % of clients disconnect mid-stream, 10 % of upstream streams fail mid-way, PostgreSQL is down for
10 s in the middle and one worker gets SIGTERM (during the outage, so its queue goes to its spill
file and the restarted worker replays it). Afterwards the ledger holds exactly one row per request
that reached the upstream (the fake records every request id it received), and every stream a
client read to ``[DONE]`` is recorded as completed with the fake's own usage, token for token."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import psutil
import pytest

from gateway.demo import Behaviour, FakeOpenAI, _usage, start_fake
from gateway.metering.postgres import migrate
from tests import identity, served
from tests.postgres_server import PostgresServer
from tests.served import stop as _stop, wait_listening as _wait_listening
from tests.stack import BackgroundLoop

REQUESTS = 1000
CONCURRENCY = 20
OUTAGE_AT = 300  # requests started when PostgreSQL is stopped
OUTAGE_S = 10.0
SIGTERM_AT = 450
GOOD = Behaviour(chunk_delay_s=0.02, text=" ".join(f"w{i}" for i in range(15)))
FAILING = Behaviour(chunk_delay_s=0.02, text=GOOD.text, error_after=5)


@pytest.fixture
def fake(background: BackgroundLoop) -> Iterator[tuple[FakeOpenAI, int]]:
    fake = FakeOpenAI(GOOD)
    fake.behaviours["fake-fail"] = FAILING
    fake.requests = deque()  # every request, not just the last 256: the ground truth
    runner, port = background.run(start_fake(fake))
    yield fake, port
    background.run(runner.cleanup())


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.close()


def _serve(tmp_path: Path, upstream_port: int, dsn: str) -> subprocess.Popen[bytes]:
    return served.serve(tmp_path, f"""
[tenants."*"]
models = ["*"]

[upstreams.fake]
kind = "openai"
base_url = "http://127.0.0.1:{upstream_port}"
idle_timeout_s = 5.0

[models."test-chat"]
upstream = "fake"
target = "fake-chat"
pricing = {{ input_per_million = 2.5, output_per_million = 10, markup = 0.2 }}

[models."test-fail"]
upstream = "fake"
target = "fake-fail"

[metering]
sink = "postgres"
command_timeout_s = 1.0
retry_interval_s = 0.2
batch_interval_s = 0.05
drain_timeout_s = 1.0
spill_dir = "{tmp_path / "spill"}"
""", workers=2, drain_s=1.0, env={"GATEWAY__METERING__POSTGRES_DSN": dsn})  # fmt: skip


async def _client(
    http: aiohttp.ClientSession, url: str, i: int, done: dict[str, dict[str, Any]]
) -> None:
    model = "test-fail" if i % 10 == 0 else "test-chat"
    disconnect = i % 10 in (1, 2, 3)
    body = {"model": model, "stream": True,
            "messages": [{"role": "user", "content": f"request {i}"}]}  # fmt: skip
    try:
        async with http.post(url, json=body) as response:
            if response.status != 200:
                await response.read()
                return
            events = 0
            while line := await response.content.readline():
                if line.startswith(b"data: [DONE]"):
                    done[response.headers["x-request-id"]] = body
                    return
                events += line.startswith(b"data: ")
                if disconnect and events == 3:
                    return  # leaving the block closes the connection mid-stream
    except (TimeoutError, aiohttp.ClientError):
        return  # e.g. cut by the worker's shutdown: the ledger must still be right


async def _traffic(
    port: int, workers_of: psutil.Process, postgres: PostgresServer
) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    done: dict[str, dict[str, Any]] = {}
    started = 0
    gate = asyncio.Semaphore(CONCURRENCY)
    outage: asyncio.Task[None] | None = None

    async def outage_window() -> None:
        await asyncio.to_thread(postgres.stop)
        await asyncio.sleep(OUTAGE_S)
        await asyncio.to_thread(postgres.start)

    async def one(i: int) -> None:
        async with gate:
            await _client(http, url, i, done)

    connector = aiohttp.TCPConnector(force_close=True)  # fresh connections: both workers serve
    async with aiohttp.ClientSession(headers=identity.bearer(), connector=connector) as http:
        pending = []
        for i in range(REQUESTS):
            await gate.acquire()
            gate.release()
            started += 1
            if started == OUTAGE_AT:
                outage = asyncio.create_task(outage_window())
            if started == SIGTERM_AT:
                workers = [
                    p for p in workers_of.children() if "spawn_main" in " ".join(p.cmdline())
                ]
                workers[0].send_signal(signal.SIGTERM)
            pending.append(asyncio.create_task(one(i)))
            await asyncio.sleep(0)
        await asyncio.gather(*pending)
    assert outage is not None
    await outage
    return done


async def _rows(dsn: str, expected: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = []
    for _ in range(300):  # replay after the outage: bounded wait, up to 30 s
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch("SELECT * FROM usage_records")
        finally:
            await conn.close()
        if len(rows) >= expected:
            return rows
        await asyncio.sleep(0.1)
    return rows


@pytest.mark.timeout(120)
async def test_chaos_ledger_holds_exactly_one_row_per_upstream_request(
    tmp_path: Path, fake: tuple[FakeOpenAI, int], postgres: PostgresServer
) -> None:
    fake_server, fake_port = fake
    dsn = postgres.dsn()
    await migrate(dsn)
    proc = _serve(tmp_path, fake_port, dsn)
    try:
        port = await asyncio.to_thread(_wait_listening, proc)
        done = await _traffic(port, psutil.Process(proc.pid), postgres)
        reached = {
            {k.lower(): v for k, v in headers.items()}["x-request-id"]: body
            for headers, body in list(fake_server.requests)
        }
        rows = await _rows(dsn, len(reached))
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        _stop(proc)
    ids = [r["request_id"] for r in rows]
    assert len(reached) >= 0.95 * REQUESTS  # nearly every request reached the upstream
    assert len(ids) == len(set(ids))  # no duplicates
    assert set(ids) == set(reached)  # exactly the requests that reached the upstream
    outcomes = {r["outcome"] for r in rows}
    assert {"completed", "client_disconnected", "upstream_error"} <= outcomes
    by_id = {r["request_id"]: r for r in rows}
    assert done, "no stream finished"
    expected_in = expected_out = actual_in = actual_out = 0
    for request_id in done:
        row, upstream_body = by_id[request_id], reached[request_id]
        truth = _usage(upstream_body, GOOD)
        assert row["outcome"] == "completed", request_id
        assert not row["estimated"]
        assert (row["input_tokens"], row["output_tokens"]) == (
            truth["prompt_tokens"], truth["completion_tokens"],
        )  # fmt: skip
        expected_in += truth["prompt_tokens"]
        expected_out += truth["completion_tokens"]
        actual_in += row["input_tokens"]
        actual_out += row["output_tokens"]
    assert (actual_in, actual_out) == (expected_in, expected_out)
    log = (tmp_path / "gateway.log").read_text()
    assert "usage ledger unavailable" in log  # the outage really hit the ledger
    assert "reachable again" in log
    assert "restarting" in log  # the SIGTERMed worker was replaced
    spilled = orjson.loads(orjson.dumps(sorted(p.name for p in (tmp_path / "spill").glob("*"))))
    assert spilled == []  # every spill file was replayed and removed
