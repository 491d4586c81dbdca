"""Gateway -> real LiteLLM proxy -> fake OpenAI server: completions arrive intact through both."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import openai
import pytest
from openai import OpenAI

from gateway.demo import Behaviour, FakeOpenAI, start_fake
from gateway.telemetry import Metrics
from tests.fakes.litellm_proxy import run_litellm_proxy
from tests.identity import default_token
from tests.stack import UPSTREAM_KEY, BackgroundLoop, make_config, start_gateway

TEXT = "Through two proxies, every token arrives in order and intact."


@dataclass
class Chain:
    gateway: str
    fake: FakeOpenAI


@pytest.fixture(scope="module")
def chain(background: BackgroundLoop) -> Iterator[Chain]:
    fake = FakeOpenAI(Behaviour(text=TEXT))
    fake_runner, fake_port = background.run(start_fake(fake))
    try:
        with run_litellm_proxy(
            f"http://127.0.0.1:{fake_port}", model_name="fake-chat", master_key=UPSTREAM_KEY
        ) as litellm:
            config = make_config(litellm.base_url, upstream={"kind": "litellm"})
            runner, port = background.run(start_gateway(config, Metrics()))
            try:
                yield Chain(gateway=f"http://127.0.0.1:{port}/v1", fake=fake)
            finally:
                background.run(runner.cleanup())
    finally:
        background.run(fake_runner.cleanup())


def _client(chain: Chain) -> OpenAI:
    # The client's token is not LiteLLM's master key: success proves the gateway sent its own.
    return OpenAI(base_url=chain.gateway, api_key=default_token(), max_retries=0)


def test_non_streamed_completion_through_litellm(chain: Chain) -> None:
    completion = _client(chain).chat.completions.create(
        model="test-chat", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content == TEXT
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.total_tokens > 0
    assert completion._request_id is not None
    assert completion._request_id.startswith("req_")


def test_streamed_completion_through_litellm(chain: Chain) -> None:
    stream = _client(chain).chat.completions.create(
        model="test-chat", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == TEXT
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    headers, body = chain.fake.requests[-1]
    assert body["stream"] is True
    assert default_token() not in str(headers)


def test_upstream_rate_limit_through_litellm(chain: Chain) -> None:
    chain.fake.behaviours["fake-chat"] = Behaviour(status=429, error_headers={"retry-after": "3"})
    try:
        with pytest.raises(openai.RateLimitError) as info:
            _client(chain).chat.completions.create(
                model="test-chat", messages=[{"role": "user", "content": "hi"}]
            )
    finally:
        del chain.fake.behaviours["fake-chat"]
    assert info.value.request_id is not None
    assert info.value.request_id.startswith("req_")
    assert info.value.response.headers["x-should-retry"] == "true"
