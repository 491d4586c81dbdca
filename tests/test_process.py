"""The process model, end to end: `gateway serve` with several workers, SIGTERM drain."""

from __future__ import annotations

import http.client
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import psutil
import pytest

from gateway.demo import Behaviour, FakeOpenAI, start_fake
from tests import identity, served
from tests.served import stop as _stop, wait_listening as _wait_listening
from tests.stack import BackgroundLoop


@pytest.fixture
def fake(background: BackgroundLoop) -> Iterator[tuple[FakeOpenAI, int]]:
    upstream = FakeOpenAI()
    runner, port = background.run(start_fake(upstream))
    yield upstream, port
    background.run(runner.cleanup())


def _serve(
    tmp_path: Path, upstream_port: int, *, workers: int, drain_s: float
) -> subprocess.Popen[bytes]:
    return served.serve(tmp_path, f"""
[tenants."*"]
models = ["*"]

[upstreams.fake]
kind = "openai"
base_url = "http://127.0.0.1:{upstream_port}"

[models."test-chat"]
upstream = "fake"
target = "fake-chat"

[models."slow-chat"]
upstream = "fake"
target = "slow"
""", workers=workers, drain_s=drain_s)  # fmt: skip


def _chat(port: int, model: str, *, stream: bool) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    conn.request(
        "POST",
        "/v1/chat/completions",
        orjson.dumps(body),
        {"Content-Type": "application/json", **identity.bearer()},
    )
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def test_workers_share_the_port_and_metrics_merge(
    tmp_path: Path, fake: tuple[FakeOpenAI, int]
) -> None:
    proc = _serve(tmp_path, fake[1], workers=2, drain_s=2.0)
    try:
        port = _wait_listening(proc)
        workers = [
            p for p in psutil.Process(proc.pid).children() if "spawn_main" in " ".join(p.cmdline())
        ]
        assert len(workers) == 2
        for _ in range(20):
            assert _chat(port, "test-chat", stream=False)[0] == 200
        time.sleep(1.5)  # snapshots are shared once a second
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
        assert 'gateway_requests_total{route="/v1/chat/completions",status="200"} 20' in text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        _stop(proc)


def test_workers_exit_when_the_supervisor_is_killed(
    tmp_path: Path, fake: tuple[FakeOpenAI, int]
) -> None:
    proc = _serve(tmp_path, fake[1], workers=2, drain_s=1.0)
    try:
        _wait_listening(proc)
        children = psutil.Process(proc.pid).children()
        proc.kill()
        proc.wait(10)
        _, alive = psutil.wait_procs(children, timeout=10)
        assert alive == []
    finally:
        _stop(proc)


def test_sigterm_drains_short_streams_and_ends_long_ones(
    tmp_path: Path, fake: tuple[FakeOpenAI, int]
) -> None:
    upstream, upstream_port = fake
    upstream.behaviours["fake-chat"] = Behaviour(text="one two three four five", chunk_delay_s=0.2)
    upstream.behaviours["slow"] = Behaviour(stall_after=2)
    proc = _serve(tmp_path, upstream_port, workers=2, drain_s=2.0)
    try:
        port = _wait_listening(proc)
        results: dict[str, tuple[int, bytes]] = {}

        def run(name: str, model: str) -> None:
            results[name] = _chat(port, model, stream=True)

        threads = [
            threading.Thread(target=run, args=("short", "test-chat")),
            threading.Thread(target=run, args=("long", "slow-chat")),
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 5
        while upstream.open_streams < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert upstream.open_streams == 2
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(15)
        assert proc.wait(15) == 0
        elapsed = time.monotonic() - started
    finally:
        _stop(proc)
    status, short = results["short"]
    assert status == 200
    assert short.endswith(b"data: [DONE]\n\n")
    status, long = results["long"]
    assert status == 200
    last = long.rstrip(b"\n").split(b"\n\n")[-1]
    assert orjson.loads(last[len(b"data: ") :])["error"]["type"] == "server_shutdown"
    assert b"[DONE]" not in long
    assert 2.0 <= elapsed < 9.0  # the drain budget, then a prompt exit
    assert upstream.open_streams == 0
