"""The identity commands (`gateway token`, `gateway key`) and `gateway demo`, run as users do."""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import os
import re
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import orjson
import pytest

from gateway.auth.authenticator import Authenticator
from gateway.cli import EXAMPLE_CONFIG, main
from gateway.config import ApiKeyConfig, GatewayConfig, Secret, load_config
from gateway.context import Principal
from gateway.errors import AuthenticationFailed

ROOT = Path(__file__).resolve().parent.parent


def _example(tmp_path: Path, **env: str) -> Path:
    """The example config with the dev key under ``tmp_path`` (and other overrides)."""
    text = (
        EXAMPLE_CONFIG.read_text()
        .replace(
            'key_file = "~/.cache/phi-gateway/dev-issuer.pem"',
            f'key_file = "{tmp_path / "dev.pem"}"',
        )
        .replace(
            'path = "~/.local/share/phi-gateway/usage.jsonl"', f'path = "{tmp_path / "u.jsonl"}"'
        )
        .replace(
            'spill_dir = "~/.local/share/phi-gateway/spill"', f'spill_dir = "{tmp_path / "sp"}"'
        )
    )
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return path


async def _authenticate(config: GatewayConfig, credential: str) -> Principal:
    auth = Authenticator(config.auth, config.api_keys)
    await auth.start()
    try:
        return await auth.authenticate(credential)
    finally:
        await auth.aclose()


def test_token_command_mints_what_the_gateway_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _example(tmp_path)
    args = ["token", "--config", str(path), "--tenant", "demo", "--app", "chat"]
    assert main([*args, "--group", "admin", "--token-use", "id", "--lifetime", "60"]) == 0
    token = capsys.readouterr().out.strip()
    principal = asyncio.run(_authenticate(load_config(path.read_text(), {}), token))
    assert (principal.tenant_id, principal.app_id, principal.groups) == ("demo", "chat", ("admin",))
    assert principal.via == "jwt:dev"
    assert (tmp_path / "dev.pem").stat().st_mode & 0o777 == 0o600


def test_token_command_refuses_without_the_dev_issuer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _example(tmp_path)
    text = path.read_text().replace("enabled = true\nissuer", "enabled = false\nissuer")
    path.write_text(text + USER_POOL)
    assert main(["token", "--config", str(path), "--tenant", "demo"]) == 2
    assert "not enabled" in capsys.readouterr().err
    assert not (tmp_path / "dev.pem").exists()


USER_POOL = """
[auth.issuers.users]
issuer = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123"
client_ids = ["app-client-1"]
"""


def test_key_command_prints_a_working_config_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["key", "--name", "batch", "--tenant", "demo", "--app", "chat"]) == 0
    out = capsys.readouterr().out
    key = re.search(r"#\s+(gwk_\S+)", out)
    assert key is not None
    entry = tomllib.loads(out)["api_keys"]["batch"]
    assert entry["tenant"] == "demo"
    assert entry["app"] == "chat"
    assert key.group(1) not in entry["sha256"]
    config = load_config(_example(tmp_path).read_text() + out, {})
    principal = asyncio.run(_authenticate(config, key.group(1)))
    assert (principal.tenant_id, principal.app_id) == ("demo", "chat")
    assert principal.via == "api_key:batch"
    revoked = dataclasses.replace(config.api_keys["batch"], revoked=True)
    other = ApiKeyConfig(sha256=Secret("0" * 64), tenant="demo")
    for keys in ({"batch": revoked}, {"x": other}):
        with pytest.raises(AuthenticationFailed):
            asyncio.run(_authenticate(dataclasses.replace(config, api_keys=keys), key.group(1)))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_demo_prints_a_token_that_works(tmp_path: Path) -> None:
    port, fake_port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY")}
    env |= {
        "GATEWAY__SERVER__PORT": str(port),
        "GATEWAY__SERVER__WORKERS": "1",
        "GATEWAY__UPSTREAMS__LITELLM__BASE_URL": f"http://127.0.0.1:{fake_port}",
    }
    path = _example(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "demo", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        env=env,
    )
    try:
        assert proc.stdout is not None
        token = None
        deadline = time.monotonic() + 30
        while token is None and time.monotonic() < deadline:
            line = proc.stdout.readline().decode()
            assert line, "demo exited early"
            if match := re.search(r"export TOKEN='([^']+)'", line):
                token = match.group(1)
        assert token is not None
        assert _get(port, "/v1/models", token)[0] == 200
        _wait_accepting(fake_port)
        assert _get(port, "/v1/models", None)[0] == 401
        status, body = _get(fake_port, "/dev-issuer/.well-known/jwks.json", None)
        assert status == 200
        assert orjson.loads(body)["keys"][0]["kty"] == "RSA"
    finally:
        proc.terminate()
        proc.wait(20)
        if proc.stdout is not None:
            proc.stdout.close()


def _wait_accepting(port: int) -> None:
    """The fake upstream runs in its own process and may listen a moment after the gateway."""
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            time.sleep(0.1)
        else:
            return
    raise AssertionError(f"nothing listens on {port}")


def _get(port: int, path: str, token: str | None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body
