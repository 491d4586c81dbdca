"""The proxies under test, in front of the mock: the bare aiohttp pass-through and the gateway in
three authentication set-ups, two rate-limit set-ups and one without metering.

| target               | set-up                                                              |
|----------------------|---------------------------------------------------------------------|
| gateway-noauth       | auth off (`auth.enabled = false`): the baseline for the cost of auth |
| gateway              | auth on, token cache, no limits: the baseline for the cost of limits |
| gateway-nocache      | auth on, `auth.token_cache_size = 0`: PyJWT on every request        |
| gateway-limits-mem   | `gateway` + tenant limits (RPM and tokens/day) in the memory store  |
| gateway-limits-redis | the same limits in Redis (a `redis-server` on loopback, CPU 1)      |
| gateway-nometer      | `gateway` with `metering.enabled = false`: the cost of metering     |

The limits are high enough never to refuse, so every request pays the full admission (GCRA and
token reservation in one store call) and settlement, but gets the same answer.

Every gateway but `gateway-nometer` meters each request into a file ledger of the run (the
default sink), deleted at the end with its record count kept in the results (`usage_records`).

All three verify the same RS256 token of a development issuer (signing key in memory, as a JWKS
key is after its first fetch); every driver sends it with every request, to every target.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
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
    "gateway-limits-mem": "enabled = true",
    "gateway-limits-redis": "enabled = true",
    "gateway-nometer": "enabled = true",
}
_RULE: Final = """
[tenants.bench.limits]
requests_per_minute = 1000000000
tokens_per_day = 1000000000000
"""
NOMETER: Final = "gateway-nometer"
REDIS_BIN: Final = "redis-server"
LEDGER_SUFFIX: Final = "-usage.jsonl"


def drop_ledgers(log_dir: Path) -> dict[str, int]:
    """Delete the gateways' file ledgers of a run (they grow by ~0.6 KB a request); returns the
    records each held."""
    counts: dict[str, int] = {}
    for ledger in sorted(log_dir.glob("*" + LEDGER_SUFFIX)):
        with ledger.open("rb") as f:
            counts[ledger.name.removesuffix(LEDGER_SUFFIX)] = sum(1 for _ in f)
        ledger.unlink()
    return counts


def gateway_config(port: int, mock_port: int, auth: str, key_file: Path, extra: str = "") -> str:
    """One worker, quiet logs, the dev issuer, one OpenAI-wire upstream (the mock), one model."""
    return (
        extra
        + f"""\
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
    )


def _clean_env() -> dict[str, str]:
    """The environment without ``GATEWAY*`` overrides, so only the bench config applies."""
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("GATEWAY")}


def _gateway_argv(command: str, config: Path, *args: str) -> list[str]:
    entry = [str(GATEWAY_BIN)] if GATEWAY_BIN.exists() else [sys.executable, "-m", "gateway"]
    return [*entry, command, "--config", str(config), *args]


def start_gateway(procs: Procs, config: Path, name: str = "gateway") -> Proc:
    """``gateway serve --config config`` on the proxy CPU, without ``GATEWAY*`` overrides."""
    return procs.start(name, _gateway_argv("serve", config), cpu=PROXY_CPU, env=_clean_env())


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
        extra = ""
        if name == "gateway-limits-mem":
            extra = '[limits]\nstore = "memory"\n' + _RULE
        elif name == "gateway-limits-redis":
            url = start_redis(procs)
            extra = f'[limits]\nstore = "redis"\nredis_url = "{url}"\n' + _RULE
        # Metering is on, as by default, into a file ledger of the run (deleted by `drop_ledgers`).
        extra += (f'[metering]\nenabled = {"false" if name == NOMETER else "true"}\n'
                  f'path = "{procs.log_dir / (name + LEDGER_SUFFIX)}"\n'
                  f'spill_dir = "{procs.log_dir / (name + "-spill")}"\n')  # fmt: skip
        config.write_text(gateway_config(free_port(), mock_port, GATEWAYS[name], key_file, extra))
        return start_gateway(procs, config, name)
    raise ValueError(f"unknown proxy {name!r}")


def start_redis(procs: Procs) -> str:
    """A throwaway redis-server on loopback (load CPU, no persistence); returns its URL."""
    port = free_port()
    argv = [REDIS_BIN, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(procs.log_dir)]  # fmt: skip
    proc = procs.popen(procs.pinned(argv, LOAD_CPU), log_name="redis.log")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.02)
    procs.stop(proc)
    raise RuntimeError("redis-server did not start for the bench")
