"""PHI configuration (`[tenants.<t>.phi]`, `[apps.<a>.phi]`, `[phi]`, `hipaa_eligible`) and the
per-request decision built from it."""

from __future__ import annotations

import base64

import pytest

from gateway.config import load_config
from gateway.config.phi import CATEGORY_NAMES, DEFAULT_CATEGORY_NAMES
from gateway.context import PhiOptions, Principal
from gateway.errors import ConfigError, InvalidRequest, PermissionDenied
from gateway.phi.categories import DEFAULT_CATEGORIES, Category
from gateway.privacy.policy import PhiPolicies, refuse_unmaskable
from gateway.validation import chat_request

BASE = """
[auth.dev_issuer]
enabled = true

[upstreams.u]
base_url = "http://127.0.0.1:4000"

[models.safe]
upstream = "u"
target = "m"
hipaa_eligible = true

[models.plain]
upstream = "u"
target = "m"
"""
POLICIES = (
    BASE
    + """
[tenants.clinic.phi]
mode = "auto"
reidentify = true
reidentify_groups = ["doctors"]
vault_ttl_s = 3600

[tenants.lab]
models = ["*"]

[tenants.off.phi]
mode = "disabled"

[apps.research.phi]
reidentify = false
categories = ["NAME", "DIAGNOSIS"]
"""
)
KEY = base64.b64encode(bytes(32)).decode()


def who(tenant: str, *groups: str, app: str | None = None) -> Principal:
    return Principal(subject="s", tenant_id=tenant, app_id=app, groups=groups, via="test")


def test_categories_match_the_detectors() -> None:
    assert set(CATEGORY_NAMES) == {c.value for c in Category}
    assert set(DEFAULT_CATEGORY_NAMES) == {c.value for c in DEFAULT_CATEGORIES}


def test_safe_defaults() -> None:
    config = load_config(BASE + "[tenants.t]\n", {})
    policy = config.tenants["t"].phi
    assert policy.mode == "manual"
    assert "DIAGNOSIS" not in policy.categories
    assert "TREATMENT" not in policy.categories
    assert policy.reidentify is False
    assert policy.reidentify_groups == ()
    assert policy.vault_ttl_s == 86_400
    assert config.models["plain"].hipaa_eligible is False
    assert config.phi.vault == "memory"
    assert config.phi.vault_key is None


def test_phi_problems_are_reported() -> None:
    bad = (
        BASE
        + """
[tenants.t.phi]
mode = "sometimes"
categories = ["NAME", "SHOE_SIZE"]
reidentify = true
vault_ttl_s = 5

[apps.a.phi]
categories = []

[phi]
vault = "redis"
vault_key = "c2hvcnQ="
"""
    )
    with pytest.raises(ConfigError) as err:
        load_config(bad, {})
    problems = "\n".join(err.value.problems)
    assert "tenants.t.phi.mode" in problems
    load_ok = bad.replace('mode = "sometimes"\n', "")
    with pytest.raises(ConfigError) as err:
        load_config(load_ok, {})
    problems = "\n".join(err.value.problems)
    for expected in (
        "tenants.t.phi.categories: unknown category 'SHOE_SIZE'",
        "tenants.t.phi.reidentify_groups",
        "tenants.t.phi.vault_ttl_s",
        "apps.a.phi.categories: name at least one category",
        "phi.redis_url",
        "phi.vault_key: must be 32 bytes, base64-encoded, or key material of at least 40",
    ):
        assert expected in problems


def test_redis_vault_needs_a_key_and_the_key_comes_from_the_environment() -> None:
    text = BASE + '[phi]\nvault = "redis"\nredis_url = "redis://127.0.0.1:6379/0"\n'
    with pytest.raises(ConfigError, match="needs a configured key"):
        load_config(text, {})
    config = load_config(text, {"GATEWAY__PHI__VAULT_KEY": KEY})
    assert config.phi.key_bytes == bytes(32)
    assert KEY not in repr(config.phi)


