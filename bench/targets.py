"""The proxies under test: the bare aiohttp pass-through and the gateway, in front of the mock."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Final

from bench.procs import Proc, Procs, free_port

PROXY_CPU: Final = 0
LOAD_CPU: Final = 1
GATEWAY_BIN: Final = Path(sys.executable).parent / "gateway"
MODEL: Final = "bench-chat"


def gateway_config(port: int, mock_port: int) -> str:
    """One worker, quiet logs, one OpenAI-wire upstream (the mock) and one chat model."""
    return f"""\
[server]
host = "127.0.0.1"
port = {port}
workers = 1
log_level = "warning"

[upstreams.mock]
kind = "openai"
base_url = "http://127.0.0.1:{mock_port}"

[models."{MODEL}"]
upstream = "mock"
target = "mock-model"
"""


def _clean_env() -> dict[str, str]:
    """The environment without ``GATEWAY*`` overrides, so only the bench config applies."""
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("GATEWAY")}


def start_proxy(name: str, procs: Procs, mock_port: int) -> Proc:
    """Start ``passthrough`` or ``gateway`` on the proxy CPU in front of the mock."""
    upstream = f"http://127.0.0.1:{mock_port}"
    if name == "passthrough":
        argv = [sys.executable, "-m", "bench.passthrough", "--port", "0", "--upstream", upstream]
        return procs.start(name, argv, cpu=PROXY_CPU)
    if name == "gateway":
        config = procs.log_dir / "gateway.toml"
        config.write_text(gateway_config(free_port(), mock_port))
        entry = [str(GATEWAY_BIN)] if GATEWAY_BIN.exists() else [sys.executable, "-m", "gateway"]
        argv = [*entry, "serve", "--config", str(config)]
        return procs.start(name, argv, cpu=PROXY_CPU, env=_clean_env())
    raise ValueError(f"unknown proxy {name!r}")
