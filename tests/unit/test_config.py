from __future__ import annotations

import dataclasses
import pickle
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path

import pytest

from gateway.cli import EXAMPLE_CONFIG, main
from gateway.config import GatewayConfig, Secret, load_config
from gateway.errors import ConfigError

MINIMAL = """
[auth.issuers.users]
issuer = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123"
client_ids = ["app-client-1"]

[upstreams.litellm]
base_url = "http://127.0.0.1:4000"

[models.chat]
upstream = "litellm"
target = "gpt-4o-mini"
"""


def test_defaults_fill_everything_not_given() -> None:
    config = load_config(MINIMAL, {})
    assert config.server.port == 8080
    assert config.server.workers == 0
    up = config.upstreams["litellm"]
    assert (up.connect_timeout_s, up.first_byte_timeout_s, up.idle_timeout_s) == (5.0, 60.0, 30.0)
    assert up.api_key is None
    assert config.models["chat"].kind == "chat"


def test_environment_overrides_are_typed_and_case_insensitive() -> None:
    config = load_config(
        MINIMAL,
        {
            "GATEWAY__SERVER__PORT": "9000",
            "gateway__server__access_log": "true",
            "GATEWAY__SERVER__CORS_ORIGINS": "https://a.example, https://b.example",
            "GATEWAY__UPSTREAMS__LITELLM__API_KEY": "sk-secret-value",
            "GATEWAY__UPSTREAMS__LITELLM__IDLE_TIMEOUT_S": "12.5",
            "UNRELATED": "ignored",
        },
    )
    assert config.server.port == 9000
    assert config.server.access_log is True
    assert config.server.cors_origins == ("https://a.example", "https://b.example")
    assert config.upstreams["litellm"].idle_timeout_s == 12.5
    key = config.upstreams["litellm"].api_key
    assert key is not None
    assert key.reveal() == "sk-secret-value"


def test_secrets_never_print() -> None:
    config = load_config(MINIMAL, {"GATEWAY__UPSTREAMS__LITELLM__API_KEY": "sk-secret-value"})
    assert "sk-secret-value" not in repr(config)
    assert "sk-secret-value" not in str(config.upstreams["litellm"])
    assert repr(Secret("x")) == "'***'"


def test_every_problem_is_reported_at_once() -> None:
    text = (
        MINIMAL
        + """
[server]
port = "eighty"
workers = -1
bogus = 1
cors_origins = ["*"]

[models.other]
upstream = "missing"
target = "x"
kind = "audio"
"""
    )
    with pytest.raises(ConfigError) as info:
        load_config(text, {"GATEWAY__UPSTREAMS__LITELLM__CONNECT_TIMEOUT_S": "-1"})
    problems = "\n".join(info.value.problems)
    for expected in (
        "server.port: must be an integer",
        "server.bogus: unknown key",
        "models.other.kind: must be one of",
        "upstreams.litellm.connect_timeout_s: must be > 0",
    ):
        assert expected in problems
    assert len(info.value.problems) >= 4


def test_cross_field_rules() -> None:
    text = """
[server]
workers = -1
cors_origins = ["*"]

[upstreams.u]
base_url = "ftp://x"
first_byte_timeout_s = 10.0
total_timeout_s = 5.0

[models.m]
upstream = "nope"
target = "t"
"""
    with pytest.raises(ConfigError) as info:
        load_config(text, {})
    problems = "\n".join(info.value.problems)
    assert "server.workers" in problems
    assert "server.cors_origins" in problems
    assert "upstreams.u.base_url" in problems
    assert "upstreams.u.total_timeout_s" in problems


def test_model_must_name_a_known_upstream() -> None:
    with pytest.raises(ConfigError, match="no upstream named 'nope'"):
        load_config(MINIMAL.replace('upstream = "litellm"', 'upstream = "nope"'), {})


def test_required_fields_and_bad_toml() -> None:
    with pytest.raises(ConfigError, match=r"upstreams\.u\.base_url: required"):
        load_config("[upstreams.u]\n[models.m]\nupstream='u'\ntarget='t'\n", {})
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config("[server\n", {})


def test_config_pickles_for_worker_processes() -> None:
    config = load_config(MINIMAL, {"GATEWAY__UPSTREAMS__LITELLM__API_KEY": "sk-x"})
    assert pickle.loads(pickle.dumps(config)) == config


def test_example_config_is_valid() -> None:
    assert main(["check-config", "--config", str(EXAMPLE_CONFIG)]) == 0


def test_check_config_exits_3_and_lists_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nport = "x"\nworkers = "y"\n')
    assert main(["check-config", "--config", str(bad)]) == 3
    err = capsys.readouterr().err
    assert "server.port" in err
    assert "server.workers" in err
    assert "models" in err


def test_missing_file_exits_3(tmp_path: Path) -> None:
    assert main(["check-config", "--config", str(tmp_path / "nope.toml")]) == 3


