"""Command line: ``serve``, ``demo``, ``check-config``, ``token`` (dev issuer), ``key`` (API keys),
``migrate`` (the usage ledger's schema), ``usage`` (usage report).

Exit statuses: 0 success, 1 runtime failure, 2 usage error, 3 invalid configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import uvloop

from gateway import __version__
from gateway.auth.apikeys import new_key
from gateway.auth.dev import DevIdentity, load_or_create_key, mint, public_jwks
from gateway.config import (
    GatewayConfig,
    config_path_from_env,
    load_config_file,
    process_environ,
)
from gateway.demo import JWKS_PATH, Behaviour, FakeOpenAI, start_fake
from gateway.errors import ConfigError
from gateway.metering.ledger import open_sink
from gateway.metering.postgres import PostgresError, migrate
from gateway.metering.report import usage_report
from gateway.metering.sink import UsageQuery
from gateway.server import serve, worker_count
from gateway.telemetry import configure_logging
from gateway.wire import dumps

EXIT_USAGE: Final = 2
EXIT_CONFIG: Final = 3
DEMO_TOKEN_LIFETIME_S: Final = 12 * 3600
EXAMPLE_CONFIG: Final = Path(__file__).resolve().parent.parent / "config" / "gateway.example.toml"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gateway`` command."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "key":
        return _key(args)
    if args.command == "phi-key":
        print(base64.b64encode(os.urandom(32)).decode())
        return 0
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
    return _run(args, path, config)


def _run(args: argparse.Namespace, path: str, config: GatewayConfig) -> int:
    match args.command:
        case "check-config":
            return _check_config(path, config)
        case "serve":
            configure_logging(config.server.log_level)
            return serve(config, _announce)
        case "demo":
            configure_logging(config.server.log_level)
            return _demo(config)
        case "token":
            return _token(config, args)
        case "migrate":
            return _migrate(config)
        case "usage":
            return _usage(config, args)
    return EXIT_USAGE


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
    token = sub.add_parser("token", help="print a token of the development issuer")
    token.add_argument("--config", help="TOML file (default: $GATEWAY_CONFIG)")
    token.add_argument("--tenant", required=True, help="custom:tenantId")
    token.add_argument("--app", help="custom:appId")
    token.add_argument("--app-user", help="custom:appUserId")
    token.add_argument("--sub", default="dev-user", help="the user (default: dev-user)")
    token.add_argument("--email")
    token.add_argument("--group", action="append", default=[], help="cognito:groups (repeat)")
    token.add_argument("--token-use", choices=("access", "id"), default="access")
    token.add_argument("--lifetime", type=int, default=3600, help="seconds (default: 3600)")
    sub.add_parser("migrate", help="create or upgrade the usage ledger's PostgreSQL schema")
    sub.choices["migrate"].add_argument("--config", help="TOML file (default: $GATEWAY_CONFIG)")
    usage = sub.add_parser("usage", help="print a usage report (JSON) from the ledger")
    usage.add_argument("--config", help="TOML file (default: $GATEWAY_CONFIG)")
    usage.add_argument("--tenant", help="one tenant (default: every tenant)")
    usage.add_argument("--start", type=dt.date.fromisoformat, help="YYYY-MM-DD (default: 1st)")
    usage.add_argument("--end", type=dt.date.fromisoformat, help="YYYY-MM-DD (default: today)")
    key = sub.add_parser("key", help="create a service API key and print its config entry")
    key.add_argument("--name", required=True, help="the key's name in [api_keys]")
    key.add_argument("--tenant", required=True)
    key.add_argument("--app")
    sub.add_parser("phi-key", help="print a new PHI vault key (for GATEWAY__PHI__VAULT_KEY)")
    return parser


def _token(config: GatewayConfig, args: argparse.Namespace) -> int:
    dev = config.auth.dev_issuer
    if not dev.enabled:
        print("token: the development issuer is not enabled in this config", file=sys.stderr)
        return EXIT_USAGE
    if args.lifetime <= 0:
        print("token: --lifetime must be > 0", file=sys.stderr)
        return EXIT_USAGE
    identity = DevIdentity(
        tenant=args.tenant,
        subject=args.sub,
        app=args.app,
        app_user=args.app_user,
        email=args.email,
        groups=tuple(args.group),
    )
    key = load_or_create_key(dev.key_file)
    print(
        mint(
            key,
            identity,
            issuer=dev.issuer,
            client_id=dev.client_id,
            token_use=args.token_use,
            lifetime_s=args.lifetime,
        )
    )
    return 0


def _key(args: argparse.Namespace) -> int:
    key, digest = new_key()
    app = f'app = "{args.app}"\n' if args.app else ""
    print(f"""# The key (give it to the client; it is not stored anywhere):
