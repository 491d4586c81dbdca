"""``metering.postgres_password`` against a real PostgreSQL that checks passwords (SCRAM on TCP).

The suite's shared PostgreSQL trusts every connection, so this module starts its own on a
loopback port (``PostgresServer(password=...)``) and stops it in its fixture.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import MeteringConfig, load_config
from gateway.errors import ConfigError
from gateway.metering.ledger import open_ledger, open_sink
from gateway.metering.postgres import PostgresSink, migrate
from gateway.metering.sink import SinkAuthFailed, UsageQuery
from tests.metering.factory import record
from tests.postgres_server import PostgresServer

PASSWORD = secrets.token_urlsafe(24)
ALL = UsageQuery(None, dt.date(2000, 1, 1), dt.date(2100, 1, 1))
CONFIG = """
[auth.issuers.users]
issuer = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123"
client_ids = ["app-client-1"]

[upstreams.litellm]
base_url = "http://127.0.0.1:4000"

[models.chat]
upstream = "litellm"
target = "gpt-4o-mini"

[metering]
sink = "postgres"
pool_size = 2
command_timeout_s = 2.0
retry_interval_s = 0.05
batch_interval_s = 0.02
"""


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    started = PostgresServer(password=PASSWORD).start()
    yield started
    started.close()


def _metering(server: PostgresServer, password: str | None, spill: Path) -> MeteringConfig:
    env = {"GATEWAY__METERING__POSTGRES_DSN": server.dsn(),
           "GATEWAY__METERING__SPILL_DIR": str(spill)}  # fmt: skip
    if password is not None:
        env["GATEWAY__METERING__POSTGRES_PASSWORD"] = password
    config = load_config(CONFIG, env)
    assert PASSWORD not in repr(config)
    return config.metering


async def test_the_ledger_connects_with_the_separate_password(
    server: PostgresServer, tmp_path: Path
) -> None:
    metering = _metering(server, PASSWORD, tmp_path / "spill")
    assert metering.postgres_dsn is not None
    assert PASSWORD not in metering.postgres_dsn.reveal()
    assert await migrate(server.dsn(), password=PASSWORD) != []
    ledger = open_ledger(metering)
    assert ledger is not None
    await ledger.start()
    ledger.record(record(request_id="req_pw_1"))
    await ledger.drain(5.0)
    sink = open_sink(metering)
    await sink.start()
    try:
        stored = await sink.records(ALL)
    finally:
        await sink.aclose()
    assert [r.request_id for r in stored] == ["req_pw_1"]
    assert list((tmp_path / "spill").glob("spill-*.jsonl")) == []


@pytest.mark.parametrize("password", [None, "not-the-password"])
async def test_missing_or_wrong_password_is_an_auth_failure(
    server: PostgresServer, password: str | None
) -> None:
    sink = PostgresSink(server.dsn(), pool_size=1, command_timeout_s=2.0, password=password)
    await sink.start()
    try:
        with pytest.raises(SinkAuthFailed, match="InvalidPasswordError"):
            await sink.write([record()])
    finally:
        await sink.aclose()


async def test_a_wrong_password_is_logged_as_an_error_and_records_are_spilled(
    server: PostgresServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.metering")
    wrong = "wrong-" + secrets.token_urlsafe(12)
    ledger = open_ledger(_metering(server, wrong, tmp_path / "spill"))
    assert ledger is not None
    await ledger.start()
    ledger.record(record(request_id="req_pw_2"))
    await ledger.drain(0.5)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "refused authentication" in errors[0].getMessage()
    assert "metering.postgres_password" in errors[0].getMessage()
    assert wrong not in caplog.text
    assert PASSWORD not in caplog.text
    spilled = list((tmp_path / "spill").glob("spill-*.jsonl"))
    assert len(spilled) == 1
    assert "req_pw_2" in spilled[0].read_text()


@pytest.mark.parametrize(("password", "status"), [(PASSWORD, 0), ("not-the-password", 1)])
def test_gateway_migrate_uses_the_password_and_never_prints_it(
    server: PostgresServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    password: str,
    status: int,
) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(CONFIG)
    monkeypatch.setenv("GATEWAY__METERING__POSTGRES_DSN", server.dsn())
    monkeypatch.setenv("GATEWAY__METERING__POSTGRES_PASSWORD", password)
    assert main(["migrate", "--config", str(path)]) == status
    out, err = capsys.readouterr()
    assert password not in out + err
    if status:
        assert "InvalidPasswordError" in err
        assert "password authentication failed" in err
    else:
        assert out.startswith("migrate: ")


def test_password_without_the_postgres_sink_is_refused() -> None:
    file_sink = CONFIG.replace('sink = "postgres"', 'sink = "file"')
    with pytest.raises(ConfigError, match=r"metering\.postgres_password: only used with sink"):
        load_config(file_sink, {"GATEWAY__METERING__POSTGRES_PASSWORD": "pw"})
    assert load_config(file_sink, {}).metering.postgres_password is None


def test_a_password_in_both_places_is_refused() -> None:
    env = {"GATEWAY__METERING__POSTGRES_DSN": "postgresql://ledger:other@db.internal:5432/ledger",
           "GATEWAY__METERING__POSTGRES_PASSWORD": "pw"}  # fmt: skip
    with pytest.raises(ConfigError, match="the postgres_dsn carries a password too"):
        load_config(CONFIG, env)
    env["GATEWAY__METERING__POSTGRES_DSN"] = "postgresql://ledger@db.internal:5432/ledger"
    config = load_config(CONFIG, env)
    assert config.metering.postgres_password is not None
    assert config.metering.postgres_password.reveal() == "pw"


def test_a_dsn_whose_port_does_not_parse_is_refused() -> None:
    env = {"GATEWAY__METERING__POSTGRES_DSN": "postgresql://ledger@db.internal:port/ledger"}
    with pytest.raises(ConfigError, match=r"metering\.postgres_dsn: not a valid URL"):
        load_config(CONFIG, env)
