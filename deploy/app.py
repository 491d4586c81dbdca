"""The CDK app: ``cdk synth -c appId=... -c appName=... -c environment=dev -c tier=1``.

``build`` wires the five stacks for a validated context; ``main`` is what ``cdk.json`` runs.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_ecs as ecs
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks

from deploy.settings import ContextError, DeployContext, parse_context
from deploy.stacks.ai import AIStack
from deploy.stacks.auth import AuthStack
from deploy.stacks.data import DataStack
from deploy.stacks.gateway import GatewayStack
from deploy.stacks.network import NetworkStack

CONTEXT_KEYS = ("appId", "appName", "environment", "tier", "domain", "certificateArn",
                "alarmEmail", "litellmImage")  # fmt: skip


FEATURE_FLAGS: dict[str, object] = {
    "@aws-cdk/aws-iam:minimizePolicies": True,
    "@aws-cdk/core:checkSecretUsage": True,
    "@aws-cdk/aws-ec2:restrictDefaultSecurityGroup": True,
    "@aws-cdk/aws-ecs:arnFormatIncludesClusterName": True,
}
"""Feature flags the app is written for (``cdk init`` defaults that matter here)."""


@dataclass(frozen=True, slots=True)
class Deployment:
    """The stacks of one deployment."""

    network: NetworkStack
    data: DataStack
    auth: AuthStack
    ai: AIStack
    gateway: GatewayStack

    @property
    def stacks(self) -> tuple[cdk.Stack, ...]:
        """All stacks, in dependency order."""
        return (self.network, self.data, self.auth, self.ai, self.gateway)


def build(app: cdk.App, ctx: DeployContext, *, env: cdk.Environment,
          image: ecs.ContainerImage | None = None) -> Deployment:  # fmt: skip
    """Add the deployment's stacks to ``app`` (``image`` replaces the Dockerfile build)."""
    name = "".join(part.title() for part in ctx.prefix.split("-"))
    kw: dict[str, object] = {"env": env}
    network = NetworkStack(app, f"{name}Network", ctx=ctx, **kw)
    data = DataStack(app, f"{name}Data", ctx=ctx, network=network, **kw)
    auth = AuthStack(app, f"{name}Auth", ctx=ctx, **kw)
    ai = AIStack(app, f"{name}AI", ctx=ctx, network=network, data=data, **kw)
    gateway = GatewayStack(app, f"{name}Gateway", ctx=ctx, network=network, data=data, auth=auth,
                           ai=ai, image=image, **kw)  # fmt: skip
    deployment = Deployment(network, data, auth, ai, gateway)
    for stack in deployment.stacks:
        cdk.Validations.of(stack).acknowledge(cdk.Acknowledgment(
            id="HIPAA.Security-IAMNoInlinePolicy",
            reason="CDK grants write one policy per role, scoped to this deployment's resources; "
            "shared managed policies would widen, not narrow, what each role may do.",
        ))  # fmt: skip
        cdk.Tags.of(stack).add("app", ctx.app_id)
        cdk.Tags.of(stack).add("appName", ctx.app_name)
        cdk.Tags.of(stack).add("environment", ctx.environment)
        cdk.Tags.of(stack).add("tier", str(ctx.tier))
    return deployment


def main() -> int:
    """Synthesize the app from the CDK context; cdk-nag's packs run as validation plugins."""
    app = cdk.App(context=FEATURE_FLAGS)
    try:
        ctx = parse_context({key: app.node.try_get_context(key) for key in CONTEXT_KEYS})
    except ContextError as exc:
        print(exc, file=sys.stderr)  # noqa: T201
        return 2
    # The CDK CLI sets these from the caller's credentials and profile.
    env = cdk.Environment(
        account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")
    )
    build(app, ctx, env=env)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app), HIPAASecurityChecks(app))
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
