"""Log groups: KMS-encrypted, with the environment's retention, shared by every stack."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, aws_iam as iam, aws_kms as kms, aws_logs as logs
from constructs import Construct

from deploy.settings import LOG_RETENTION_DAYS, DeployContext

_RETENTION = {30: logs.RetentionDays.ONE_MONTH, 90: logs.RetentionDays.THREE_MONTHS,
              365: logs.RetentionDays.ONE_YEAR}  # fmt: skip
"""The values of ``LOG_RETENTION_DAYS`` (CDK's enum is named, not numbered)."""


def retention(ctx: DeployContext) -> logs.RetentionDays:
    """The retention of every log group of this environment."""
    return _RETENTION[LOG_RETENTION_DAYS[ctx.environment]]


def allow_logs_service(key: kms.IKey, stack_region: str) -> None:
    """Let CloudWatch Logs of this region use ``key`` (required for encrypted log groups)."""
    key.add_to_resource_policy(iam.PolicyStatement(
        principals=[iam.ServicePrincipal(f"logs.{stack_region}.amazonaws.com")],
        actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                 "kms:Describe*"],
        resources=["*"],  # a key policy's resource is always the key itself
    ))  # fmt: skip


def encrypted_log_group(
    scope: Construct, construct_id: str, ctx: DeployContext, key: kms.IKey
) -> logs.LogGroup:
    """A log group encrypted with ``key``, kept for the environment's retention."""
    return logs.LogGroup(
        scope, construct_id,
        encryption_key=key,
        retention=retention(ctx),
        removal_policy=RemovalPolicy.RETAIN if ctx.is_prod else RemovalPolicy.DESTROY,
    )  # fmt: skip
