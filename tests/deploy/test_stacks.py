"""Properties of the synthesized stacks, for every tier and environment."""

from __future__ import annotations

import itertools
from typing import Any

from deploy.settings import (
    ALB_IDLE_TIMEOUT_S,
    CACHE_PORT,
    LOG_RETENTION_DAYS,
    MAX_REQUEST_S,
    METRICS_NAMESPACE,
    STOP_TIMEOUT_S,
)
from tests.deploy.conftest import ASSET_COMBINATION, Synth


def _resources(synth: Synth, kind: str, type_: str) -> dict[str, dict[str, Any]]:
    found = synth.templates[kind].find_resources(type_)
    return {name: dict(resource) for name, resource in found.items()}


def _one(synth: Synth, kind: str, type_: str) -> dict[str, Any]:
    found = _resources(synth, kind, type_)
    assert len(found) == 1, f"{kind}: expected one {type_}, found {len(found)}"
    return next(iter(found.values()))


def _attributes(lb_or_tg: dict[str, Any], key: str) -> dict[str, str]:
    attrs = lb_or_tg["Properties"][key]
    return {a["Key"]: a["Value"] for a in attrs}


def _gateway_container(synth: Synth) -> dict[str, Any]:
    task = _one(synth, "gateway", "AWS::ECS::TaskDefinition")
    containers: dict[str, dict[str, Any]] = {
        c["Name"]: c for c in task["Properties"]["ContainerDefinitions"]
    }
    return containers["gateway"]


def _public_alb(synth: Synth) -> dict[str, Any]:
    return _one(synth, "gateway", "AWS::ElasticLoadBalancingV2::LoadBalancer")


