"""The gateway tasks share their rate-limit counters in the data stack's cache (TLS, AUTH)."""

from __future__ import annotations

from typing import Any

from deploy.settings import CACHE_AUTH_ENV, CACHE_PORT, GATEWAY_SECRET_NAMES
from tests.deploy.conftest import Synth
from tests.deploy.test_stacks import _gateway_container, _one, _resources

CACHE_TYPE = "AWS::ElastiCache::ReplicationGroup"


def _exported(synth: Synth, kind: str, value: Any) -> Any:
    """What ``{"Fn::ImportValue": name}`` resolves to: the exporting stack's output value."""
    assert isinstance(value, dict), value
    assert list(value) == ["Fn::ImportValue"], value
    outputs = synth.templates[kind].to_json()["Outputs"]
    name = value["Fn::ImportValue"]
    found = [o["Value"] for o in outputs.values() if o["Export"]["Name"] == name]
    assert len(found) == 1, value
    return found[0]


def _logical_id(synth: Synth, kind: str, type_: str) -> str:
    found = _resources(synth, kind, type_)
    assert len(found) == 1
    return next(iter(found))


def test_redis_url_is_the_caches_primary_endpoint_over_tls(synth: Synth) -> None:
    env = {e["Name"]: e["Value"] for e in _gateway_container(synth)["Environment"]}
    sep, parts = env["GATEWAY__LIMITS__REDIS_URL"]["Fn::Join"]
    assert sep == ""
    scheme, host, colon, port, path = parts
    assert (scheme, colon, path) == ("rediss://", ":", "/0")
    cache = _logical_id(synth, "data", CACHE_TYPE)
    assert _exported(synth, "data", host) == {"Fn::GetAtt": [cache, "PrimaryEndPoint.Address"]}
    assert _exported(synth, "data", port) == {"Fn::GetAtt": [cache, "PrimaryEndPoint.Port"]}
    assert _one(synth, "data", CACHE_TYPE)["Properties"]["Port"] == CACHE_PORT


def test_replicas_are_workers_times_the_maximum_task_count(synth: Synth) -> None:
    env = {e["Name"]: e["Value"] for e in _gateway_container(synth)["Environment"]}
    workers = int(env["GATEWAY__SERVER__WORKERS"])
    assert workers == max(1, synth.ctx.settings.gateway_cpu // 1024)
    scaling = _one(synth, "gateway", "AWS::ApplicationAutoScaling::ScalableTarget")
    max_tasks = scaling["Properties"]["MaxCapacity"]
    assert max_tasks == synth.ctx.settings.gateway_max_tasks
    assert int(env["GATEWAY__LIMITS__REPLICAS"]) == workers * max_tasks


def test_redis_password_is_the_cache_auth_token_from_secrets_manager(synth: Synth) -> None:
    assert CACHE_AUTH_ENV == "GATEWAY__LIMITS__REDIS_PASSWORD"
    assert CACHE_AUTH_ENV in GATEWAY_SECRET_NAMES
    container = _gateway_container(synth)
    assert CACHE_AUTH_ENV not in {e["Name"] for e in container["Environment"]}
    # No plain value resolves a secret (a dynamic reference would put it in the task definition).
    assert "resolve:secretsmanager" not in str(container["Environment"])
    secrets = {s["Name"]: s["ValueFrom"] for s in container["Secrets"]}
    tokens = [name for name, r in _resources(synth, "data", "AWS::SecretsManager::Secret").items()
              if "AUTH token" in r["Properties"]["Description"]]  # fmt: skip
    assert len(tokens) == 1
    assert _exported(synth, "data", secrets[CACHE_AUTH_ENV]) == {"Ref": tokens[0]}
    # The same secret is the replication group's AUTH token.
    auth = _one(synth, "data", CACHE_TYPE)["Properties"]["AuthToken"]
    assert auth == {"Fn::Join": ["", ["{{resolve:secretsmanager:", {"Ref": tokens[0]},
                                      ":SecretString:::}}"]]}  # fmt: skip
    # The execution role may read it (and nothing grants it to the task role).
    readable = [
        r
        for p in _resources(synth, "gateway", "AWS::IAM::Policy").values()
        if "ExecutionRole" in str(p["Properties"]["Roles"])
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if "secretsmanager:GetSecretValue" in s["Action"]
        for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
    ]
    assert secrets[CACHE_AUTH_ENV] in readable


def test_gateway_tasks_may_reach_the_cache_port(synth: Synth) -> None:
    cache = _one(synth, "data", CACHE_TYPE)["Properties"]
    (cache_sg,) = cache["SecurityGroupIds"]
    cache_sg_id = cache_sg["Fn::GetAtt"][0]
    rules = [
        r["Properties"]
        for r in _resources(synth, "data", "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [cache_sg_id, "GroupId"]}
    ]
    assert len(rules) == 1
    (rule,) = rules
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", CACHE_PORT, CACHE_PORT)
    tasks_sg = _logical_id_of_export(synth, rule["SourceSecurityGroupId"])
    service = _one(synth, "gateway", "AWS::ECS::Service")["Properties"]
    groups = service["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"]
    assert [_logical_id_of_export(synth, g) for g in groups] == [tasks_sg]
    # The tasks' group may send anywhere (it has no egress rule narrowing it).
    network_sg = _resources(synth, "network", "AWS::EC2::SecurityGroup")[tasks_sg]["Properties"]
    assert {"CidrIp": "0.0.0.0/0", "Description": "Allow all outbound traffic by default",
            "IpProtocol": "-1"} in network_sg["SecurityGroupEgress"]  # fmt: skip


def _logical_id_of_export(synth: Synth, value: Any) -> str:
    """The network stack's security group behind an imported ``GroupId``."""
    exported = _exported(synth, "network", value)
    logical_id, attribute = exported["Fn::GetAtt"]
    assert attribute == "GroupId"
    return str(logical_id)
