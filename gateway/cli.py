"""Command line: ``serve``, ``demo`` and ``check-config``.

Exit statuses: 0 success, 1 runtime failure, 2 usage error, 3 invalid configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import uvloop

from gateway import __version__
from gateway.config import (
    GatewayConfig,
    config_path_from_env,
    load_config_file,
    process_environ,
)
from gateway.demo import Behaviour, FakeOpenAI, start_fake
from gateway.errors import ConfigError
from gateway.server import serve, worker_count
from gateway.telemetry import configure_logging

EXIT_CONFIG: Final = 3
EXAMPLE_CONFIG: Final = Path(__file__).resolve().parent.parent / "config" / "gateway.example.toml"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gateway`` command."""
    parser = _parser()
    args = parser.parse_args(argv)
    environ = process_environ()
    path = args.config or config_path_from_env(environ)
    if path is None and args.command == "demo":
        path = str(EXAMPLE_CONFIG)
    if path is None:
        parser.error("no configuration: pass --config FILE or set GATEWAY_CONFIG")
    try:
        config = load_config_file(path, environ)
    except ConfigError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    match args.command:
        case "check-config":
            return _check_config(path, config)
        case "serve":
            configure_logging(config.server.log_level)
            return serve(config, _announce)
        case "demo":
            configure_logging(config.server.log_level)
            return _demo(config)
    return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    parser.add_argument("--version", action="version", version=f"gateway {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("serve", "run the gateway until SIGTERM"),
        ("demo", "run the gateway in front of the built-in fake upstream"),
        ("check-config", "validate the configuration and exit (status 3 if invalid)"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--config", help="TOML file (default: $GATEWAY_CONFIG)")
    return parser


def _check_config(path: str, config: GatewayConfig) -> int:
    print(f"{path}: OK")
    print(f"  listen   {config.server.host}:{config.server.port}, {worker_count(config)} workers")
    for name, up in config.upstreams.items():
        if up.kind == "sagemaker":
            where = up.endpoint_url or f"region {up.region}"
            print(f"  upstream {name}: sagemaker at {where} (AWS default credentials)")
            continue
        key = "credential set" if up.api_key is not None else "no credential"
        print(f"  upstream {name}: {up.kind} at {up.base_url} ({key})")
    for alias, model in config.models.items():
        print(
            f"  model    {alias} -> {model.upstream}:{model.target} ({model.kind}, {model.status})"
        )
    return 0


def _announce(host: str, port: int, workers: int) -> None:
    print(f"gateway listening on http://{host}:{port} ({workers} workers)", flush=True)


def _demo(config: GatewayConfig) -> int:
    """The gateway plus a fake upstream (in its own process) on the upstream's configured URL."""
    targets = [urlsplit(up.base_url) for up in config.upstreams.values()]
    local = [t for t in targets if t.hostname in ("127.0.0.1", "localhost") and t.port]
    if not local:
        print(
            "demo: the config needs an upstream on 127.0.0.1:<port> for the fake", file=sys.stderr
        )
        return EXIT_CONFIG
    fake = multiprocessing.get_context("spawn").Process(
        target=_run_fake, args=(local[0].port,), daemon=True
    )
    fake.start()
    try:
        return serve(config, _demo_announce(config))
    finally:
        fake.terminate()
        fake.join(5)


def _run_fake(port: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us after the gateway drained

    async def run() -> None:
        await start_fake(FakeOpenAI(Behaviour(chunk_delay_s=0.03)), "127.0.0.1", port)
        await asyncio.Event().wait()

    with (
        contextlib.suppress(KeyboardInterrupt),
        asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
    ):
        runner.run(run())


def _demo_announce(config: GatewayConfig) -> Callable[[str, int, int], None]:
    chat = next((a for a, m in config.models.items() if m.kind == "chat"), "demo-chat")

    def announce(host: str, port: int, workers: int) -> None:
        base = f"http://{host}:{port}"
        print(f"""
gateway demo listening on {base} ({workers} workers), fake upstream behind it.

Try it with curl (streamed):
  curl -N {base}/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{{"model": "{chat}", "stream": true, "messages": [{{"role": "user", "content": "Hello"}}]}}'

Or with openai-python:
  python -c 'from openai import OpenAI
c = OpenAI(base_url="{base}/v1", api_key="demo")
for e in c.chat.completions.create(model="{chat}", stream=True,
        messages=[{{"role": "user", "content": "Hello"}}]):
    print(e.choices[0].delta.content or "" if e.choices else "", end="", flush=True)
print()'

Also: {base}/v1/models  {base}/metrics  {base}/readyz   (Ctrl-C stops)
""", flush=True)  # fmt: skip

    return announce