def test_alb_idle_timeout_outlasts_the_longest_request(synth: Synth) -> None:
    attrs = _attributes(_public_alb(synth), "LoadBalancerAttributes")
    idle = int(attrs["idle_timeout.timeout_seconds"])
    assert idle == ALB_IDLE_TIMEOUT_S
    # a non-streamed completion sends nothing until done; aiohttp's keep-alive (3630 s) is longer
    assert MAX_REQUEST_S < idle < 3630
    assert attrs["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert attrs["access_logs.s3.enabled"] == "true"


def test_stop_timeout_and_drain_budget(synth: Synth) -> None:
    container = _gateway_container(synth)
    assert container["StopTimeout"] == STOP_TIMEOUT_S == 120
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    drain = float(env["GATEWAY__SERVER__DRAIN_TIMEOUT_S"])
    assert drain + 5 + 10 <= STOP_TIMEOUT_S  # drain, aiohttp's 5 s shutdown, worker exit margin
    tg = _one(synth, "gateway", "AWS::ElasticLoadBalancingV2::TargetGroup")
    attrs = _attributes(tg, "TargetGroupAttributes")
    assert int(attrs["deregistration_delay.timeout_seconds"]) == MAX_REQUEST_S
    assert float(env["GATEWAY__UPSTREAMS__LITELLM__TOTAL_TIMEOUT_S"]) == MAX_REQUEST_S
    assert tg["Properties"]["HealthCheckPath"] == "/readyz"


def test_gateway_container_runs_as_non_root_with_health_check(synth: Synth) -> None:
    container = _gateway_container(synth)
    assert container["User"] == "10001"
    assert container["ReadonlyRootFilesystem"] is True
    assert "/healthz" in " ".join(container["HealthCheck"]["Command"])
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"


def test_service_rolls_with_circuit_breaker(synth: Synth) -> None:
    service = _one(synth, "gateway", "AWS::ECS::Service")["Properties"]
    config = service["DeploymentConfiguration"]
    assert config["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
    assert config["MinimumHealthyPercent"] == 100
    assert service["DesiredCount"] == synth.ctx.settings.gateway_min_tasks


def test_task_role_invokes_only_this_deployments_endpoints(synth: Synth) -> None:
    endpoints = _resources(synth, "ai", "AWS::SageMaker::Endpoint")
    names = sorted(e["Properties"]["EndpointName"] for e in endpoints.values())
    assert names == sorted(synth.ctx.endpoint_name(m) for m in synth.ctx.models)
    for kind in ("gateway", "ai"):
        invoke = [
            s
            for p in _resources(synth, kind, "AWS::IAM::Policy").values()
            for s in p["Properties"]["PolicyDocument"]["Statement"]
            if any(str(a).startswith("sagemaker:") for a in _as_list(s["Action"]))
        ]
        assert invoke, f"{kind}: no SageMaker statement"
        for statement in invoke:
            arns = sorted(_render(r) for r in _as_list(statement["Resource"]))
            assert arns == sorted(f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{n}"
                                  for n in names), arns  # fmt: skip
            assert set(_as_list(statement["Action"])) == {
                "sagemaker:InvokeEndpoint",
                "sagemaker:InvokeEndpointWithResponseStream",
            }


def test_no_public_database_and_encrypted_at_rest(synth: Synth) -> None:
    cluster = _one(synth, "data", "AWS::RDS::DBCluster")["Properties"]
    assert cluster["StorageEncrypted"] is True
    assert cluster["DeletionProtection"] is synth.ctx.is_prod
    for instance in _resources(synth, "data", "AWS::RDS::DBInstance").values():
        assert instance["Properties"].get("PubliclyAccessible") is False
    assert len(_resources(synth, "data", "AWS::RDS::DBInstance")) == (
        1 + synth.ctx.settings.database_readers
    )
    # no security group of the data stack admits the internet
    for rule in _resources(synth, "data", "AWS::EC2::SecurityGroupIngress").values():
        assert "CidrIp" not in rule["Properties"]


def test_cache_requires_tls_and_auth(synth: Synth) -> None:
    cache = _one(synth, "data", "AWS::ElastiCache::ReplicationGroup")["Properties"]
    assert cache["TransitEncryptionEnabled"] is True
    assert cache["TransitEncryptionMode"] == "required"
    assert cache["AtRestEncryptionEnabled"] is True
    assert "resolve:secretsmanager" in _render(cache["AuthToken"])
    assert cache["Port"] == CACHE_PORT
    assert cache["NumCacheClusters"] == synth.ctx.settings.cache_nodes
    assert cache["MultiAZEnabled"] is (synth.ctx.settings.cache_nodes > 1)


def test_every_log_group_is_encrypted_with_the_environments_retention(synth: Synth) -> None:
    days = LOG_RETENTION_DAYS[synth.ctx.environment]
    groups = [g for kind in synth.templates
              for g in _resources(synth, kind, "AWS::Logs::LogGroup").values()]  # fmt: skip
    assert len(groups) >= 4  # flow logs, gateway, metrics agent, LiteLLM
    for group in groups:
        assert group["Properties"]["RetentionInDays"] == days
        assert "KmsKeyId" in group["Properties"]


def test_scaling_on_cpu_and_open_streams(synth: Synth) -> None:
    target = [
        t
        for t in _resources(
            synth, "gateway", "AWS::ApplicationAutoScaling::ScalableTarget"
        ).values()
    ]
    assert len(target) == 1
    assert target[0]["Properties"]["MinCapacity"] == synth.ctx.settings.gateway_min_tasks
    assert target[0]["Properties"]["MaxCapacity"] == synth.ctx.settings.gateway_max_tasks
    policies = [
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        for p in _resources(synth, "gateway", "AWS::ApplicationAutoScaling::ScalingPolicy").values()
    ]
    cpu = [p for p in policies if "PredefinedMetricSpecification" in p]
    assert cpu[0]["PredefinedMetricSpecification"]["PredefinedMetricType"] == (
        "ECSServiceAverageCPUUtilization"
    )
    streams = [p for p in policies if "CustomizedMetricSpecification" in p]
    spec = streams[0]["CustomizedMetricSpecification"]
    assert (spec["MetricName"], spec["Namespace"]) == ("gateway_open_streams", METRICS_NAMESPACE)
    assert streams[0]["TargetValue"] == synth.ctx.settings.open_streams_per_task
    endpoint_targets = _resources(synth, "ai", "AWS::ApplicationAutoScaling::ScalableTarget")
    assert len(endpoint_targets) == len(synth.ctx.models)


def test_waf_by_tier(synth: Synth) -> None:
    acls = _resources(synth, "gateway", "AWS::WAFv2::WebACL")
    associations = _resources(synth, "gateway", "AWS::WAFv2::WebACLAssociation")
    if not synth.ctx.settings.waf:
        assert acls == {}
        assert associations == {}
        return
    acl = next(iter(acls.values()))["Properties"]
    names = {r["Name"] for r in acl["Rules"]}
    assert {"AWSManagedRulesCommonRuleSet", "RatePerIp"} <= names
    assert len(associations) == 1
    assert len(_resources(synth, "gateway", "AWS::WAFv2::LoggingConfiguration")) == 1


def test_alarms_notify_the_topic(synth: Synth) -> None:
    alarms = _resources(synth, "gateway", "AWS::CloudWatch::Alarm")
    descriptions = " ".join(a["Properties"]["AlarmDescription"] for a in alarms.values())
    for what in ("5xx", "p99", "429", "ledger", "rate limiter"):
        assert what in descriptions
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"], "an alarm without an action"
    topic = _one(synth, "gateway", "AWS::SNS::Topic")["Properties"]
    assert "KmsMasterKeyId" in topic


def test_https_with_a_domain_plain_http_only_in_dev_without_one(synth: Synth) -> None:
    listeners = [
        lst["Properties"]
        for lst in _resources(synth, "gateway", "AWS::ElasticLoadBalancingV2::Listener").values()
    ]
    protocols = sorted(lst["Protocol"] for lst in listeners)
    if synth.ctx.domain is None:
        assert synth.ctx.environment == "dev"
        assert protocols == ["HTTP"]
    else:
        assert protocols == ["HTTP", "HTTPS"]
        redirect = next(lst for lst in listeners if lst["Protocol"] == "HTTP")
        assert redirect["DefaultActions"][0]["Type"] == "redirect"


def test_cognito_clients_cannot_write_tenant_attributes(synth: Synth) -> None:
    pools = _resources(synth, "auth", "AWS::Cognito::UserPool")
    assert len(pools) == 2
    for client in _resources(synth, "auth", "AWS::Cognito::UserPoolClient").values():
        props = client["Properties"]
        assert not any(a.startswith("custom:") for a in props["WriteAttributes"])
        assert "custom:tenantId" in props["ReadAttributes"]
        assert props["GenerateSecret"] is False
    groups = {
        g["Properties"]["GroupName"]
        for g in _resources(synth, "auth", "AWS::Cognito::UserPoolGroup").values()
    }
    assert groups == {"super_admin", "admin"}


def test_image_is_built_from_the_dockerfile_when_not_given(synth: Synth) -> None:
    image = _gateway_container(synth)["Image"]
    built = "cdk-hnb659fds-container-assets" in _render(image)
    assert built is ((synth.ctx.tier, synth.ctx.environment) == ASSET_COMBINATION)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _render(value: Any) -> str:
    """A template value as text; intrinsics other than Join and pseudo parameters become tokens."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return str(sep).join(_render(p) for p in parts)
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return str(sub if isinstance(sub, str) else sub[0])
    if isinstance(value, dict) and "Ref" in value:
        return {"AWS::Partition": "aws", "AWS::Region": "us-east-1",
                "AWS::AccountId": "123456789012", "AWS::URLSuffix": "amazonaws.com"}.get(
            value["Ref"], _token())  # fmt: skip
    return _token()


_TOKENS = itertools.count(1)


def _token() -> str:
    """A distinct placeholder per unresolved intrinsic (two pools must not look alike)."""
    return f"token{next(_TOKENS)}"
