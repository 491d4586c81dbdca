"""The gateway's alarms, published to an encrypted SNS topic.

ALB metrics cover the 5xx rate and p99 latency; the gateway's own metrics (scraped from
``/metrics`` by the CloudWatch agent sidecar into ``METRICS_NAMESPACE``) cover throttles, open
streams, the usage ledger (backlog in memory, unreachable database) and the limiter's fallback.
Missing data is not breaching (a worker publishes nothing before its first scrape).
"""

from __future__ import annotations

from aws_cdk import (
    Duration,
    Stack,
    aws_cloudwatch as cloudwatch,
    aws_cloudwatch_actions as actions,
    aws_elasticloadbalancingv2 as elbv2,
    aws_iam as iam,
    aws_kms as kms,
    aws_sns as sns,
    aws_sns_subscriptions as subscriptions,
)

from deploy.settings import METRICS_NAMESPACE, DeployContext

FIVE_MINUTES = Duration.minutes(5)


def gateway_metric(ctx: DeployContext, name: str, statistic: str, **dims: str) -> cloudwatch.Metric:
    """A metric the sidecar publishes from the gateway's ``/metrics``."""
    return cloudwatch.Metric(
        namespace=METRICS_NAMESPACE, metric_name=name, statistic=statistic,
        period=Duration.minutes(1),
        dimensions_map={"ServiceName": f"{ctx.prefix}-gateway", **dims},
    )  # fmt: skip


def add_alarms(stack: Stack, ctx: DeployContext, alb: elbv2.ApplicationLoadBalancer,
               target_group: elbv2.ApplicationTargetGroup) -> sns.Topic:  # fmt: skip
    """The alarm topic and the gateway's alarms."""
    key = kms.Key(stack, "AlarmsKey", enable_key_rotation=True, description="Alarm topic")
    key.grant(iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt",
              "kms:GenerateDataKey*")  # fmt: skip
    topic = sns.Topic(stack, "Alarms", master_key=key, enforce_ssl=True,
                      topic_name=f"{ctx.prefix}-gateway-alarms")  # fmt: skip
    if ctx.alarm_email:
        topic.add_subscription(subscriptions.EmailSubscription(ctx.alarm_email))
    lb = alb.metrics
    errors = cloudwatch.MathExpression(
        expression="100 * (target5xx + elb5xx) / MAX([requests, 1])",
        using_metrics={
            "target5xx": target_group.metrics.http_code_target(
                elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=FIVE_MINUTES),
            "elb5xx": lb.http_code_elb(elbv2.HttpCodeElb.ELB_5XX_COUNT, period=FIVE_MINUTES),
            "requests": lb.request_count(period=FIVE_MINUTES),
        },
        period=FIVE_MINUTES, label="5xx %",
    )  # fmt: skip
    alarms: dict[str, tuple[cloudwatch.IMetric, float, str]] = {
        "Http5xxRate": (errors, 1.0, "5xx responses above 1 % of requests"),
        "LatencyP99": (
            target_group.metrics.target_response_time(statistic="p99", period=FIVE_MINUTES),
            10.0,
            "p99 time to response headers above 10 s",
        ),
        "Throttles": (
            gateway_metric(ctx, "gateway_requests_total", "Sum", status="429"),
            100.0,
            "more than 100 requests per minute refused with 429",
        ),
        "LedgerBacklog": (
            gateway_metric(ctx, "gateway_ledger_queued_records", "Maximum"),
            1000.0,
            "usage records waiting in memory for the ledger",
        ),
        "LedgerDown": (
            gateway_metric(ctx, "gateway_ledger_degraded", "Maximum"),
            0.0,
            "the usage ledger database is unreachable (records spill to local files)",
        ),
        "LimiterFallback": (
            gateway_metric(ctx, "gateway_ratelimit_degraded", "Maximum"),
            0.0,
            "the rate limiter runs on its local fallback (cache unreachable)",
        ),
    }
    for name, (metric, threshold, description) in alarms.items():
        alarm = cloudwatch.Alarm(
            stack, name, metric=metric, threshold=threshold, evaluation_periods=3,
            datapoints_to_alarm=2, alarm_description=f"{ctx.prefix}: {description}",
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )  # fmt: skip
        alarm.add_alarm_action(actions.SnsAction(topic))
    return topic
