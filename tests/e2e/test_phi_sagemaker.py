"""PHI handling in front of SageMaker (real aioboto3 client, fake runtime, every container
dialect): the endpoint receives only placeholders, and the decoded chunks and completions pass the
transducers' shape checks, masked or re-identified like any other answer."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import aioboto3  # noqa: F401 -- imported here, not lazily on the gateway's event loop (blockbuster)
import pytest
from openai import OpenAI

from gateway.config import PhiPolicyConfig
from tests import identity
from tests.fakes.sagemaker import FakeEndpoint
from tests.stack import SAGEMAKER_MODELS, Stack

ANSWER = "Call [PHI_NAME_1] or Jane Doe at 415-555-0123 today."
PROMPT = "Where is Jane Doe?"


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, make_stack: Callable[..., Stack]) -> Stack:
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "AKIDFAKEFAKEFAKE"),
        ("AWS_SECRET_ACCESS_KEY", "fake-secret"),
        ("AWS_CONFIG_FILE", "/nonexistent/aws-config"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ):
        monkeypatch.setenv(name, value)
    policy = PhiPolicyConfig(mode="auto", reidentify=True, reidentify_groups=("clinician",))
    built = make_stack(sagemaker={}, tenant={"phi": policy}, phi={})
    assert built.sagemaker is not None
    for endpoint, dialect, _ in SAGEMAKER_MODELS.values():
        built.sagemaker.endpoints[endpoint] = FakeEndpoint(
            dialect=dialect, text=ANSWER, part_bytes=7
        )
    return built


@pytest.fixture
def clients(stack: Stack) -> Iterator[dict[str, OpenAI]]:
    made = {
        who: OpenAI(base_url=stack.v1, api_key=identity.token(groups=groups), max_retries=0)
        for who, groups in (("clinician", ("clinician",)), ("other", ()))
    }
    yield made
    for sdk in made.values():
        sdk.close()


@pytest.mark.parametrize("alias", list(SAGEMAKER_MODELS))
def test_every_dialect_is_redacted_masked_and_reidentified(
    stack: Stack, clients: dict[str, OpenAI], alias: str
) -> None:
    assert stack.sagemaker is not None
    expected = {
        "clinician": "Call Jane Doe or Jane Doe at [PHI_PHONE_1] today.",
        "other": "Call [PHI_NAME_1] or [PHI_NAME_1] at [PHI_PHONE_1] today.",
    }
    for who, sdk in clients.items():
        events = sdk.chat.completions.create(
            model=alias, messages=[{"role": "user", "content": PROMPT}], stream=True
        )
        streamed = "".join(e.choices[0].delta.content or "" for e in events if e.choices)
        completion = sdk.chat.completions.create(
            model=alias, messages=[{"role": "user", "content": PROMPT}]
        )
        assert streamed == expected[who]
        assert completion.choices[0].message.content == expected[who]
    assert all("Jane Doe" not in str(r.body) for r in stack.sagemaker.requests)
    assert "[PHI_NAME_1]" in str(stack.sagemaker.requests[-1].body)
