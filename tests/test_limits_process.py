"""Limits across processes: four `gateway serve` workers sharing one Redis-backed GCRA limit."""

from __future__ import annotations

import http.client
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from gateway.demo import FakeOpenAI, start_fake
from tests import identity, served
from tests.served import stop as _stop, wait_listening as _wait_listening
from tests.stack import BackgroundLoop

RPM = 1200  # one cell every 50 ms
BURST = 5
INTERVAL_S = 60 / RPM
PHASE_S = 1.5


@pytest.fixture
def fake_port(background: BackgroundLoop) -> Iterator[int]:
    runner, port = background.run(start_fake(FakeOpenAI()))
    yield port
    background.run(runner.cleanup())


def _serve(tmp_path: Path, upstream_port: int, limits: str) -> subprocess.Popen[bytes]:
    return served.serve(tmp_path, f"""
[tenants."*"]
models = ["*"]
limits = {{ requests_per_minute = {RPM}, burst = {BURST} }}

[limits]
{limits}

[upstreams.fake]
kind = "openai"
base_url = "http://127.0.0.1:{upstream_port}"

[models."test-chat"]
upstream = "fake"
target = "fake-chat"
""", workers=4, drain_s=1.0)  # fmt: skip


def _hammer(port: int, until: float, out: list[tuple[float, float, int, str]]) -> None:
    """Requests on fresh connections (so the kernel spreads them over the workers)."""
    body = orjson.dumps({"model": "test-chat", "messages": [{"role": "user", "content": "hi"}]})
    headers = {"Content-Type": "application/json", **identity.bearer()}
    while time.monotonic() < until:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        sent = time.monotonic()
        conn.request("POST", "/v1/chat/completions", body, headers)
        response = conn.getresponse()
        response.read()
        out.append((sent, time.monotonic(), response.status,
                    response.getheader("x-ratelimit-limit-requests") or ""))  # fmt: skip
        conn.close()


def test_four_workers_never_admit_more_than_the_limit(
    tmp_path: Path, fake_port: int, redis_url: str
) -> None:
    limits = f'store = "redis"\nredis_url = "{redis_url}"\nreplicas = 4\n'
    proc = _serve(tmp_path, fake_port, limits + f'key_prefix = "p{uuid.uuid4().hex}:"')
    try:
        port = _wait_listening(proc)
        for phase in range(3):
            results: list[tuple[float, float, int, str]] = []
            until = time.monotonic() + PHASE_S
            threads = [
                threading.Thread(target=_hammer, args=(port, until, results)) for _ in range(6)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            admitted = [r for r in results if r[2] == 200]
            assert {r[2] for r in results} == {200, 429}, phase
            assert all(r[3] == str(RPM) for r in results)  # 429s carry the headers too
            # Every decision happened between the first send and the last answer of the phase.
            span = max(r[1] for r in results) - min(r[0] for r in results)
            assert len(admitted) <= BURST + int(span / INTERVAL_S), (phase, len(admitted), span)
            # ... and the limiter is not merely refusing: close to one per interval.
            assert len(admitted) >= 0.6 * PHASE_S / INTERVAL_S, (phase, len(admitted))
            assert len(results) > 2 * len(admitted)  # the load really exceeded the limit
            time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        _stop(proc)


def test_memory_store_with_four_workers_does_not_start(tmp_path: Path, fake_port: int) -> None:
    proc = _serve(tmp_path, fake_port, 'store = "memory"')
    try:
        assert proc.wait(30) == 3
    finally:
        _stop(proc)
    log = (tmp_path / "gateway.log").read_text()
    assert "limits.store: 'memory'" in log
    assert "4 workers" in log
