"""The gateway tasks write usage to the data stack's Aurora ledger (TLS, password from the
cluster's generated secret), spill to a writable volume, and can run ``gateway migrate``."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from deploy.settings import (
    DATABASE_PORT,
    GATEWAY_SECRET_NAMES,
    LEDGER_AUTH_ENV,
    LEDGER_DATABASE,
    LEDGER_USER,
    STOP_TIMEOUT_S,
)
from deploy.stacks.gateway import MIGRATE_OVERRIDES
from tests.deploy.conftest import Synth
from tests.deploy.test_limit_store import _exported, _logical_id
from tests.deploy.test_stacks import _gateway_container, _one, _resources

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ROOT / "config" / "gateway.production.toml"
CLUSTER_TYPE = "AWS::RDS::DBCluster"


def _production() -> dict[str, Any]:
    return tomllib.loads(PRODUCTION.read_text())


def _environment(synth: Synth) -> dict[str, Any]:
    return {e["Name"]: e["Value"] for e in _gateway_container(synth)["Environment"]}


def test_dsn_is_the_clusters_endpoint_and_port_over_tls(synth: Synth) -> None:
    sep, parts = _environment(synth)["GATEWAY__METERING__POSTGRES_DSN"]["Fn::Join"]
    assert sep == ""
    scheme_user, host, colon, port, path = parts
    cluster_id = _logical_id(synth, "data", CLUSTER_TYPE)
    cluster = _one(synth, "data", CLUSTER_TYPE)["Properties"]
    assert scheme_user == f"postgresql://{cluster['MasterUsername']}@"
    assert cluster["MasterUsername"] == LEDGER_USER
    assert colon == ":"
    assert path == f"/{cluster['DatabaseName']}?sslmode=require"
    assert cluster["DatabaseName"] == LEDGER_DATABASE
    assert _exported(synth, "data", host) == {"Fn::GetAtt": [cluster_id, "Endpoint.Address"]}
    assert _exported(synth, "data", port) == {"Fn::GetAtt": [cluster_id, "Endpoint.Port"]}
    assert cluster["Port"] == DATABASE_PORT
    assert cluster["StorageEncrypted"] is True


def test_password_is_the_clusters_secret_password_field(synth: Synth) -> None:
    assert LEDGER_AUTH_ENV == "GATEWAY__METERING__POSTGRES_PASSWORD"
    assert LEDGER_AUTH_ENV in GATEWAY_SECRET_NAMES
    container = _gateway_container(synth)
    assert LEDGER_AUTH_ENV not in {e["Name"] for e in container["Environment"]}
    assert "resolve:secretsmanager" not in str(container["Environment"])
    secrets = {s["Name"]: s["ValueFrom"] for s in container["Secrets"]}
    # ECS reads one JSON key of the secret: "<secret ARN>:password::".
    sep, (arn, suffix) = secrets[LEDGER_AUTH_ENV]["Fn::Join"]
    assert (sep, suffix) == ("", ":password::")
    attachment = _exported(synth, "data", arn)
    attachments = _resources(synth, "data", "AWS::SecretsManager::SecretTargetAttachment")
    assert list(attachment) == ["Ref"]
    attached = attachments[attachment["Ref"]]["Properties"]
    cluster_id = _logical_id(synth, "data", CLUSTER_TYPE)
    assert attached["TargetId"] == {"Ref": cluster_id}
    secret = attached["SecretId"]
    # The same secret (and field) is the cluster's master password.
    cluster = _one(synth, "data", CLUSTER_TYPE)["Properties"]
    assert cluster["MasterUserPassword"] == {"Fn::Join": ["", [
        "{{resolve:secretsmanager:", secret, ":SecretString:password::}}"]]}  # fmt: skip
    generated = _resources(synth, "data", "AWS::SecretsManager::Secret")[secret["Ref"]]
    template = json.loads(generated["Properties"]["GenerateSecretString"]["SecretStringTemplate"])
    assert template == {"username": LEDGER_USER}
    # The execution role may read it and decrypt it with the data key.
    assert arn in execution_role_resources(synth, "secretsmanager:GetSecretValue")
    data_key = _logical_id_of_key(generated)
    assert data_key in _resources(synth, "data", "AWS::KMS::Key")
    decrypt = [_exported(synth, "data", r) for r in execution_role_resources(synth, "kms:Decrypt")]
    assert {"Fn::GetAtt": [data_key, "Arn"]} in decrypt


def execution_role_resources(synth: Synth, action: str) -> list[Any]:
    """Every resource the gateway task's execution role may use ``action`` on."""
    statements = [
        s
        for p in _resources(synth, "gateway", "AWS::IAM::Policy").values()
        if "ExecutionRole" in str(p["Properties"]["Roles"])
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    return [
        r
        for s in statements
        if action in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
        for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
    ]


def _logical_id_of_key(secret: dict[str, Any]) -> str:
    key = secret["Properties"]["KmsKeyId"]
    assert list(key) == ["Fn::GetAtt"], key
    return str(key["Fn::GetAtt"][0])


def test_gateway_tasks_may_reach_the_database_port(synth: Synth) -> None:
    cluster = _one(synth, "data", CLUSTER_TYPE)["Properties"]
    (database_sg,) = cluster["VpcSecurityGroupIds"]
    group = {"Fn::GetAtt": [database_sg["Fn::GetAtt"][0], "GroupId"]}
    assert database_sg == group
    service = _one(synth, "gateway", "AWS::ECS::Service")["Properties"]
    (tasks_sg,) = service["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"]
    rules = [
        r["Properties"]
        for r in _resources(synth, "data", "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == group
        and r["Properties"]["SourceSecurityGroupId"] == tasks_sg
    ]
    assert len(rules) == 1
    (rule,) = rules
    ports = (rule["IpProtocol"], rule["FromPort"], rule["ToPort"])
    assert ports == ("tcp", DATABASE_PORT, DATABASE_PORT)
    # The tasks' group lets the connection out.
    tasks_group_id = _exported(synth, "network", tasks_sg)["Fn::GetAtt"][0]
    tasks_group = _resources(synth, "network", "AWS::EC2::SecurityGroup")[tasks_group_id]
    egress = tasks_group["Properties"]["SecurityGroupEgress"]
    assert {"CidrIp": "0.0.0.0/0", "Description": "Allow all outbound traffic by default",
            "IpProtocol": "-1"} in egress  # fmt: skip


def test_spill_dir_is_on_a_writable_volume_of_the_task(synth: Synth) -> None:
    container = _gateway_container(synth)
    assert container["ReadonlyRootFilesystem"] is True
    spill_dir = _production()["metering"]["spill_dir"]
    volumes = {v["Name"] for v in _one(synth, "gateway", "AWS::ECS::TaskDefinition")[
        "Properties"]["Volumes"]}  # fmt: skip
    writable = [
        m["ContainerPath"]
        for m in container["MountPoints"]
        if m["ReadOnly"] is False and m["SourceVolume"] in volumes
    ]
    assert any(Path(spill_dir).is_relative_to(path) for path in writable), (spill_dir, writable)


def test_request_and_ledger_drain_fit_the_stop_timeout(synth: Synth) -> None:
    container = _gateway_container(synth)
    server_drain = float(_environment(synth)["GATEWAY__SERVER__DRAIN_TIMEOUT_S"])
    metering = _production()["metering"]
    assert metering["sink"] == "postgres"
    ledger_drain = float(metering["drain_timeout_s"])
    # both drains, aiohttp's 5 s shutdown, worker exit margin
    assert server_drain + ledger_drain + 5 + 10 <= container["StopTimeout"] == STOP_TIMEOUT_S
    assert ledger_drain >= 2 * float(metering["command_timeout_s"])  # at least two batches


def test_migrate_command_runs_this_task_definition_in_the_services_network(synth: Synth) -> None:
    outputs = synth.templates["gateway"].to_json()["Outputs"]
    sep, parts = outputs["MigrateCommand"]["Value"]["Fn::Join"]
    assert sep == ""
    task_id = _logical_id(synth, "gateway", "AWS::ECS::TaskDefinition")
    assert {"Ref": task_id} in parts
    service = _one(synth, "gateway", "AWS::ECS::Service")["Properties"]
    network = service["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert {"Fn::Join": [",", network["Subnets"]]} in parts
    assert network["SecurityGroups"][0] in parts
    assert service["Cluster"] in parts
    text = "".join(p for p in parts if isinstance(p, str))
    assert "aws ecs run-task --launch-type FARGATE" in text
    assert f"--overrides '{MIGRATE_OVERRIDES}'" in text
    (override,) = json.loads(MIGRATE_OVERRIDES)["containerOverrides"]
    assert override["name"] == _gateway_container(synth)["Name"]
    # The image's entrypoint is the gateway command, so ["migrate"] runs `gateway migrate`.
    entrypoint = re.search(r"^ENTRYPOINT (.+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert entrypoint is not None
    assert json.loads(entrypoint.group(1)) == ["gateway"]
    assert override["command"] == ["migrate"]
