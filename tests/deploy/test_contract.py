"""The environment contract: what the task definition sets is what the gateway's loader accepts.

This test may import both sides; ``deploy`` itself never imports ``gateway``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from deploy.settings import (
    CACHE_PORT,
    DATABASE_PORT,
    DRAIN_TIMEOUT_S,
    GATEWAY_CONFIG_PATH,
    GATEWAY_PORT,
    GATEWAY_SECRET_NAMES,
    METRICS_NAMESPACE,
    VAULT_KEY_ENV,
    gateway_environment_names,
)
from deploy.stacks.metrics_agent import PUBLISHED_METRICS
from gateway.config import load_config
from gateway.config.secret import Secret
from gateway.errors import ConfigError
from gateway.limits.fallback import FallbackStore
from gateway.limits.limiter import open_store
from gateway.telemetry import Metrics
from tests.deploy.conftest import Synth, synthesize
from tests.deploy.test_stacks import _gateway_container, _render, _resources

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ROOT / "config" / "gateway.production.toml"


CACHE_HOST = "master.phi-cache.abc123.use1.cache.amazonaws.com"
"""Stands in for the cache's primary endpoint address, known only once CloudFormation made it."""
DATABASE_HOST = "phi-ledger.cluster-abc123.us-east-1.rds.amazonaws.com"
"""Stands in for the ledger cluster's writer endpoint address."""


def _task_environment(synth: Synth) -> tuple[dict[str, str], set[str]]:
    container: dict[str, Any] = _gateway_container(synth)
    plain = {
        e["Name"]: _render(_cache_endpoint(synth, e["Value"])) for e in container["Environment"]
    }
    secrets = {s["Name"] for s in container["Secrets"]}
    return plain, secrets


def _cache_endpoint(synth: Synth, value: Any) -> Any:
    """``value`` with the imports of the cache's and the ledger cluster's endpoint attributes
    resolved (ports from the template, hosts as ``CACHE_HOST`` / ``DATABASE_HOST``); other values
    unchanged."""
    if isinstance(value, dict) and "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return {"Fn::Join": [sep, [_cache_endpoint(synth, part) for part in parts]]}
    if not (isinstance(value, dict) and "Fn::ImportValue" in value):
        return value
    data = synth.templates["data"]
    outputs = data.to_json().get("Outputs", {})
    exported = [o["Value"] for o in outputs.values()
                if o.get("Export", {}).get("Name") == value["Fn::ImportValue"]]  # fmt: skip
    ((cache_id, cache),) = data.find_resources("AWS::ElastiCache::ReplicationGroup").items()
    ((cluster_id, cluster),) = data.find_resources("AWS::RDS::DBCluster").items()
    known = {
        (cache_id, "PrimaryEndPoint.Port"): str(cache["Properties"]["Port"]),
        (cache_id, "PrimaryEndPoint.Address"): CACHE_HOST,
        (cluster_id, "Endpoint.Port"): str(cluster["Properties"]["Port"]),
        (cluster_id, "Endpoint.Address"): DATABASE_HOST,
    }
    for (resource, attribute), resolved in known.items():
        if exported == [{"Fn::GetAtt": [resource, attribute]}]:
            return resolved
    return value


STAND_IN = "secret-from-secrets-manager"
"""Stands in for each secret's value, except the vault's key material:"""
VAULT_MATERIAL = "Xq7vR2mKp9LwT4nZb8HcY3sFd6GjA1eUo5QiV0tNrMyWx2Ck"
"""Stands in for the vault's key material: 48 letters and digits, the shape the data stack's
generator makes (tests/deploy/test_vault_store.py checks the template asks for that)."""


def _with_secrets(plain: dict[str, str], secrets: set[str]) -> dict[str, str]:
    return {**plain, **{name: VAULT_MATERIAL if name == VAULT_KEY_ENV else STAND_IN
                        for name in secrets}}  # fmt: skip


def test_task_sets_exactly_the_contract(synth: Synth) -> None:
    plain, secrets = _task_environment(synth)
    assert secrets == set(GATEWAY_SECRET_NAMES)
    assert set(plain) | secrets == gateway_environment_names(synth.ctx)
    assert not set(plain) & secrets