def test_auto_manual_disabled_and_groups() -> None:
    policies = PhiPolicies(load_config(POLICIES, {}))
    config = load_config(POLICIES, {})
    safe, plain = config.models["safe"], config.models["plain"]
    none = PhiOptions()
    plan = policies.plan(who("clinic", "doctors"), none, safe, "safe")
    assert plan is not None
    assert plan.reidentify is True
    assert plan.ttl_s == 3600
    assert plan.categories == frozenset(DEFAULT_CATEGORY_NAMES)
    nurse = policies.plan(who("clinic", "nurses"), none, safe, "safe")
    assert nurse is not None
    assert nurse.reidentify is False
    with pytest.raises(PermissionDenied) as err:
        policies.plan(who("clinic"), none, plain, "plain")
    assert err.value.code == "model_not_hipaa_eligible"
    # manual (the default): off unless the request opts in; then the HIPAA gate applies
    assert policies.plan(who("lab"), none, plain, "plain") is None
    opted = PhiOptions(categories=("DIAGNOSIS",))
    lab = policies.plan(who("lab"), opted, safe, "safe")
    assert lab is not None
    assert lab.categories == frozenset(DEFAULT_CATEGORY_NAMES) | {"DIAGNOSIS"}
    with pytest.raises(InvalidRequest, match="unknown PHI categories"):
        policies.plan(who("lab"), PhiOptions(categories=("SHOE",)), safe, "safe")
    # disabled: opting in is refused, not ignored
    assert policies.plan(who("off"), none, plain, "plain") is None
    with pytest.raises(InvalidRequest) as refused:
        policies.plan(who("off"), PhiOptions(enable=True), safe, "safe")
    assert refused.value.code == "phi_disabled"


def test_app_overrides_the_tenant_policy() -> None:
    config = load_config(POLICIES, {})
    policies = PhiPolicies(config)
    plan = policies.plan(
        who("clinic", "doctors", app="research"), PhiOptions(), config.models["safe"], "safe"
    )
    assert plan is not None
    assert plan.reidentify is False
    assert plan.categories == {"NAME", "DIAGNOSIS"}
    assert plan.ttl_s == 3600  # inherited
    assert {frozenset(p.categories) for p in policies.all_policies()} >= {
        frozenset({"NAME", "DIAGNOSIS"}),
        frozenset(DEFAULT_CATEGORY_NAMES),
    }


def test_request_fields_are_parsed_and_never_forwarded() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "enable_phi": True,
        "phi_categories": ["diagnosis", "DIAGNOSIS", "name"],
        "conversation_id": "visit-1",
    }
    request = chat_request(body, conversation_header="visit-1")
    assert request.phi == PhiOptions(
        enable=True, categories=("DIAGNOSIS", "NAME"), conversation_id="visit-1"
    )
    assert not {"enable_phi", "phi_categories", "conversation_id"} & set(request.body)
    with pytest.raises(InvalidRequest, match="differ"):
        chat_request(body, conversation_header="visit-2")
    for bad in ({"enable_phi": "yes"}, {"phi_categories": "NAME"}, {"conversation_id": "a b"}):
        with pytest.raises(InvalidRequest):
            chat_request({**body, "conversation_id": None, **bad})
    with pytest.raises(InvalidRequest):
        chat_request({"model": "m", "messages": body["messages"]}, conversation_header="x" * 200)


def test_unmaskable_fields_are_refused() -> None:
    refuse_unmaskable({"logprobs": False, "modalities": ["text"]})
    for field, value in (
        ("logprobs", True),
        ("top_logprobs", 2),
        ("prediction", {"type": "content", "content": "x"}),
        ("modalities", ["text", "audio"]),
    ):
        with pytest.raises(InvalidRequest) as err:
            refuse_unmaskable({field: value})
        assert err.value.param == field


def test_vault_redis_password_rules() -> None:
    text = BASE + '[phi]\nvault = "redis"\nredis_url = "rediss://:inline@cache:6380/0"\n'
    env = {"GATEWAY__PHI__VAULT_KEY": KEY, "GATEWAY__PHI__REDIS_PASSWORD": "token"}
    with pytest.raises(ConfigError, match="carries a password too"):
        load_config(text, env)
    config = load_config(text.replace(":inline@", ""), env)
    assert config.phi.redis_password is not None
    with pytest.raises(ConfigError, match="only used with vault = 'redis'"):
        load_config(BASE, {"GATEWAY__PHI__REDIS_PASSWORD": "token"})
