"""The gateway: Fargate service behind the public ALB, scaling, WAF, alarms, outputs.

Drain budget (``deploy/settings.py``, reliability.md §4): the target group's deregistration delay
equals the longest request the gateway serves, so a leaving task finishes what it accepted; then
SIGTERM, the gateway drains within ``DRAIN_TIMEOUT_S``, well inside the 120 s stop timeout.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import (
    Acknowledgment,
    CfnOutput,
    Duration,
    Fn,
    Stack,
    Token,
    Validations,
    aws_certificatemanager as acm,
    aws_ec2 as ec2,
    aws_ecs as ecs,
    aws_elasticloadbalancingv2 as elbv2,
)
from constructs import Construct

from deploy.settings import (
    ALB_IDLE_TIMEOUT_S,
    CACHE_AUTH_ENV,
    GATEWAY_PORT,
    HEALTH_CHECK_GRACE_S,
    LEDGER_AUTH_ENV,
    LITELLM_API_KEY_ENV,
    MAX_REQUEST_S,
    VAULT_CACHE_AUTH_ENV,
    VAULT_KEY_ENV,
    CacheValues,
    DatabaseValues,
    DeployContext,
    IssuerValues,
    gateway_environment,
)
from deploy.stacks.ai import AIStack
from deploy.stacks.alarms import add_alarms, gateway_metric
from deploy.stacks.auth import AuthStack
from deploy.stacks.data import DataStack
from deploy.stacks.fargate import acknowledge_plain_http, load_balancer
from deploy.stacks.logs import encrypted_log_group
from deploy.stacks.metrics_agent import add_metrics_agent
from deploy.stacks.network import NetworkStack
from deploy.stacks.sagemaker import grant_invoke
from deploy.stacks.waf import add_waf

REPO_ROOT = Path(__file__).resolve().parents[2]
CPU_TARGET_PERCENT = 60
MIGRATE_OVERRIDES = '{"containerOverrides":[{"name":"gateway","command":["migrate"]}]}'
"""``run-task`` overrides: the image's entrypoint is ``gateway``; ``migrate`` replaces ``serve``."""
_HEALTH_COMMAND = (
    'python -c "import urllib.request; '
    f"urllib.request.urlopen('http://127.0.0.1:{GATEWAY_PORT}/healthz', timeout=2)\""
)


