"""cdk-nag's AwsSolutions and HIPAA Security packs: no unacknowledged finding, every
acknowledgment with a reason, and proof that the harness does report findings."""

from __future__ import annotations

import ast
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3

from tests.deploy.conftest import Synth, nag_findings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MIN_REASON_CHARS = 30


def test_no_unacknowledged_findings(synth: Synth) -> None:
    assert synth.findings == []


def test_every_acknowledgment_carries_a_reason() -> None:
    calls = [
        node for path in sorted(DEPLOY.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", ""))
        == "Acknowledgment"
    ]  # fmt: skip
    assert len(calls) >= 15
    for call in calls:
        keywords = {k.arg: k.value for k in call.keywords}
        assert set(keywords) == {"id", "reason"}, ast.dump(call)
        reason = keywords["reason"]
        # a literal, an implicit concatenation, or a name bound to one (checked by length at use)
        if isinstance(reason, ast.Constant):
            assert len(str(reason.value)) >= MIN_REASON_CHARS, reason.value
        else:
            assert isinstance(reason, ast.Name | ast.JoinedStr), ast.dump(reason)


def test_the_packs_report_a_bucket_without_protection() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "Bare")
    s3.Bucket(stack, "Bucket")
    rules = {rule for rule, _ in nag_findings(app)}
    assert "AwsSolutions-S1" in rules
    assert "HIPAA.Security-S3BucketLoggingEnabled" in rules


def test_an_acknowledgment_silences_exactly_its_rule() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "Acked")
    bucket = s3.Bucket(stack, "Bucket")
    cdk.Validations.of(bucket).acknowledge(
        cdk.Acknowledgment(
            id="AwsSolutions-S1", reason="test: a bucket acknowledged for one rule only"
        )
    )
    rules = {rule for rule, _ in nag_findings(app)}
    assert "AwsSolutions-S1" not in rules
    assert "AwsSolutions-S10" in rules
