from __future__ import annotations

from openai import OpenAI

from tests.identity import default_token
from tests.stack import Stack


def test_sdk_streams_through_the_gateway(stack: Stack) -> None:
    client = OpenAI(base_url=stack.v1, api_key=default_token(), max_retries=0)
    events = client.chat.completions.create(
        model="test-chat", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join(e.choices[0].delta.content or "" for e in events if e.choices)
    assert text.startswith(("Streaming", "A gateway", "Each chunk", "Patient"))
