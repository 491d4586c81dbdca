"""Limit answers through the real openai-python SDK: RateLimitError, headers, retry behaviour."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from openai import OpenAI, RateLimitError
from openai.types.chat import ChatCompletionMessageParam

from gateway.config import LimitRuleConfig
from tests.identity import default_token
from tests.stack import Stack

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]


def _client(stack: Stack, retries: int) -> OpenAI:
    return OpenAI(base_url=stack.v1, api_key=default_token(), max_retries=retries, timeout=10)


def test_rate_limit_error_carries_openai_headers(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(tenant={"limits": LimitRuleConfig(requests_per_minute=60, burst=1)})
    with _client(stack, 0) as client:
        ok = client.chat.completions.with_raw_response.create(model="test-chat", messages=MESSAGES)
        assert ok.headers["x-ratelimit-limit-requests"] == "60"
        assert ok.headers["x-ratelimit-remaining-requests"] == "0"
        assert ok.headers["x-ratelimit-reset-requests"] == "1s"
        with pytest.raises(RateLimitError) as caught:
            client.chat.completions.create(model="test-chat", messages=MESSAGES)
    error = caught.value
    assert error.status_code == 429
    assert error.code == "rate_limit_exceeded"
    assert error.type == "rate_limit_exceeded"
    assert error.response.headers["x-should-retry"] == "true"
    assert error.response.headers["retry-after"] == "1"
    assert 0 < int(error.response.headers["retry-after-ms"]) <= 1000
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert len(stack.fake.requests) == 1


def test_sdk_waits_retry_after_then_succeeds(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(tenant={"limits": LimitRuleConfig(requests_per_minute=60, burst=1)})
    with _client(stack, 2) as client:
        client.chat.completions.create(model="test-chat", messages=MESSAGES)
        started = time.monotonic()
        completion = client.chat.completions.create(model="test-chat", messages=MESSAGES)
        waited = time.monotonic() - started
    assert completion.choices[0].message.content
    # The SDK slept for retry-after-ms (just under 1 s) instead of its own 0.5 s backoff.
    assert 0.8 <= waited < 3.0
    assert len(stack.fake.requests) == 2


def test_sdk_does_not_retry_a_spent_quota(make_stack: Callable[..., Stack]) -> None:
    rule = LimitRuleConfig(tokens_per_day=10, max_tokens_per_request=20)
    stack = make_stack(tenant={"limits": rule})
    with _client(stack, 3) as client:
        started = time.monotonic()
        with pytest.raises(RateLimitError) as caught:
            client.chat.completions.create(model="test-chat", messages=MESSAGES)
        elapsed = time.monotonic() - started
    assert caught.value.code == "insufficient_quota"
    assert caught.value.type == "insufficient_quota"
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert elapsed < 0.5  # x-should-retry: false -> no retries, no backoff
    assert not stack.fake.requests
