"""A real LiteLLM proxy (from .venv-litellm) started on loopback in front of a given upstream."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
LITELLM = ROOT / ".venv-litellm" / "bin" / "litellm"
_START_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class LiteLLMProxy:
    base_url: str
    master_key: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 -- loopback URL
            return bool(response.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def run_litellm_proxy(
    upstream_base_url: str, *, model_name: str, master_key: str
) -> Iterator[LiteLLMProxy]:
    """Run LiteLLM routing ``model_name`` to ``upstream_base_url`` (OpenAI wire)."""
    with tempfile.TemporaryDirectory(prefix="litellm-") as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(
            f"""model_list:
  - model_name: {model_name}
    litellm_params:
      model: openai/{model_name}
      api_base: {upstream_base_url}/v1
      api_key: fake-key
litellm_settings:
  num_retries: 0
  telemetry: false
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
"""
        )
        port = _free_port()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": tmp,
            "LITELLM_OFFLINE_MODE": "true",  # no cost-map download at start-up
            "LITELLM_TELEMETRY": "False",
            "LITELLM_MASTER_KEY": master_key,
            "LITELLM_LOG": "ERROR",
        }
        log_path = Path(tmp) / "litellm.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [str(LITELLM), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=tmp,
            )
        base_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + _START_TIMEOUT_S
            while not _ready(f"{base_url}/health/readiness"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = log_path.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"LiteLLM proxy did not start:\n{tail}")
                time.sleep(0.25)
            yield LiteLLMProxy(base_url=base_url, master_key=master_key)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