def test_every_variable_is_accepted_by_the_gateway_loader(synth: Synth) -> None:
    plain, secrets = _task_environment(synth)
    assert plain["GATEWAY_CONFIG"] == GATEWAY_CONFIG_PATH
    config = load_config(PRODUCTION.read_text(), _with_secrets(plain, secrets))
    active = {alias for alias, m in config.models.items() if m.status == "active"}
    assert active == {m.alias for m in synth.ctx.models}
    assert config.server.host == "0.0.0.0"
    assert config.server.port == GATEWAY_PORT
    assert config.server.drain_timeout_s == DRAIN_TIMEOUT_S
    assert config.server.workers == max(1, synth.ctx.settings.gateway_cpu // 1024)
    assert set(config.auth.issuers) == {"users", "admins"}
    assert config.auth.issuers["users"].token_use == ("id",)
    assert config.auth.dev_issuer.enabled is False
    assert synth.ctx.app_name in config.apps
    assert config.upstreams["litellm"].api_key is not None
    assert config.limits.store == "redis"
    assert config.limits.redis_url is not None
    assert config.limits.redis_url.reveal() == f"rediss://{CACHE_HOST}:{CACHE_PORT}/0"
    assert config.limits.redis_password == Secret(STAND_IN)
    assert config.phi.vault == "redis"
    assert config.phi.redis_url == config.limits.redis_url
    assert config.phi.redis_password == Secret(STAND_IN)
    assert config.phi.key_prefix != config.limits.key_prefix
    assert config.phi.vault_key == Secret(VAULT_MATERIAL)
    assert config.phi.key_bytes is not None
    assert len(config.phi.key_bytes) == 32
    hipaa = {alias for alias, m in config.models.items() if m.hipaa_eligible}
    assert {m.alias for m in synth.ctx.models} <= hipaa
    assert config.limits.replicas == config.server.workers * synth.ctx.settings.gateway_max_tasks
    assert config.metering.enabled
    assert config.metering.sink == "postgres"
    assert config.metering.postgres_dsn is not None
    assert config.metering.postgres_dsn.reveal() == (
        f"postgresql://ledger@{DATABASE_HOST}:{DATABASE_PORT}/ledger?sslmode=require"
    )
    assert config.metering.postgres_password == Secret(STAND_IN)


async def test_limits_configured_in_production_use_the_shared_store(synth: Synth) -> None:
    """With a limit rule, several workers need Redis: the production config has it, memory fails."""
    env = _with_secrets(*_task_environment(synth))
    with_rule = PRODUCTION.read_text() + '\n[tenants."*".limits]\nrequests_per_minute = 600\n'
    config = load_config(with_rule, env)
    assert config.has_limits
    store = open_store(config, Metrics())
    assert isinstance(store, FallbackStore)
    await store.aclose()
    if config.server.workers > 1:
        memory = with_rule.replace('store = "redis"', 'store = "memory"')
        with pytest.raises(ConfigError, match=r"limits\.store: 'memory'"):
            load_config(memory, env)


def test_each_variable_changes_the_config(synth: Synth) -> None:
    """No variable is silently ignored: dropping any one of them changes the result or fails."""
    plain, secrets = _task_environment(synth)
    full = _with_secrets(plain, secrets)
    baseline = load_config(PRODUCTION.read_text(), full)
    for name in sorted(set(full) - {"GATEWAY_CONFIG"}):
        reduced = {k: v for k, v in full.items() if k != name}
        try:
            changed = load_config(PRODUCTION.read_text(), reduced) != baseline
        except ConfigError:
            changed = True
        assert changed, f"{name} has no effect"


def test_production_config_is_refused_without_the_task_environment() -> None:
    with pytest.raises(ConfigError, match="no issuer") as info:
        load_config(PRODUCTION.read_text(), {})
    assert "limits.redis_url: store 'redis' needs" in str(info.value)
    assert "metering.postgres_dsn: sink 'postgres' needs" in str(info.value)
    assert "phi.redis_url: vault 'redis' needs" in str(info.value)
    assert "phi.vault_key: vault 'redis' is shared, so it needs a configured key" in str(info.value)


def _check_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "check-config"],
        env={**env, "GATEWAY_CONFIG": str(PRODUCTION), "PATH": ""},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_check_config_passes_with_the_task_environment() -> None:
    """With the redis vault and a key derived from generated material; a short key fails."""
    env = _with_secrets(*_task_environment(synthesize(5, "prod")))
    assert env["GATEWAY__PHI__REDIS_URL"] == env["GATEWAY__LIMITS__REDIS_URL"]
    result = _check_config(env)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
    assert VAULT_MATERIAL not in result.stdout + result.stderr
    short = _check_config({**env, VAULT_KEY_ENV: STAND_IN})
    assert short.returncode == 3
    assert "phi.vault_key: must be 32 bytes, base64-encoded, or key material" in short.stderr
    memory = _check_config({**env, "GATEWAY__PHI__VAULT": "memory"})
    assert memory.returncode == 3, "the redis vault is what makes the URL and password valid"


def test_published_and_alarmed_metrics_are_metrics_the_gateway_exports(synth: Synth) -> None:
    """The sidecar and the alarms select metrics by name: a renamed one would alarm on nothing."""
    exported = {family.name for family in Metrics().families}
    assert set(PUBLISHED_METRICS) <= exported
    alarms = _resources(synth, "gateway", "AWS::CloudWatch::Alarm").values()
    alarmed = {
        a["Properties"]["MetricName"]
        for a in alarms
        if a["Properties"].get("Namespace") == METRICS_NAMESPACE
    }
    assert len(alarmed) >= 4
    assert alarmed <= set(PUBLISHED_METRICS)