#   {key}
[api_keys.{args.name}]
sha256 = "{digest}"
tenant = "{args.tenant}"
{app}""")  # fmt: skip
    return 0


def _migrate(config: GatewayConfig) -> int:
    metering = config.metering
    if metering.sink != "postgres" or metering.postgres_dsn is None:
        print("migrate: the file ledger needs no migration (metering.sink is 'file')")
        return 0
    try:
        password = metering.postgres_password
        applied = asyncio.run(
            migrate(
                metering.postgres_dsn.reveal(),
                password=password.reveal() if password is not None else None,
            )
        )
    except (OSError, TimeoutError, PostgresError) as exc:
        print(f"migrate: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if applied:
        print(f"migrate: applied {', '.join(str(v) for v in applied)}")
    else:
        print("migrate: the schema is up to date")
    return 0


def _usage(config: GatewayConfig, args: argparse.Namespace) -> int:
    today = dt.datetime.now(dt.UTC).date()
    query = UsageQuery(args.tenant, args.start or today.replace(day=1), args.end or today)
    if query.end < query.start:
        print("usage: --end is before --start", file=sys.stderr)
        return EXIT_USAGE

    async def run() -> dict[str, Any]:
        sink = open_sink(config.metering)
        await sink.start()
        try:
            return usage_report(query, await sink.totals(query))
        finally:
            await sink.aclose()

    try:
        report = asyncio.run(run())
    except (OSError, TimeoutError, PostgresError) as exc:
        print(f"usage: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(dumps(report).decode())
    return 0


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
    local = [t.port for t in targets if t.hostname in ("127.0.0.1", "localhost") and t.port]
    if not local:
        print(
            "demo: the config needs an upstream on 127.0.0.1:<port> for the fake", file=sys.stderr
        )
        return EXIT_CONFIG
    dev = config.auth.dev_issuer
    token = jwks = None
    if config.auth.enabled and dev.enabled:
        key = load_or_create_key(dev.key_file)
        jwks = public_jwks(key.public_key())
        tenant = next((t for t in config.tenants if t != "*"), "demo")
        token = mint(
            key,
            DevIdentity(tenant=tenant),
            issuer=dev.issuer,
            client_id=dev.client_id,
            lifetime_s=DEMO_TOKEN_LIFETIME_S,
        )
    fake = multiprocessing.get_context("spawn").Process(
        target=_run_fake, args=(local[0], jwks), daemon=True
    )
    fake.start()
    try:
        return serve(config, _demo_announce(config, token, local[0]))
    finally:
        fake.terminate()
        fake.join(5)


def _run_fake(port: int, jwks: dict[str, Any] | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us after the gateway drained

    async def run() -> None:
        fake = FakeOpenAI(Behaviour(chunk_delay_s=0.03), jwks=jwks)
        await start_fake(fake, "127.0.0.1", port)
        await asyncio.Event().wait()

    with (
        contextlib.suppress(KeyboardInterrupt),
        asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
    ):
        runner.run(run())


def _demo_announce(
    config: GatewayConfig, token: str | None, fake_port: int
) -> Callable[[str, int, int], None]:
    chat = next((a for a, m in config.models.items() if m.kind == "chat"), "demo-chat")
    if token is None:
        credential = "Authentication is off in this config."
    else:
        credential = f"""A token of the development issuer, valid 12 h (more with
`.venv/bin/gateway token --config <this config> --tenant <tenant> [--app A] [--group G]`).
Its JWKS is served at http://127.0.0.1:{fake_port}{JWKS_PATH}

  export TOKEN='{token}'"""  # fmt: skip

    def announce(host: str, port: int, workers: int) -> None:
        base = f"http://{host}:{port}"
        print(f"""
gateway demo listening on {base} ({workers} workers), fake upstream behind it.

{credential}

Try it with curl (streamed):
  curl -N {base}/v1/chat/completions -H "Authorization: Bearer $TOKEN" \\
    -H 'Content-Type: application/json' \\
    -d '{{"model": "{chat}", "stream": true, "messages": [{{"role": "user", "content": "Hello"}}]}}'

Or with openai-python:
  python -c 'import os; from openai import OpenAI
c = OpenAI(base_url="{base}/v1", api_key=os.environ["TOKEN"])
for e in c.chat.completions.create(model="{chat}", stream=True,
        messages=[{{"role": "user", "content": "Hello"}}]):
    print(e.choices[0].delta.content or "" if e.choices else "", end="", flush=True)
print()'

PHI redaction (the fake model echoes the redacted prompt it received; a token with
`--group clinician` gets the placeholders turned back into the originals):
  curl {base}/v1/chat/completions -H "Authorization: Bearer $TOKEN" \\
    -H 'Content-Type: application/json' \\
    -d '{{"model": "{chat}", "enable_phi": true, "messages": [{{"role": "user",
         "content": "Patient Jane Doe, MRN: A1234567, call 212-555-0199"}}]}}'

Also: {base}/v1/models  {base}/metrics  {base}/readyz   (Ctrl-C stops)
""", flush=True)  # fmt: skip

    return announce