def _documented_keys(cls: type, prefix: str) -> list[str]:
    """Every leaf key of a config section, as the README's table spells it."""
    keys: list[str] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(options) == 1:
            tp = options[0]  # an optional section
        if typing.get_origin(tp) in (Mapping, dict):
            item, label = typing.get_args(tp)[1], f"<{f.name.rstrip('s')}>"
            keys += _documented_keys(item, f"{prefix}{f.name}.{label}.")
        elif dataclasses.is_dataclass(tp):
            keys += _documented_keys(tp, f"{prefix}{f.name}.")  # type: ignore[arg-type]
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def test_every_config_key_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = re.sub(r"<(tenant|app|name|alias|group|upstream|issuer)>", "<x>", readme)
    missing = []
    for key in _documented_keys(GatewayConfig, ""):
        normalized = re.sub(r"<[a-z_]+>", "<x>", key)
        section, _, leaf = normalized.rpartition(".")
        # A row names the key itself, or several leaves of one section as `a.b.x` / `.y`; a
        # section type shared by several tables may be written `….limits.x` (also for user_limits).
        parent = section.rpartition(".")[2].rpartition("_")[2]
        for name in (re.escape(section), rf"….{re.escape(parent)}"):
            if re.search(rf"`{name}\.{leaf}`", table) or re.search(
                rf"`{name}\.[a-z_]+`[^|\n]*`\.{leaf}`", table
            ):
                break
        else:
            missing.append(key)
    assert not missing, f"README lacks rows for {missing}"


def test_auth_needs_a_way_in_and_anonymous_needs_a_tenant() -> None:
    no_issuer = MINIMAL.split("[upstreams.litellm]")[1]
    with pytest.raises(ConfigError, match="no issuer, dev issuer or API key"):
        load_config("[upstreams.litellm]" + no_issuer, {})
    off = "[auth]\nenabled = false\n\n[upstreams.litellm]" + no_issuer
    with pytest.raises(ConfigError, match="no tenant named 'anonymous'"):
        load_config(off, {})
    config = load_config(off + '\n[tenants."*"]\nmodels = ["*"]\n', {})
    assert not config.auth.enabled


def test_only_super_admin_acts_across_tenants() -> None:
    groups = '\n[auth.groups.admin]\npermissions = ["admin:read", "tenants:all"]\n'
    with pytest.raises(ConfigError, match="only super_admin acts across tenants"):
        load_config(MINIMAL + groups, {})
    config = load_config(MINIMAL + groups.replace("admin]", "super_admin]"), {})
    assert config.auth.groups["super_admin"].permissions == ("admin:read", "tenants:all")


SAGEMAKER = """
[auth.issuers.users]
issuer = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123"
client_ids = ["app-client-1"]

[upstreams.sm]
kind = "sagemaker"
region = "eu-west-1"
max_connections = 256

[models.llama]
upstream = "sm"
target = "llama-3-8b"

[models.llama.sagemaker]
endpoint_name = "llama-3-8b-prod"
dialect = "tgi"
chat_template = "llama3"
inference_component = "ic-llama"
custom_attributes = "accept_eula=true"
"""


def test_sagemaker_upstream_and_model_load() -> None:
    config = load_config(SAGEMAKER, {"GATEWAY__UPSTREAMS__SM__ENDPOINT_URL": "http://127.0.0.1:9"})
    up = config.upstreams["sm"]
    assert (up.kind, up.region, up.endpoint_url, up.max_connections) == (
        "sagemaker", "eu-west-1", "http://127.0.0.1:9", 256
    )  # fmt: skip
    sm = config.models["llama"].sagemaker
    assert sm is not None
    assert (sm.endpoint_name, sm.dialect, sm.chat_template) == ("llama-3-8b-prod", "tgi", "llama3")
    assert sm.inference_component == "ic-llama"
    assert sm.target_variant is None


def test_sagemaker_problems_are_all_reported() -> None:
    text = SAGEMAKER.replace('region = "eu-west-1"', 'base_url = "http://x"\nmax_retries = 9')
    text = text.replace('chat_template = "llama3"', "custom_attributes_x = 1")
    text += '\n[models.plain]\nupstream = "sm"\ntarget = "x"\n'
    text += (
        '\n[upstreams.lite]\nbase_url = "http://l"\n[models.odd]\nupstream = "lite"\ntarget = "y"\n'
    )
    text += '[models.odd.sagemaker]\nendpoint_name = "e"\ndialect = "vllm"\n'
    with pytest.raises(ConfigError) as info:
        load_config(text, {})
    problems = info.value.problems
    assert "upstreams.sm.region: required for kind = 'sagemaker'" in problems
    assert any(p.startswith("upstreams.sm.base_url: not used") for p in problems)
    assert "upstreams.sm.max_retries: must be between 0 and 5" in problems
    assert "models.llama.sagemaker.custom_attributes_x: unknown key" in problems
    assert "models.llama.sagemaker.chat_template: required for dialect 'tgi'" in problems
    assert any(p.startswith("models.plain.sagemaker: required") for p in problems)
    assert "models.odd.sagemaker: only for models on a SageMaker upstream" in problems


def test_sagemaker_dialect_is_checked() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(SAGEMAKER.replace('dialect = "tgi"', 'dialect = "tgl"'), {})
    assert any("dialect: must be one of" in p for p in info.value.problems)
