"""The Dockerfile, read statically (there is no Docker daemon on the CI machine)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]
COMPILERS = ("gcc", "g++", "clang", "make", "build-essential", "cc ")


def _instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)
    rows = [line.strip() for line in joined.splitlines()]
    return [(r.split(None, 1)[0].upper(), r.split(None, 1)[1] if " " in r else "")
            for r in rows if r and not r.startswith("#")]  # fmt: skip


def _final_stage() -> list[tuple[str, str]]:
    rows = _instructions()
    last_from = max(i for i, (op, _) in enumerate(rows) if op == "FROM")
    return rows[last_from:]


def test_multi_stage_with_a_slim_base() -> None:
    froms = [arg for op, arg in _instructions() if op == "FROM"]
    assert len(froms) >= 2
    args = dict(a.split("=", 1) for op, a in _instructions() if op == "ARG" and "=" in a)
    assert "slim" in args["PYTHON_IMAGE"]
    assert any("--from=build" in arg for op, arg in _final_stage() if op == "COPY")


def test_final_stage_runs_as_non_root() -> None:
    users = [arg for op, arg in _final_stage() if op == "USER"]
    assert users, "no USER in the final stage"
    assert users[-1].split(":")[0] not in ("0", "root")


def test_no_build_tools_in_the_final_stage() -> None:
    for op, arg in _final_stage():
        if op == "RUN":
            assert not any(tool in arg for tool in COMPILERS), arg
            assert "apt-get install" not in arg, arg


def test_entrypoint_is_exec_form_so_sigterm_reaches_the_gateway() -> None:
    final = dict(_final_stage())
    entrypoint = orjson.loads(final["ENTRYPOINT"])
    command = orjson.loads(final["CMD"])
    assert entrypoint + command == ["gateway", "serve"]
    assert final["STOPSIGNAL"] == "SIGTERM"


def test_health_check_probes_healthz() -> None:
    check = dict(_final_stage())["HEALTHCHECK"]
    assert "/healthz" in check
    assert "CMD [" in check  # exec form: no shell needed


def test_image_carries_the_production_config() -> None:
    final = _final_stage()
    assert any("config/gateway.production.toml" in arg for op, arg in final if op == "COPY")
    env = " ".join(arg for op, arg in final if op == "ENV")
    assert "GATEWAY_CONFIG=/app/config/gateway.production.toml" in shlex.split(env)


def test_dockerignore_admits_only_what_the_build_copies() -> None:
    lines = [ln for ln in (ROOT / ".dockerignore").read_text().splitlines()
             if ln and not ln.startswith("#")]  # fmt: skip
    assert lines[0] == "*"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "gateway", "config/gateway.production.toml"}
