"""The deployment context and the tier table."""

from __future__ import annotations

import itertools

import pytest

from deploy.settings import (
    DRAIN_TIMEOUT_S,
    MAX_REQUEST_S,
    MODELS,
    STOP_TIMEOUT_S,
    TIERS,
    ContextError,
    parse_context,
)

GOOD = {"appId": "phi", "appName": "chat", "environment": "prod", "tier": "3",
        "domain": "gw.example.com"}  # fmt: skip


def test_a_valid_context_parses() -> None:
    ctx = parse_context(GOOD)
    assert (ctx.prefix, ctx.tier, ctx.is_prod) == ("phi-prod", 3, True)
    assert [m.alias for m in ctx.models] == [m.alias for m in MODELS if m.from_tier <= 3]


def test_every_problem_is_reported_at_once() -> None:
    bad = {"appId": "Bad_Id", "appName": "my-app", "environment": "qa", "tier": "9",
           "domain": "not a domain"}  # fmt: skip
    with pytest.raises(ContextError) as info:
        parse_context(bad)
    for key in ("appId", "appName", "environment", "tier", "domain"):
        assert f"{key}:" in str(info.value)


@pytest.mark.parametrize("environment", ["staging", "prod"])
def test_staging_and_prod_need_a_domain(environment: str) -> None:
    with pytest.raises(ContextError, match="domain: required"):
        parse_context({**GOOD, "environment": environment, "domain": None})
    assert parse_context({**GOOD, "environment": "dev", "domain": None}).domain is None


def test_tiers_only_grow() -> None:
    rows = [TIERS[t] for t in sorted(TIERS)]
    for smaller, larger in itertools.pairwise(rows):
        assert larger.gateway_cpu >= smaller.gateway_cpu
        assert larger.gateway_max_tasks >= smaller.gateway_max_tasks
        assert larger.cache_nodes >= smaller.cache_nodes
        assert larger.database_max_acu >= smaller.database_max_acu
        assert larger.endpoint_max_instances >= smaller.endpoint_max_instances
    assert all(t.gateway_min_tasks <= t.gateway_max_tasks for t in rows)
    assert min(m.from_tier for m in MODELS) == 1  # every tier serves at least one model


def test_drain_budget_fits_fargate() -> None:
    assert STOP_TIMEOUT_S <= 120  # Fargate's maximum
    assert DRAIN_TIMEOUT_S + 15 <= STOP_TIMEOUT_S
    assert MAX_REQUEST_S >= 300  # five-minute generations finish before SIGTERM


def test_endpoint_names_are_valid_sagemaker_names() -> None:
    ctx = parse_context({**GOOD, "tier": "5", "appId": "a" * 20})
    for model in ctx.models:
        name = ctx.endpoint_name(model)
        assert len(name) <= 63
        assert not name.endswith("-")
