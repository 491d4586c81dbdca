"""AI: LiteLLM on Fargate behind an internal ALB, and the tier's SageMaker endpoints.

LiteLLM's model list is generated from the tier table: each alias maps to
``sagemaker_chat/<endpoint>`` of this deployment. Only the gateway tasks may reach the internal ALB.
"""

from __future__ import annotations

import orjson
from aws_cdk import (
    Acknowledgment,
    Aws,
    Duration,
    Stack,
    Validations,
    aws_ec2 as ec2,
    aws_ecs as ecs,
    aws_elasticloadbalancingv2 as elbv2,
)
from constructs import Construct

from deploy.settings import LITELLM_PORT, DeployContext
from deploy.stacks.data import DataStack
from deploy.stacks.fargate import acknowledge_plain_http, load_balancer
from deploy.stacks.logs import encrypted_log_group
from deploy.stacks.network import NetworkStack
from deploy.stacks.sagemaker import add_endpoints, grant_invoke

_START_COMMAND = (
    'printf "%s" "$LITELLM_CONFIG_JSON" > /tmp/config.yaml && exec litellm '
    f"--config /tmp/config.yaml --host 0.0.0.0 --port {LITELLM_PORT} --num_workers 1"
)


def litellm_config(ctx: DeployContext) -> bytes:
    """LiteLLM's config (JSON is YAML): one entry per model of the tier."""
    return orjson.dumps({
        "model_list": [
            {"model_name": m.alias,
             "litellm_params": {"model": f"sagemaker_chat/{ctx.endpoint_name(m)}",
                                "aws_region_name": Aws.REGION}}
            for m in ctx.models
        ],
        "litellm_settings": {"drop_params": True, "request_timeout": 600},
        "general_settings": {"disable_spend_logs": True},
    })  # fmt: skip


class AIStack(Stack):
    """LiteLLM service and SageMaker endpoints."""

    def __init__(self, scope: Construct, construct_id: str, *, ctx: DeployContext,
                 network: NetworkStack, data: DataStack, **kwargs: object) -> None:  # fmt: skip
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        # Declared before any grant: KMS grants to a role in a stack that depends on the key's
        # stack go into the role's policy; otherwise into the key policy, a dependency cycle.
        self.add_stack_dependency(data)
        self.endpoints = add_endpoints(self, ctx, network.vpc)
        tier = ctx.settings
        task = ecs.FargateTaskDefinition(self, "LiteLLMTask", cpu=tier.litellm_cpu,
                                         memory_limit_mib=tier.litellm_memory_mib)  # fmt: skip
        grant_invoke(ctx, task.task_role)
        container = task.add_container(
            "litellm",
            image=ecs.ContainerImage.from_registry(ctx.litellm_image),
            entry_point=["sh", "-c"], command=[_START_COMMAND],
            environment={"LITELLM_CONFIG_JSON": litellm_config(ctx).decode(),
                         "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"},
            secrets={"LITELLM_MASTER_KEY": data.secret_for(task, data.litellm_key)},
            logging=ecs.LogDrivers.aws_logs(
                stream_prefix="litellm",
                log_group=encrypted_log_group(self, "LiteLLMLogs", ctx, network.logs_key)),
            port_mappings=[ecs.PortMapping(container_port=LITELLM_PORT)],
            stop_timeout=Duration.seconds(30),
        )  # fmt: skip
        Validations.of(task).acknowledge(Acknowledgment(
            id="AwsSolutions-ECS2",
            reason="Plain settings only (model list, log level); the master key comes from "
            "Secrets Manager.",
        ))  # fmt: skip
        service_sg = ec2.SecurityGroup(self, "LiteLLMSg", vpc=network.vpc,
                                       description="LiteLLM tasks")  # fmt: skip
        self.service = ecs.FargateService(
            self, "LiteLLM", cluster=network.cluster, task_definition=task,
            desired_count=tier.litellm_tasks, security_groups=[service_sg],
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            min_healthy_percent=100, health_check_grace_period=Duration.seconds(120),
        )  # fmt: skip
        self.alb = load_balancer(self, "LiteLLMAlb", ctx=ctx, vpc=network.vpc,
                                 internet_facing=False, idle_timeout_s=660,
                                 access_logs=network.access_logs)  # fmt: skip
        self.alb.connections.allow_from(network.gateway_tasks_sg, ec2.Port.tcp(80), "gateway")
        listener = self.alb.add_listener("Http", port=80, open=False)
        listener.add_targets(
            "LiteLLM", port=LITELLM_PORT, protocol=elbv2.ApplicationProtocol.HTTP,
            targets=[self.service.load_balancer_target(
                container_name=container.container_name, container_port=LITELLM_PORT)],
            health_check=elbv2.HealthCheck(path="/health/liveliness", healthy_http_codes="200"),
            deregistration_delay=Duration.seconds(60),
        )  # fmt: skip
        acknowledge_plain_http(
            listener, "Internal listener reachable only from the gateway tasks' security group; "
            "TLS inside the VPC would need a private CA. The upstream key is still required.",
        )  # fmt: skip
        self.url = f"http://{self.alb.load_balancer_dns_name}"