class GatewayStack(Stack):
    """The request path: ALB -> gateway tasks -> LiteLLM / SageMaker."""

    def __init__(self, scope: Construct, construct_id: str, *, ctx: DeployContext,
                 network: NetworkStack, data: DataStack, auth: AuthStack, ai: AIStack,
                 image: ecs.ContainerImage | None = None, **kwargs: object) -> None:  # fmt: skip
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        # Declared before any grant: KMS grants to a role in a stack that depends on the key's
        # stack go into the role's policy; otherwise into the key policy, a dependency cycle.
        self.add_stack_dependency(data)
        self._ctx = ctx
        tier = ctx.settings
        task = ecs.FargateTaskDefinition(self, "Task", cpu=tier.gateway_cpu,
                                         memory_limit_mib=tier.gateway_memory_mib)  # fmt: skip
        # The task role invokes the endpoints only: the gateway makes no KMS call (the PHI vault
        # key material reaches it as a secret, through the execution role).
        grant_invoke(ctx, task.task_role)
        cache = CacheValues(host=data.cache.attr_primary_end_point_address,
                            port=data.cache.attr_primary_end_point_port)  # fmt: skip
        endpoint = data.database.cluster_endpoint
        database = DatabaseValues(host=endpoint.hostname, port=Token.as_string(endpoint.port))
        environment = gateway_environment(ctx, litellm_url=ai.url, cache=cache,
                                          database=database, issuers={
            "users": IssuerValues(issuer=auth.users.issuer(self.region),
                                  client_ids=(auth.users.client.user_pool_client_id,)),
            "admins": IssuerValues(issuer=auth.admins.issuer(self.region),
                                   client_ids=(auth.admins.client.user_pool_client_id,)),
        })  # fmt: skip
        task.add_volume(name="tmp")
        cache_auth = data.secret_for(task, data.cache_token)  # limits and vault: one cache
        container = task.add_container(
            "gateway",
            image=image or ecs.ContainerImage.from_asset(str(REPO_ROOT), file="Dockerfile"),
            environment=environment,
            secrets={LITELLM_API_KEY_ENV: data.secret_for(task, data.litellm_key),
                     CACHE_AUTH_ENV: cache_auth,
                     LEDGER_AUTH_ENV: data.secret_for(task, data.ledger_secret, "password"),
                     VAULT_CACHE_AUTH_ENV: cache_auth,
                     VAULT_KEY_ENV: data.secret_for(task, data.vault_secret,
                                                    key=data.vault_key)},
            logging=ecs.LogDrivers.aws_logs(stream_prefix="gateway", log_group=encrypted_log_group(
                self, "Logs", ctx, network.logs_key)),
            port_mappings=[ecs.PortMapping(container_port=GATEWAY_PORT)],
            stop_timeout=Duration.seconds(120),
            readonly_root_filesystem=True,
            user="10001",
            health_check=ecs.HealthCheck(
                command=["CMD-SHELL", _HEALTH_COMMAND], interval=Duration.seconds(15),
                timeout=Duration.seconds(5), retries=3, start_period=Duration.seconds(20)),
        )  # fmt: skip
        scratch = "/tmp"  # noqa: S108 (a volume of this task only; the root filesystem is read-only)
        container.add_mount_points(ecs.MountPoint(container_path=scratch, source_volume="tmp",
                                                  read_only=False))  # fmt: skip
        add_metrics_agent(self, ctx, task, network.logs_key)
        Validations.of(task).acknowledge(
            Acknowledgment(
                id="AwsSolutions-ECS2",
                reason="Non-secret settings (deploy/settings.py gateway_environment); "
                "the LiteLLM key, the cache AUTH token, the ledger password and the PHI vault "
                "key material come from Secrets Manager.",
            ),
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="ecr:GetAuthorizationToken (image pull) has no resource scope.",
            ),
        )
        self.service = ecs.FargateService(
            self, "Service", cluster=network.cluster, task_definition=task,
            desired_count=tier.gateway_min_tasks, security_groups=[network.gateway_tasks_sg],
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            min_healthy_percent=100, max_healthy_percent=200,
            health_check_grace_period=Duration.seconds(HEALTH_CHECK_GRACE_S),
        )  # fmt: skip
        self.alb = load_balancer(self, "Alb", ctx=ctx, vpc=network.vpc, internet_facing=True,
                                 idle_timeout_s=ALB_IDLE_TIMEOUT_S,
                                 access_logs=network.access_logs,
                                 sg=network.gateway_alb_sg)  # fmt: skip
        self.target_group = self._listen(container)
        self._scale(tier.gateway_min_tasks, tier.gateway_max_tasks, tier.open_streams_per_task)
        if tier.waf:
            add_waf(self, ctx, self.alb.load_balancer_arn, network.logs_key)
        add_alarms(self, ctx, self.alb, self.target_group)
        self._outputs(auth)
        self._migrate_output(network, task)

    def _listen(self, container: ecs.ContainerDefinition) -> elbv2.ApplicationTargetGroup:
        ctx = self._ctx
        target_group = elbv2.ApplicationTargetGroup(
            self, "Targets", vpc=self.alb.vpc, port=GATEWAY_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP, target_type=elbv2.TargetType.IP,
            targets=[self.service.load_balancer_target(
                container_name=container.container_name, container_port=GATEWAY_PORT)],
            # /readyz turns 503 while the task drains, so the ALB stops choosing it at once.
            health_check=elbv2.HealthCheck(path="/readyz", healthy_http_codes="200",
                                           interval=Duration.seconds(10),
                                           healthy_threshold_count=2, unhealthy_threshold_count=2),
            deregistration_delay=Duration.seconds(MAX_REQUEST_S),
            load_balancing_algorithm_type=elbv2.TargetGroupLoadBalancingAlgorithmType
            .LEAST_OUTSTANDING_REQUESTS,
        )  # fmt: skip
        if ctx.domain is None:
            listener = self.alb.add_listener("Http", port=80, open=True,
                                             default_target_groups=[target_group])  # fmt: skip
            acknowledge_plain_http(
                listener,
                "dev without a domain: no certificate to serve; "
                "staging and prod require a domain and serve HTTPS only.",
            )
        else:
            certificate = (
                acm.Certificate.from_certificate_arn(self, "Certificate", ctx.certificate_arn)
                if ctx.certificate_arn else
                acm.Certificate(self, "Certificate", domain_name=ctx.domain,
                                validation=acm.CertificateValidation.from_dns())
            )  # fmt: skip
            self.alb.add_listener("Https", port=443, open=True, certificates=[certificate],
                                  ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
                                  default_target_groups=[target_group])  # fmt: skip
            redirect = self.alb.add_redirect(source_port=80, target_port=443)
            Validations.of(redirect).acknowledge(Acknowledgment(
                id="HIPAA.Security-ELBv2ACMCertificateRequired",
                reason="Port 80 only answers with a redirect to HTTPS; it forwards nothing.",
            ))  # fmt: skip
        return target_group

    def _scale(self, min_tasks: int, max_tasks: int, streams_per_task: int) -> None:
        scaling = self.service.auto_scale_task_count(min_capacity=min_tasks,
                                                     max_capacity=max_tasks)  # fmt: skip
        scaling.scale_on_cpu_utilization("Cpu", target_utilization_percent=CPU_TARGET_PERCENT)
        # Request counts under-react to long streams (reliability.md §4): scale on open streams.
        scaling.scale_to_track_custom_metric(
            "OpenStreams", metric=gateway_metric(self._ctx, "gateway_open_streams", "Average"),
            target_value=streams_per_task, scale_in_cooldown=Duration.minutes(5),
        )  # fmt: skip

    def _outputs(self, auth: AuthStack) -> None:
        scheme, host = (
            ("https", self._ctx.domain)
            if self._ctx.domain
            else ("http", self.alb.load_balancer_dns_name)
        )
        CfnOutput(self, "GatewayUrl", value=f"{scheme}://{host}/v1")
        CfnOutput(self, "LoadBalancerDns", value=self.alb.load_balancer_dns_name)
        CfnOutput(self, "UserPoolId", value=auth.users.pool.user_pool_id)
        CfnOutput(self, "UserPoolClientId", value=auth.users.client.user_pool_client_id)
        CfnOutput(self, "AdminPoolId", value=auth.admins.pool.user_pool_id)
        CfnOutput(self, "AdminPoolClientId", value=auth.admins.client.user_pool_client_id)

    def _migrate_output(self, network: NetworkStack, task: ecs.FargateTaskDefinition) -> None:
        """The one-off task that creates or upgrades the ledger's schema (deploy/README.md):
        this task definition, its environment and network, the command ``gateway migrate``."""
        subnets = network.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        CfnOutput(self, "MigrateCommand", description="Run after each deploy: gateway migrate",
                  value=Fn.join("", [
                      "aws ecs run-task --launch-type FARGATE --cluster ",
                      network.cluster.cluster_name, " --task-definition ",
                      task.task_definition_arn,
                      " --network-configuration 'awsvpcConfiguration={subnets=[",
                      Fn.join(",", subnets.subnet_ids), "],securityGroups=[",
                      network.gateway_tasks_sg.security_group_id,
                      "],assignPublicIp=DISABLED}' --overrides '",
                      MIGRATE_OVERRIDES, "'",
                  ]))  # fmt: skip
