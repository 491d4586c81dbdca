"""ALBs shared by the Fargate services (gateway, LiteLLM), and their acknowledgments."""

from __future__ import annotations

from aws_cdk import (
    Acknowledgment,
    Duration,
    Validations,
    aws_ec2 as ec2,
    aws_elasticloadbalancingv2 as elbv2,
    aws_s3 as s3,
)
from constructs import Construct

from deploy.settings import DeployContext


def load_balancer(scope: Construct, construct_id: str, *, ctx: DeployContext, vpc: ec2.IVpc,
                  internet_facing: bool, idle_timeout_s: int,
                  access_logs: s3.IBucket,
                  sg: ec2.ISecurityGroup | None = None,
                  ) -> elbv2.ApplicationLoadBalancer:  # fmt: skip
    """An ALB that drops invalid headers, logs access and is protected from deletion in prod."""
    sg = sg or ec2.SecurityGroup(scope, f"{construct_id}Sg", vpc=vpc, allow_all_outbound=False,
                                 description=f"{construct_id} load balancer")  # fmt: skip
    alb = elbv2.ApplicationLoadBalancer(
        scope, construct_id, vpc=vpc, internet_facing=internet_facing, security_group=sg,
        vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC if internet_facing
                                        else ec2.SubnetType.PRIVATE_WITH_EGRESS),
        idle_timeout=Duration.seconds(idle_timeout_s), drop_invalid_header_fields=True,
        deletion_protection=ctx.is_prod,
    )  # fmt: skip
    alb.log_access_logs(access_logs, prefix=f"{ctx.prefix}/{construct_id.lower()}")
    if not ctx.is_prod:
        Validations.of(alb).acknowledge(Acknowledgment(
            id="HIPAA.Security-ELBDeletionProtectionEnabled",
            reason=f"{ctx.environment} load balancers are disposable; prod enables protection.",
        ))  # fmt: skip
    return alb


def acknowledge_plain_http(listener: Construct, reason: str) -> None:
    """Acknowledge the findings of an HTTP (not HTTPS) listener, with ``reason``."""
    Validations.of(listener).acknowledge(
        Acknowledgment(id="HIPAA.Security-ALBHttpToHttpsRedirection", reason=reason),
        Acknowledgment(id="HIPAA.Security-ELBv2ACMCertificateRequired", reason=reason),
    )
