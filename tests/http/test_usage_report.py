"""``GET /v1/usage`` and ``gateway usage``/``gateway migrate``: who may see which tenant's usage,
and that the report adds up what the gateway recorded."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from gateway.cli import main
from gateway.config import GroupConfig, TenantConfig
from gateway.demo import FakeOpenAI, start_fake
from gateway.keys import LEDGER
from gateway.metering.ledger import Ledger
from gateway.telemetry import Metrics
from tests import stack as stack_module
from tests.http.conftest import read_error
from tests.http.sse import CHAT, HI
from tests.identity import bearer, token
from tests.postgres_server import fresh_database
from tests.stack import BackgroundLoop, make_config, start_gateway

USAGE = "/v1/usage"


@dataclasses.dataclass
class Site:
    url: str
    ledger: Ledger
    ledger_path: Path


@pytest.fixture
def site(background: BackgroundLoop) -> Iterator[Site]:
    fake_runner, fake_port = background.run(start_fake(FakeOpenAI()))
    base = make_config(f"http://127.0.0.1:{fake_port}")
    groups = {"admin": GroupConfig(permissions=("admin:read",)),
              "super_admin": GroupConfig(permissions=("admin:read", "tenants:all"))}  # fmt: skip
    config = dataclasses.replace(
        base,
        auth=stack_module.test_auth(groups=groups),
        tenants={"tests": TenantConfig(models=("*",)), "other": TenantConfig(models=("*",))},
    )
    runner, port = background.run(start_gateway(config, Metrics()))
    yield Site(f"http://127.0.0.1:{port}", runner.app[LEDGER], Path(config.metering.path))
    background.run(runner.cleanup())
    background.run(fake_runner.cleanup())


async def _chat(http: aiohttp.ClientSession, site: Site, credential: str) -> None:
    body = {"model": "test-chat", "messages": HI}
    async with http.post(site.url + CHAT, json=body, headers=bearer(credential)) as response:
        assert response.status == 200


async def _report(
    http: aiohttp.ClientSession, site: Site, credential: str, query: str = ""
) -> tuple[int, dict[str, Any]]:
    async with http.get(site.url + USAGE + query, headers=bearer(credential)) as response:
        return response.status, orjson.loads(await response.read())


async def test_admins_see_their_tenant_super_admins_any_others_none(
    site: Site, http: aiohttp.ClientSession, background: BackgroundLoop
) -> None:
    await _chat(http, site, token("tests"))
    await _chat(http, site, token("tests"))
    await _chat(http, site, token("other"))
    admin, other_admin = token("tests", groups=("admin",)), token("other", groups=("admin",))
    root = token("other", groups=("super_admin",))
    background.run(site.ledger.flush())

    status, report = await _report(http, site, admin)
    assert status == 200
    assert (report["tenant"], report["total_requests"]) == ("tests", 2)
    [model] = report["breakdown"]
    assert (model["provider"], model["model"], model["requests"]) == ("fake", "test-chat", 2)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert [d["date"] for d in model["days"]] == [today]
    assert report["total_cost"] != "0.000000"

    status, report = await _report(http, site, other_admin)
    assert (status, report["tenant"], report["total_requests"]) == (200, "other", 1)
    status, report = await _report(http, site, root, "?tenant=tests")
    assert (status, report["total_requests"]) == (200, 2)

    async with http.get(site.url + USAGE + "?tenant=other", headers=bearer(admin)) as response:
        await read_error(response, 403)
    async with http.get(site.url + USAGE, headers=bearer(token("tests"))) as response:
        await read_error(response, 403)


async def test_period_parameters(site: Site, http: aiohttp.ClientSession) -> None:
    admin = token("tests", groups=("admin",))
    status, report = await _report(http, site, admin, "?start=2020-01-01&end=2020-01-31")
    assert (status, report["period"], report["total_requests"]) == (
        200, {"start": "2020-01-01", "end": "2020-01-31"}, 0,
    )  # fmt: skip
    async with http.get(site.url + USAGE + "?start=nope", headers=bearer(admin)) as response:
        assert (await read_error(response, 400))["param"] == "start"
    query = "?start=2020-02-01&end=2020-01-01"
    async with http.get(site.url + USAGE + query, headers=bearer(admin)) as response:
        await read_error(response, 400)


def test_cli_usage_and_migrate(
    site: Site, background: BackgroundLoop, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def one_chat() -> None:
        async with aiohttp.ClientSession() as http:
            await _chat(http, site, token("tests"))

    background.run(one_chat())
    background.run(site.ledger.flush())
    config = tmp_path / "gateway.toml"
    config.write_text(f"""
[auth]
enabled = false
anonymous_tenant = "tests"
[tenants.tests]
models = ["*"]
[upstreams.fake]
base_url = "http://127.0.0.1:1"
[models.m]
upstream = "fake"
target = "t"
[metering]
path = "{site.ledger_path}"
""")  # fmt: skip
    assert main(["usage", "--config", str(config), "--tenant", "tests"]) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert (report["tenant"], report["total_requests"]) == ("tests", 1)
    assert main(["migrate", "--config", str(config)]) == 0
    assert "needs no migration" in capsys.readouterr().out


def test_cli_migrate_postgres(
    postgres_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = asyncio.run(fresh_database(postgres_dsn))
    config = tmp_path / "gateway.toml"
    config.write_text("""
[auth]
enabled = false
anonymous_tenant = "tests"
[tenants.tests]
models = ["*"]
[upstreams.fake]
base_url = "http://127.0.0.1:1"
[models.m]
upstream = "fake"
target = "t"
[metering]
sink = "postgres"
""")  # fmt: skip
    env = {"GATEWAY__METERING__POSTGRES_DSN": dsn}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        assert main(["migrate", "--config", str(config)]) == 0
        assert "applied 1, 2" in capsys.readouterr().out
        assert main(["migrate", "--config", str(config)]) == 0
        assert "up to date" in capsys.readouterr().out
        assert main(["usage", "--config", str(config)]) == 0
        assert orjson.loads(capsys.readouterr().out)["total_requests"] == 0
