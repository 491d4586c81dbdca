"""The gateway tasks keep the PHI vault in the data stack's cache (the limits' URL, TLS, AUTH)
with key material from a generated secret encrypted with the PHI vault KMS key."""

from __future__ import annotations

import secrets
import string
import tomllib
from pathlib import Path
from typing import Any

from deploy.settings import (
    CACHE_AUTH_ENV,
    GATEWAY_SECRET_NAMES,
    VAULT_CACHE_AUTH_ENV,
    VAULT_KEY_ENV,
)
from gateway.config import load_config
from tests.deploy.conftest import Synth
from tests.deploy.test_contract import _task_environment, _with_secrets
from tests.deploy.test_ledger_store import execution_role_resources
from tests.deploy.test_limit_store import _exported
from tests.deploy.test_stacks import _gateway_container, _one, _resources

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ROOT / "config" / "gateway.production.toml"
SECRETS_MANAGER_TYPE = "AWS::SecretsManager::Secret"


def _environment(synth: Synth) -> dict[str, Any]:
    return {e["Name"]: e["Value"] for e in _gateway_container(synth)["Environment"]}


def _secret_refs(synth: Synth) -> dict[str, Any]:
    return {s["Name"]: s["ValueFrom"] for s in _gateway_container(synth)["Secrets"]}


def _vault_secret(synth: Synth) -> tuple[str, dict[str, Any]]:
    found = [(name, r) for name, r in _resources(synth, "data", SECRETS_MANAGER_TYPE).items()
             if "PHI vault key material" in r["Properties"]["Description"]]  # fmt: skip
    assert len(found) == 1
    return found[0]


def _key_id(synth: Synth, alias_suffix: str) -> str:
    """The data stack's KMS key behind the alias ``<prefix>/<alias_suffix>``."""
    name = f"alias/{synth.ctx.prefix}/{alias_suffix}"
    aliases = [a["Properties"] for a in _resources(synth, "data", "AWS::KMS::Alias").values()
               if a["Properties"]["AliasName"] == name]  # fmt: skip
    assert len(aliases) == 1
    target = aliases[0]["TargetKeyId"]
    assert list(target) == ["Fn::GetAtt"]
    key_id, attribute = target["Fn::GetAtt"]
    assert attribute == "Arn"
    return str(key_id)


