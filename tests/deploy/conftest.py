"""Synthesizes the CDK app once per (tier, environment), offline, and runs cdk-nag on it.

The apps are cached for the session, so every test module reuses the same synthesis; setup times
show in pytest's ``--durations`` report.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from functools import cache

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk
from aws_cdk import aws_ecs as ecs
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks

from deploy.app import FEATURE_FLAGS, Deployment, build
from deploy.settings import ENVIRONMENTS, TIERS, DeployContext, parse_context

ACCOUNT, REGION = "123456789012", "us-east-1"
AZ_CONTEXT = {f"availability-zones:account={ACCOUNT}:region={REGION}":
              ["us-east-1a", "us-east-1b", "us-east-1c"]}  # fmt: skip
COMBINATIONS = [(tier, env) for env in ENVIRONMENTS for tier in TIERS]
ASSET_COMBINATION = (1, "dev")
"""The one synthesis that builds the gateway image from the Dockerfile (the others use a fixed
image: the asset copy adds ~2 s and tests nothing new)."""


@dataclass(frozen=True)
class Synth:
    """One synthesized deployment."""

    ctx: DeployContext
    deployment: Deployment
    templates: dict[str, Template]
    """By stack kind: network, data, auth, ai, gateway."""
    findings: list[tuple[str, str]]
    """Unacknowledged cdk-nag findings: (rule, construct path)."""
    synth_s: float
    nag_s: float


def make_context(tier: int, environment: str) -> DeployContext:
    """The context the tests deploy with (staging and prod need a domain)."""
    domain = None if environment == "dev" else f"gateway.{environment}.example.com"
    return parse_context({"appId": "phi", "appName": "chat", "environment": environment,
                          "tier": str(tier), "domain": domain})  # fmt: skip


def nag_findings(app: cdk.App) -> list[tuple[str, str]]:
    """Unacknowledged findings of the AwsSolutions and HIPAA Security packs."""
    found = []
    for pack in (AwsSolutionsChecks(app), HIPAASecurityChecks(app)):
        report = pack.validate_scope(app)
        for violation in report.violations:
            found += [(violation.rule_name, r.construct_path or "?")
                      for r in violation.violating_resources]  # fmt: skip
    return found


@cache
def synthesize(tier: int, environment: str) -> Synth:
    """Synthesize (and check) one deployment; cached for the session."""
    ctx = make_context(tier, environment)
    start = time.perf_counter()
    app = cdk.App(outdir=tempfile.mkdtemp(prefix="cdk-out-"),
                  context={**FEATURE_FLAGS, **AZ_CONTEXT})  # fmt: skip
    image = (None if (tier, environment) == ASSET_COMBINATION
             else ecs.ContainerImage.from_registry("example.invalid/phi-gateway:test"))  # fmt: skip
    deployment = build(app, ctx, env=cdk.Environment(account=ACCOUNT, region=REGION), image=image)
    app.synth()
    kinds = ("network", "data", "auth", "ai", "gateway")
    templates = {k: Template.from_stack(s) for k, s in zip(kinds, deployment.stacks, strict=True)}
    synth_s = time.perf_counter() - start
    start = time.perf_counter()
    findings = nag_findings(app)
    return Synth(ctx, deployment, templates, findings, synth_s, time.perf_counter() - start)


@pytest.fixture(params=COMBINATIONS, ids=[f"tier{t}-{e}" for t, e in COMBINATIONS])
def synth(request: pytest.FixtureRequest) -> Synth:
    """Every (tier, environment) deployment."""
    tier, environment = request.param
    return synthesize(tier, environment)
