"""The proxies under test, in front of the mock: the bare aiohttp pass-through and the gateway in
three authentication set-ups.

| target          | authentication                                                         |
|-----------------|------------------------------------------------------------------------|
| gateway-noauth  | off (`auth.enabled = false`): the baseline for the cost of auth         |
| gateway         | on, the defaults: JWT verified once, then served from the token cache   |
| gateway-nocache | on, `auth.token_cache_size = 0`: PyJWT verification on every request    |

All three verify the same RS256 token of a development issuer (signing key in memory, as a JWKS
key is after its first fetch); every driver sends it with every request, to every target.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Final

from bench.procs import Proc, Procs, free_port

PROXY_CPU: Final = 0
LOAD_CPU: Final = 1
GATEWAY_BIN: Final = Path(sys.executable).parent / "gateway"
MODEL: Final = "bench-chat"
GATEWAYS: Final = {
    "gateway-noauth": "enabled = false",
    "gateway": "enabled = true",
    "gateway-nocache": "enabled = true\ntoken_cache_size = 0",
}


def gateway_config(port: int, mock_port: int, auth: str, key_file: Path) -> str:
    """One worker, quiet logs, the dev issuer, one OpenAI-wire upstream (the mock), one model."""
    return f"""\
[server]
host = "127.0.0.1"
port = {port}
workers = 1
log_level = "warning"

[auth]
{auth}
anonymous_tenant = "bench"

[auth.dev_issuer]
enabled = true
key_file = "{key_file}"

[tenants.bench]
models = ["*"]

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


def _gateway_argv(command: str, config: Path, *args: str) -> list[str]:
    entry = [str(GATEWAY_BIN)] if GATEWAY_BIN.exists() else [sys.executable, "-m", "gateway"]
    return [*entry, command, "--config", str(config), *args]


def mint_token(log_dir: Path) -> str:
    """A token of the bench's dev issuer (tenant ``bench``, valid 6 h), via ``gateway token``."""
    config = log_dir / "token.toml"
    config.write_text(gateway_config(0, 1, GATEWAYS["gateway"], log_dir / "dev-issuer.pem"))
    argv = _gateway_argv("token", config, "--tenant", "bench", "--lifetime", str(6 * 3600))
    out = subprocess.run(argv, capture_output=True, check=True, timeout=60, env=_clean_env())
    return out.stdout.decode().strip()


def start_proxy(name: str, procs: Procs, mock_port: int) -> Proc:
    """Start ``passthrough`` or a gateway set-up on the proxy CPU in front of the mock."""
    upstream = f"http://127.0.0.1:{mock_port}"
    if name == "passthrough":
        argv = [sys.executable, "-m", "bench.passthrough", "--port", "0", "--upstream", upstream]
        return procs.start(name, argv, cpu=PROXY_CPU)
    if name in GATEWAYS:
        config = procs.log_dir / f"{name}.toml"
        key_file = procs.log_dir / "dev-issuer.pem"
        config.write_text(gateway_config(free_port(), mock_port, GATEWAYS[name], key_file))
        argv = _gateway_argv("serve", config)
        return procs.start(name, argv, cpu=PROXY_CPU, env=_clean_env())
    raise ValueError(f"unknown proxy {name!r}")
