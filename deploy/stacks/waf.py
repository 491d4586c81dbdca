"""WAF in front of the public ALB (tiers with ``waf``): AWS managed rules and a per-IP rate rule."""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack, aws_kms as kms, aws_logs as logs, aws_wafv2 as wafv2

from deploy.settings import DeployContext
from deploy.stacks.logs import retention

MANAGED_RULE_GROUPS = (
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesKnownBadInputsRuleSet",
    "AWSManagedRulesAmazonIpReputationList",
)
_BODY_SIZE_RULE = "SizeRestrictions_BODY"
"""Chat requests carry long prompts (the gateway itself caps bodies at 20 MiB)."""


def add_waf(stack: Stack, ctx: DeployContext, alb_arn: str, key: kms.IKey) -> wafv2.CfnWebACL:
    """A regional web ACL associated with ``alb_arn``, logging to an encrypted log group."""
    rules = [_managed(name, priority) for priority, name in enumerate(MANAGED_RULE_GROUPS)]
    rules.append(wafv2.CfnWebACL.RuleProperty(
        name="RatePerIp", priority=len(rules), action=wafv2.CfnWebACL.RuleActionProperty(block={}),
        statement=wafv2.CfnWebACL.StatementProperty(
            rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                limit=ctx.settings.waf_requests_per_5min_per_ip, aggregate_key_type="IP")),
        visibility_config=_visibility("RatePerIp"),
    ))  # fmt: skip
    acl = wafv2.CfnWebACL(
        stack, "WebAcl", scope="REGIONAL", default_action=wafv2.CfnWebACL.DefaultActionProperty(
            allow={}),
        rules=rules, visibility_config=_visibility(f"{ctx.prefix}-gateway"),
    )  # fmt: skip
    wafv2.CfnWebACLAssociation(stack, "WebAclAlb", resource_arn=alb_arn,
                               web_acl_arn=acl.attr_arn)  # fmt: skip
    group = logs.LogGroup(stack, "WafLogs", log_group_name=f"aws-waf-logs-{ctx.prefix}",
                          encryption_key=key, retention=retention(ctx))  # fmt: skip
    wafv2.CfnLoggingConfiguration(
        stack, "WafLogging", resource_arn=acl.attr_arn,
        log_destination_configs=[stack.format_arn(
            service="logs", resource="log-group", resource_name=group.log_group_name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME)],
    )  # fmt: skip
    return acl


def _managed(name: str, priority: int) -> wafv2.CfnWebACL.RuleProperty:
    excluded = (
        [wafv2.CfnWebACL.ExcludedRuleProperty(name=_BODY_SIZE_RULE)]
        if name == "AWSManagedRulesCommonRuleSet" else None
    )  # fmt: skip
    return wafv2.CfnWebACL.RuleProperty(
        name=name, priority=priority,
        override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
        statement=wafv2.CfnWebACL.StatementProperty(
            managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                vendor_name="AWS", name=name, excluded_rules=excluded)),
        visibility_config=_visibility(name),
    )  # fmt: skip


def _visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=True
    )
