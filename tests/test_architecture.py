"""Layering rules import-linter cannot express (which parts of aiohttp may appear where)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

GATEWAY = Path(__file__).resolve().parent.parent / "gateway"
WEB_ALLOWED = ("app.py", "lifecycle.py", "keys.py", "server.py", "cli.py", "demo.py",
               "middleware/", "routes/")  # fmt: skip
CLIENT_ALLOWED = ("upstreams/", "auth/jwks.py", "auth/authenticator.py")
CLIENT_NAMES = {"ClientSession", "TCPConnector", "ClientTimeout", "ClientResponse", "request"}


def _modules() -> list[Path]:
    return sorted(GATEWAY.rglob("*.py"))


def _relative(path: Path) -> str:
    return path.relative_to(GATEWAY).as_posix()


def _aiohttp_uses(path: Path) -> tuple[bool, bool]:
    """(uses aiohttp.web, uses the aiohttp client) in one module."""
    tree = ast.parse(path.read_text())
    web = client = False
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("aiohttp"):
            names = {alias.name for alias in node.names}
            web |= node.module.startswith("aiohttp.web") or "web" in names
            client |= bool(names & CLIENT_NAMES)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "aiohttp"
            and node.attr in CLIENT_NAMES
        ):
            client = True
    return web, client


@pytest.mark.parametrize("path", _modules(), ids=_relative)
def test_aiohttp_server_and_client_stay_in_their_layers(path: Path) -> None:
    web, client = _aiohttp_uses(path)
    rel = _relative(path)
    if web:
        assert rel.startswith(WEB_ALLOWED), f"{rel} uses aiohttp.web"
    if client:
        assert rel.startswith(CLIENT_ALLOWED), f"{rel} uses the aiohttp client"


def test_every_module_imports_without_environment_or_side_effects() -> None:
    names = [
        "gateway." + _relative(p)[:-3].replace("/", ".").removesuffix(".__init__")
        for p in _modules()
    ]
    code = "import importlib, sys\nfor n in sys.argv[1:]: importlib.import_module(n)\n"
    result = subprocess.run(
        [sys.executable, "-c", code, *names], env={}, capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b""


AWS_SDK = ("aioboto3", "aiobotocore", "botocore", "boto3")
AWS_ALLOWED = ("upstreams/sagemaker.py", "upstreams/errors.py")


@pytest.mark.parametrize("path", _modules(), ids=_relative)
def test_aws_sdk_only_in_the_sagemaker_adapter(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    if imported & set(AWS_SDK):
        assert _relative(path) in AWS_ALLOWED, f"{_relative(path)} imports the AWS SDK"
