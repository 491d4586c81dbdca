"""The limits configuration: TOML sections, validation, the memory store refused with workers."""

from __future__ import annotations

import os

import pytest

from gateway.config import GatewayConfig, LimitRuleConfig, Secret, load_config
from gateway.context import Principal
from gateway.errors import ConfigError, InvalidRequest
from gateway.limits.rules import LimitRules, estimate_chat_prompt

BASE = """
[server]
workers = {workers}

[auth.issuers.users]
issuer = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123"
client_ids = ["app-client-1"]

[tenants.acme]
models = ["*"]

[tenants.acme.limits]
requests_per_minute = 600
tokens_per_day = 100000
max_tokens_per_request = 500

[tenants.acme.user_limits]
requests_per_minute = 60
burst = 1

[tenants."*"]
models = ["*"]
user_limits = {{ max_concurrent_streams = 3 }}

[apps.chat]
limits = {{ requests_per_minute = 1200, max_tokens_per_request = 100, max_tokens_mode = "reject" }}

[limits]
store = "{store}"
{extra}

[upstreams.litellm]
base_url = "http://127.0.0.1:4000"

[models.chat]
upstream = "litellm"
target = "gpt-4o-mini"
"""


def _load(
    workers: int = 1, store: str = "memory", extra: str = "", env: dict[str, str] | None = None
) -> GatewayConfig:
    return load_config(BASE.format(workers=workers, store=store, extra=extra), env or {})


def test_rules_load_per_tenant_user_and_app() -> None:
    config = _load()
    acme = config.tenants["acme"]
    assert acme.limits == LimitRuleConfig(
        requests_per_minute=600, tokens_per_day=100000, max_tokens_per_request=500
    )
    assert acme.user_limits is not None
    assert acme.user_limits.burst == 1
    assert config.apps["chat"].limits is not None
    assert config.apps["chat"].limits.max_tokens_mode == "reject"
    assert config.has_limits
    rules = LimitRules(config)
    alice = Principal(subject="s-1", tenant_id="acme", app_id="chat", app_user_id="alice", via="t")
    admission, body, prompt = rules.chat(
        alice, "req_1", {"messages": [{"role": "user", "content": "x" * 40}]}, is_stream=True
    )
    assert admission is not None
    assert [b.key for b in admission.buckets] == ["t:acme", "u:acme:alice", "a:acme:chat"]
    assert [b.burst for b in admission.buckets] == [600, 1, 1200]
    assert body["max_tokens"] == 100  # the strictest cap, injected
    assert prompt == 10  # 40 bytes / 4
    assert admission.tokens == 110
    with pytest.raises(InvalidRequest):  # the app's rule says reject
        rules.chat(alice, "req_2", {"messages": [], "max_tokens": 101}, is_stream=False)
    other = Principal(subject="bob", tenant_id="other", via="t")
    admission, body, _ = rules.chat(other, "req_3", {"messages": []}, is_stream=True)
    assert admission is not None
    assert [b.key for b in admission.buckets] == ["u:other:bob"]
    assert admission.tokens == 0
    assert "max_tokens" not in body  # no token limit, no cap: nothing to bound


def test_memory_store_with_several_workers_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        _load(workers=4)
    assert "limits.store: 'memory'" in str(err.value)
    assert "4 workers" in str(err.value)
    if (os.cpu_count() or 1) > 1:
        with pytest.raises(ConfigError):
            _load(workers=0)  # one per CPU
    url = 'redis_url = "redis://127.0.0.1:6379/0"'
    assert _load(workers=4, store="redis", extra=url).limits.store == "redis"


def test_limit_problems_are_reported() -> None:
    with pytest.raises(ConfigError) as err:
        _load(store="redis", extra="timeout_ms = 0\nreplicas = 0")
    text = str(err.value)
    assert "limits.redis_url" in text
    assert "limits.timeout_ms" in text
    assert "limits.replicas" in text
    with pytest.raises(ConfigError) as err:
        _load(extra="reservation_ttl_s = 60")  # below the upstream's total_timeout_s of 600
    assert "limits.reservation_ttl_s: must be >= every upstream's total_timeout_s" in str(err.value)
    bad_rule = BASE.replace("requests_per_minute = 600", "requests_per_minute = 0")
    with pytest.raises(ConfigError) as err:
        load_config(bad_rule.format(workers=1, store="memory", extra=""), {})
    assert "tenants.acme.limits.requests_per_minute: must be >= 1" in str(err.value)


def test_redis_url_is_a_secret_set_from_the_environment() -> None:
    config = _load(
        workers=2,
        store="redis",
        env={"GATEWAY__LIMITS__REDIS_URL": "redis://:hunter2@127.0.0.1:6379/0"},
    )
    assert config.limits.redis_url is not None
    assert "hunter2" not in repr(config)
    assert config.limits.redis_url.reveal().endswith("@127.0.0.1:6379/0")


def test_prompt_estimate_counts_text_parts_and_tool_arguments() -> None:
    body = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "abcd"}, {"type": "image_url"}]},
            {"role": "assistant", "content": None,
             "tool_calls": [{"function": {"name": "f", "arguments": "{\"a\": 1}"}}]},
            {"role": "user", "content": "é"},
        ]
    }  # fmt: skip
    assert estimate_chat_prompt(body) == 4  # (4 + 8 + 2 bytes) / 4, rounded up


@pytest.mark.parametrize(
    "url", ["rediss://cache.internal:port/0", "redis://[::1/0", "redis://127.0.0.1:70000/0"]
)
def test_a_redis_url_that_does_not_parse_is_refused_at_load(url: str) -> None:
    """Caught by the config check, not by the Redis client when the first worker starts."""
    with pytest.raises(ConfigError, match=r"limits\.redis_url: not a valid URL"):
        _load(store="redis", env={"GATEWAY__LIMITS__REDIS_URL": url})
    config = _load(store="redis", env={"GATEWAY__LIMITS__REDIS_URL": "rediss://h:6380/0"})
    assert config.limits.redis_url == Secret("rediss://h:6380/0")
