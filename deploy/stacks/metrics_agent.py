"""The CloudWatch agent sidecar: scrapes the gateway's ``/metrics`` into CloudWatch (EMF).

It publishes ``gateway_open_streams`` (the scaling metric) and ``gateway_requests_total`` by
status (throttles), the ledger's backlog and outage gauges and the limiter's fallback gauge under
``METRICS_NAMESPACE`` with the dimension ``ServiceName`` (``tests/deploy`` checks that every name
exists in ``gateway.telemetry``).
"""

from __future__ import annotations

import orjson
from aws_cdk import Stack, aws_ecs as ecs, aws_kms as kms

from deploy.settings import (
    CLOUDWATCH_AGENT_IMAGE,
    GATEWAY_PORT,
    METRICS_NAMESPACE,
    DeployContext,
)
from deploy.stacks.logs import encrypted_log_group

PUBLISHED_METRICS = (
    "gateway_open_streams",
    "gateway_requests_total",
    "gateway_ledger_queued_records",
    "gateway_ledger_degraded",
    "gateway_ratelimit_degraded",
)


def _prometheus_config(service: str) -> str:
    # YAML; JSON is YAML.
    return orjson.dumps({
        "global": {"scrape_interval": "30s", "scrape_timeout": "10s"},
        "scrape_configs": [{
            "job_name": "gateway",
            "static_configs": [{"targets": [f"localhost:{GATEWAY_PORT}"],
                                "labels": {"ServiceName": service}}],
        }],
    }).decode()  # fmt: skip


def _agent_config(service: str, log_group: str) -> str:
    declarations = [
        {"source_labels": ["job"], "label_matcher": "^gateway$",
         "dimensions": [["ServiceName"]],
         "metric_selectors": [f"^{m}$" for m in PUBLISHED_METRICS
                              if m != "gateway_requests_total"]},
        {"source_labels": ["job"], "label_matcher": "^gateway$",
         "dimensions": [["ServiceName", "status"]],
         "metric_selectors": ["^gateway_requests_total$"]},
    ]  # fmt: skip
    return orjson.dumps({
        "logs": {
            "metrics_collected": {"prometheus": {
                "log_group_name": log_group,
                "prometheus_config_path": "env:PROMETHEUS_CONFIG_CONTENT",
                "emf_processor": {"metric_namespace": METRICS_NAMESPACE,
                                  "metric_declaration": declarations},
            }},
            "force_flush_interval": 15,
        },
    }).decode()  # fmt: skip


def add_metrics_agent(
    stack: Stack, ctx: DeployContext, task: ecs.FargateTaskDefinition, key: kms.IKey
) -> ecs.ContainerDefinition:
    """Add the sidecar to ``task``; it may write only to its own (encrypted) log group."""
    service = f"{ctx.prefix}-gateway"
    emf_logs = encrypted_log_group(stack, "MetricsLogs", ctx, key)
    emf_logs.grant_write(task.task_role)
    return task.add_container(
        "metrics-agent",
        image=ecs.ContainerImage.from_registry(CLOUDWATCH_AGENT_IMAGE),
        essential=False,
        memory_reservation_mib=64,
        environment={
            "CW_CONFIG_CONTENT": _agent_config(service, emf_logs.log_group_name),
            "PROMETHEUS_CONFIG_CONTENT": _prometheus_config(service),
        },
        logging=ecs.LogDrivers.aws_logs(stream_prefix="metrics-agent", log_group=emf_logs),
        readonly_root_filesystem=False,
    )