def _task_role_statements(synth: Synth) -> list[dict[str, Any]]:
    task = _one(synth, "gateway", "AWS::ECS::TaskDefinition")["Properties"]
    role = task["TaskRoleArn"]["Fn::GetAtt"][0]
    assert role != task["ExecutionRoleArn"]["Fn::GetAtt"][0]
    return [
        s
        for p in _resources(synth, "gateway", "AWS::IAM::Policy").values()
        if {"Ref": role} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return action if isinstance(action, list) else [action]


def test_vault_url_is_the_limits_url(synth: Synth) -> None:
    env = _environment(synth)
    assert env["GATEWAY__PHI__REDIS_URL"] == env["GATEWAY__LIMITS__REDIS_URL"]
    sep, parts = env["GATEWAY__PHI__REDIS_URL"]["Fn::Join"]
    assert (sep, parts[0], parts[-1]) == ("", "rediss://", "/0")


def test_vault_secrets_are_references_never_plain(synth: Synth) -> None:
    assert {VAULT_CACHE_AUTH_ENV, VAULT_KEY_ENV} <= GATEWAY_SECRET_NAMES
    container = _gateway_container(synth)
    plain = {e["Name"] for e in container["Environment"]}
    assert not {VAULT_CACHE_AUTH_ENV, VAULT_KEY_ENV} & plain
    assert "resolve:secretsmanager" not in str(container["Environment"])
    refs = _secret_refs(synth)
    # The vault's AUTH token is the cache's, the one the limits use.
    assert refs[VAULT_CACHE_AUTH_ENV] == refs[CACHE_AUTH_ENV]
    secret_id, _ = _vault_secret(synth)
    assert _exported(synth, "data", refs[VAULT_KEY_ENV]) == {"Ref": secret_id}


def test_vault_key_secret_is_generated_and_the_gateway_accepts_its_shape(synth: Synth) -> None:
    _, secret = _vault_secret(synth)
    generator = secret["Properties"]["GenerateSecretString"]
    assert generator["PasswordLength"] >= 48
    assert generator["ExcludePunctuation"] is True
    assert "SecretStringTemplate" not in generator  # the whole string is the material
    # A value of that shape (letters and digits) is key material the gateway derives a key from.
    material = "".join(secrets.choice(string.ascii_letters + string.digits)
                       for _ in range(generator["PasswordLength"]))  # fmt: skip
    env = {**_with_secrets(*_task_environment(synth)), VAULT_KEY_ENV: material}
    config = load_config(PRODUCTION.read_text(), env)
    assert config.phi.vault == "redis"
    assert config.phi.key_bytes is not None
    assert len(config.phi.key_bytes) == 32
    assert config.phi.key_bytes != material.encode()[:32]


def test_vault_key_secret_is_encrypted_with_the_vault_kms_key(synth: Synth) -> None:
    vault_key = _key_id(synth, "phi-vault")
    data_key = _key_id(synth, "data")
    assert vault_key != data_key
    _, secret = _vault_secret(synth)
    assert secret["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [vault_key, "Arn"]}
    key = _resources(synth, "data", "AWS::KMS::Key")[vault_key]["Properties"]
    assert key["EnableKeyRotation"] is True
    # Nothing else at rest uses the vault key: the other secrets stay on the data key.
    stored = _resources(synth, "data", SECRETS_MANAGER_TYPE).values()
    others = [r["Properties"]["KmsKeyId"] for r in stored
              if "PHI vault key material" not in r["Properties"]["Description"]]  # fmt: skip
    assert others
    assert all(k == {"Fn::GetAtt": [data_key, "Arn"]} for k in others)


def test_execution_role_reads_and_decrypts_the_vault_key_secret(synth: Synth) -> None:
    refs = _secret_refs(synth)
    assert refs[VAULT_KEY_ENV] in execution_role_resources(synth, "secretsmanager:GetSecretValue")
    decrypt = [_exported(synth, "data", r) for r in execution_role_resources(synth, "kms:Decrypt")]
    vault_key = {"Fn::GetAtt": [_key_id(synth, "phi-vault"), "Arn"]}
    data_key = {"Fn::GetAtt": [_key_id(synth, "data"), "Arn"]}
    assert sorted(map(str, decrypt)) == sorted(map(str, [data_key, vault_key]))
    # Decrypt only: the execution role neither encrypts nor re-encrypts with either key.
    for action in ("kms:Encrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"):
        assert not execution_role_resources(synth, action), action


def test_task_role_has_no_kms_permission(synth: Synth) -> None:
    statements = _task_role_statements(synth)
    assert statements, "the task role keeps its SageMaker statement"
    actions = [a for s in statements for a in _actions(s)]
    assert not [a for a in actions if a.lower().startswith("kms:")], actions
    assert not [a for a in actions if a.startswith("secretsmanager:")], actions
    # Nor does the vault key's policy name any role of the gateway stack.
    vault_key = _resources(synth, "data", "AWS::KMS::Key")[_key_id(synth, "phi-vault")]
    assert "gateway" not in str(vault_key["Properties"]["KeyPolicy"]).lower()


def test_production_vault_is_redis_with_its_own_prefix() -> None:
    phi = tomllib.loads(PRODUCTION.read_text())["phi"]
    assert phi["vault"] == "redis"
    limits = tomllib.loads(PRODUCTION.read_text())["limits"]
    assert phi.get("key_prefix", "gw:phi:") != limits["key_prefix"]
    assert "vault_key" not in phi  # never in the file: the task sets it from the secret
    assert "redis_url" not in phi
