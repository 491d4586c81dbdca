"""openai-python -> gateway -> real aioboto3 client -> fake SageMaker runtime (real event-stream
frames), for every container dialect: completions, usage, headers, errors, disconnects."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import openai
import orjson
import pytest
from openai import OpenAI

from tests.fakes.sagemaker import TEXT, FakeEndpoint, FakeSageMaker, tokens_of
from tests.stack import SAGEMAKER_MODELS, BackgroundLoop, Stack

MESSAGES: list[Any] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Say hello."},
]
DIALECTS = list(SAGEMAKER_MODELS)
#: The finish_reason each fake container reports by default, mapped to OpenAI's.
EXPECTED_FINISH = {"sm-tgi": "stop", "sm-messages": "stop", "sm-lmi": "length", "sm-vllm": "stop"}


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials for the default chain; no shared files, no instance metadata."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFAKEFAKEFAKE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def open_sm(aws_env: None, make_stack: Callable[..., Stack]) -> Callable[..., Stack]:
    """``open_sm(**upstream_settings)``: a stack with the fake SageMaker runtime."""
    del aws_env
    return lambda **settings: make_stack(sagemaker=settings)


@pytest.fixture
def sm_stack(open_sm: Callable[..., Stack]) -> Stack:
    return open_sm()


@pytest.fixture
def client(sm_stack: Stack) -> Iterator[OpenAI]:
    with OpenAI(base_url=sm_stack.v1, api_key=sm_stack.api_key, max_retries=0) as sdk:
        yield sdk


def _fake(stack: Stack) -> FakeSageMaker:
    assert stack.sagemaker is not None
    return stack.sagemaker


def _endpoint(stack: Stack, alias: str) -> FakeEndpoint:
    return _fake(stack).endpoints[SAGEMAKER_MODELS[alias][0]]


def _prompt_tokens(stack: Stack) -> int:
    """The fake's prompt token arithmetic, over the body it last received."""
    body = _fake(stack).requests[-1].body
    return len(orjson.dumps(body.get("messages") or body.get("inputs"))) // 4


# --- completions, every dialect --------------------------------------------------------------


@pytest.mark.parametrize("alias", DIALECTS)
@pytest.mark.parametrize("part_bytes", [None, 5])
def test_stream_every_dialect(
    sm_stack: Stack, client: OpenAI, alias: str, part_bytes: int | None
) -> None:
    # 5-byte payload parts split JSON objects and the multi-byte characters of TEXT.
    _endpoint(sm_stack, alias).part_bytes = part_bytes
    parts: list[str] = []
    finishes: list[str | None] = []
    roles: list[str | None] = []
    ids: set[str] = set()
    usage = None
    with client.chat.completions.create(
        model=alias, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ) as events:
        for event in events:
            ids.add(event.id)
            assert event.object == "chat.completion.chunk"
            if event.usage is not None:
                usage = event.usage
                assert event.choices == []
            for choice in event.choices:
                parts.append(choice.delta.content or "")
                finishes.append(choice.finish_reason)
                roles.append(choice.delta.role)
    assert "".join(parts) == TEXT
    assert finishes[-1] == EXPECTED_FINISH[alias]
    assert all(f is None for f in finishes[:-1])
    assert roles[0] == "assistant"
    assert len(ids) == 1
    assert usage is not None
    assert usage.prompt_tokens == _prompt_tokens(sm_stack)
    generated = len(tokens_of(TEXT)) + (1 if alias in ("sm-tgi", "sm-lmi") else 0)
    assert usage.completion_tokens == generated
    assert usage.total_tokens == usage.prompt_tokens + generated
    assert (usage.model_extra or {}).get("estimated") is None


@pytest.mark.parametrize("alias", DIALECTS)
def test_non_stream_every_dialect(sm_stack: Stack, client: OpenAI, alias: str) -> None:
    raw = client.chat.completions.with_raw_response.create(model=alias, messages=MESSAGES)
    assert raw.headers["content-type"].startswith("application/json")
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == TEXT
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == EXPECTED_FINISH[alias]
    assert completion.usage is not None
    assert completion.usage.completion_tokens == len(tokens_of(TEXT))
    received = _fake(sm_stack).requests[-1]
    assert received.path == f"/endpoints/{SAGEMAKER_MODELS[alias][0]}/invocations"
    assert received.body.get("stream") is False


def test_stream_without_usage_request_hides_usage(sm_stack: Stack, client: OpenAI) -> None:
    events = list(client.chat.completions.create(model="sm-vllm", messages=MESSAGES, stream=True))
    assert all(e.usage is None for e in events)
    assert all(e.choices for e in events)
    # ... though the gateway asked the container for it (metering needs it).
    assert _fake(sm_stack).requests[-1].body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("alias", ["sm-tgi", "sm-messages"])
def test_usage_counted_and_marked_estimated_when_container_reports_none(
    sm_stack: Stack, client: OpenAI, alias: str
) -> None:
    _endpoint(sm_stack, alias).report_usage = False
    events = list(
        client.chat.completions.create(
            model=alias, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    usage = events[-1].usage
    assert usage is not None
    assert (usage.model_extra or {}).get("estimated") is True
    assert usage.completion_tokens == len(tokens_of(TEXT)) + (1 if alias == "sm-tgi" else 0)
    assert usage.prompt_tokens > 0


def test_container_finish_reasons_are_mapped(sm_stack: Stack, client: OpenAI) -> None:
    _endpoint(sm_stack, "sm-tgi").finish_reason = "stop_sequence"
    _endpoint(sm_stack, "sm-messages").finish_reason = "eos_token"
    for alias in ("sm-tgi", "sm-messages"):
        events = list(client.chat.completions.create(model=alias, messages=MESSAGES, stream=True))
        assert events[-1].choices[0].finish_reason == "stop"
    completion = client.chat.completions.create(model="sm-messages", messages=MESSAGES)
    assert completion.choices[0].finish_reason == "stop"


def test_tgi_request_is_templated_and_mapped(sm_stack: Stack, client: OpenAI) -> None:
    client.chat.completions.create(
        model="sm-tgi", messages=MESSAGES, max_tokens=17, temperature=0, stop="END", seed=3
    )
    body = _fake(sm_stack).requests[-1].body
    assert body["inputs"] == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nSay hello.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert body["parameters"] == {
        "max_new_tokens": 17,
        "details": True,
        "return_full_text": False,
        "do_sample": False,
        "stop": ["END"],
        "seed": 3,
    }


def test_per_model_headers_sent_on_both_paths(
    aws_env: None, make_stack: Callable[..., Stack]
) -> None:
    del aws_env
    stack = make_stack(
        sagemaker={},
        sagemaker_model={
            "inference_component": "ic-llama",
            "target_variant": "blue",
            "custom_attributes": "accept_eula=true",
        },
    )
    with OpenAI(base_url=stack.v1, api_key=stack.api_key, max_retries=0) as sdk:
        sdk.chat.completions.create(model="sm-vllm", messages=MESSAGES)
        list(sdk.chat.completions.create(model="sm-vllm", messages=MESSAGES, stream=True))
    received = list(_fake(stack).requests)
    assert [r.path.rsplit("/", 1)[-1] for r in received] == [
        "invocations",
        "invocations-response-stream",
    ]
    headers: dict[str, str] = {}
    for r in received:
        headers = {k.lower(): v for k, v in r.headers.items()}
        assert headers["x-amzn-sagemaker-inference-component"] == "ic-llama"
        assert headers["x-amzn-sagemaker-target-variant"] == "blue"
        assert headers["x-amzn-sagemaker-custom-attributes"] == "accept_eula=true"
        assert headers["x-amzn-sagemaker-inference-id"].startswith("req_")
        assert headers["authorization"].startswith("AWS4-HMAC-SHA256")
        assert stack.api_key not in str(headers)
    assert headers["x-amzn-sagemaker-accept"] == "text/event-stream"


# --- errors ----------------------------------------------------------------------------------


def _model_error(original_status: int, message: str = "bad input") -> tuple[int, str, Any]:
    original = orjson.dumps({"error": message, "error_type": "validation"}).decode()
    body = {
        "message": f"Received client error ({original_status}) from primary",
        "OriginalStatusCode": original_status,
        "OriginalMessage": original,
        "LogStreamArn": "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/x",
    }
    return (424, "ModelError", body)


@pytest.mark.parametrize(
    ("error", "exc_type", "status"),
    [
        (_model_error(400), openai.BadRequestError, 400),
        (_model_error(422), openai.UnprocessableEntityError, 422),
        (_model_error(429), openai.RateLimitError, 429),
        (_model_error(500), openai.InternalServerError, 502),
        ((400, "ThrottlingException", {"message": "Rate exceeded"}), openai.RateLimitError, 429),
        (
            (429, "ModelNotReadyException", {"message": "not ready"}),
            openai.InternalServerError,
            503,
        ),
        ((503, "ServiceUnavailable", {"message": "unavailable"}), openai.InternalServerError, 503),
        ((500, "InternalFailure", {"message": "boom"}), openai.InternalServerError, 502),
        ((400, "ValidationError", {"message": "bad"}), openai.BadRequestError, 400),
        (
            (
                400,
                "ValidationError",
                {"message": "Inference Component has no capacity to process this request."},
            ),
            openai.InternalServerError,
            503,
        ),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_error_mapping(
    sm_stack: Stack,
    client: OpenAI,
    error: tuple[int, str, Any],
    exc_type: type[openai.APIStatusError],
    status: int,
    stream: bool,
) -> None:
    _endpoint(sm_stack, "sm-tgi").error = error
    with pytest.raises(exc_type) as info:
        client.chat.completions.create(model="sm-tgi", messages=MESSAGES, stream=stream)
    response = info.value.response
    assert response.status_code == status
    assert response.headers["x-request-id"].startswith("req_")
    if status in (429, 503):
        assert int(response.headers["retry-after"]) >= 1
        assert response.headers["x-should-retry"] == "true"
    # AWS's own messages name accounts and endpoints: never passed on.
    assert "123456789012" not in info.value.message
    assert "arn:aws" not in info.value.message


def test_model_error_passes_the_container_4xx_message(sm_stack: Stack, client: OpenAI) -> None:
    _endpoint(sm_stack, "sm-tgi").error = _model_error(
        400, "inputs must have less than 4096 tokens"
    )
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="sm-tgi", messages=MESSAGES)
    assert "less than 4096 tokens" in info.value.message


def test_cold_endpoint_answers_503_with_a_clear_message(sm_stack: Stack, client: OpenAI) -> None:
    _endpoint(sm_stack, "sm-tgi").error = (429, "ModelNotReadyException", {"message": "cold"})
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="sm-tgi", messages=MESSAGES, stream=True)
    assert info.value.response.status_code == 503
    assert int(info.value.response.headers["retry-after"]) == 30
    assert "starting" in info.value.message


def test_unknown_endpoint_is_404(sm_stack: Stack, client: OpenAI) -> None:
    del _fake(sm_stack).endpoints["ep-tgi"]
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="sm-tgi", messages=MESSAGES)
    assert "123456789012" not in info.value.message


def test_body_over_six_mib_is_413_before_sending(sm_stack: Stack, client: OpenAI) -> None:
    big = "x" * (6 * 1024 * 1024)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="sm-vllm", messages=[{"role": "user", "content": big}])
    assert info.value.status_code == 413
    assert len(_fake(sm_stack).requests) == 0


def test_tools_on_native_dialect_are_refused(sm_stack: Stack, client: OpenAI) -> None:
    tool: Any = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="sm-tgi", messages=MESSAGES, tools=[tool])
    assert "tools" in info.value.message
    assert len(_fake(sm_stack).requests) == 0


@pytest.mark.parametrize(
    ("alias", "setting"),
    [
        ("sm-tgi", {"exception_after": 4}),
        ("sm-tgi", {"exception_after": 4, "exception": "InternalStreamFailure"}),
        ("sm-lmi", {"inband_error_after": 3}),
        ("sm-tgi", {"inband_error_after": 3}),
        ("sm-messages", {"inband_error_after": 3}),
    ],
)
def test_mid_stream_failure_becomes_an_error_event(
    sm_stack: Stack, client: OpenAI, alias: str, setting: dict[str, Any]
) -> None:
    endpoint = _endpoint(sm_stack, alias)
    for name, value in setting.items():
        setattr(endpoint, name, value)
    received: list[str] = []

    def consume() -> None:
        for event in client.chat.completions.create(model=alias, messages=MESSAGES, stream=True):
            received.extend(c.delta.content or "" for c in event.choices)

    with pytest.raises(openai.APIError) as info:
        consume()
    assert received  # the chunks before the failure were delivered
    assert TEXT.startswith("".join(received))
    assert "".join(received) != TEXT
    assert "failed" in info.value.message


def test_stall_after_first_chunks_ends_with_idle_timeout_event(
    open_sm: Callable[..., Stack],
) -> None:
    stack = open_sm(idle_timeout_s=0.3)
    _endpoint(stack, "sm-tgi").stall_after = 3
    started = time.monotonic()
    with (
        OpenAI(base_url=stack.v1, api_key=stack.api_key, max_retries=0) as sdk,
        pytest.raises(openai.APIError) as info,
    ):
        list(sdk.chat.completions.create(model="sm-tgi", messages=MESSAGES, stream=True))
    assert "idle deadline" in info.value.message
    assert time.monotonic() - started < 5


def test_slow_first_token_is_504_before_the_stream_commits(open_sm: Callable[..., Stack]) -> None:
    stack = open_sm(first_byte_timeout_s=0.3)
    _endpoint(stack, "sm-tgi").first_token_delay_s = 2.0
    with (
        OpenAI(base_url=stack.v1, api_key=stack.api_key, max_retries=0) as sdk,
        pytest.raises(openai.InternalServerError) as info,
    ):
        list(sdk.chat.completions.create(model="sm-tgi", messages=MESSAGES, stream=True))
    assert info.value.response.status_code == 504
    assert "first byte" in info.value.message


def test_client_disconnect_closes_the_upstream_stream(sm_stack: Stack, client: OpenAI) -> None:
    endpoint = _endpoint(sm_stack, "sm-tgi")
    endpoint.text = " ".join(["word"] * 200)
    endpoint.gap_s = 0.02
    fake = _fake(sm_stack)
    with client.chat.completions.create(model="sm-tgi", messages=MESSAGES, stream=True) as events:
        for i, _ in enumerate(events):
            if i == 3:
                break
    deadline = time.monotonic() + 2.0
    while fake.disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.disconnects == 1
    assert fake.completed_streams == 0
    assert fake.open_streams == 0


def test_prompts_stay_out_of_debug_logs(
    open_sm: Callable[..., Stack], caplog: pytest.LogCaptureFixture
) -> None:
    marker = "Patient Jane Roe, MRN 4417-2231"
    caplog.set_level(logging.DEBUG)
    stack = open_sm()
    with OpenAI(base_url=stack.v1, api_key=stack.api_key, max_retries=0) as sdk:
        messages: list[Any] = [{"role": "user", "content": marker}]
        sdk.chat.completions.create(model="sm-tgi", messages=messages)
        list(sdk.chat.completions.create(model="sm-vllm", messages=messages, stream=True))
    assert _fake(stack).requests[-1].body["messages"][0]["content"] == marker
    assert caplog.records  # debug logging really was on
    assert "4417-2231" not in caplog.text
    assert "Héllo" not in caplog.text  # nor what the model said


def test_retries_are_bounded(open_sm: Callable[..., Stack]) -> None:
    stack = open_sm(max_retries=1)
    _endpoint(stack, "sm-tgi").error = (503, "ServiceUnavailable", {"message": "busy"})
    with (
        OpenAI(base_url=stack.v1, api_key=stack.api_key, max_retries=0) as sdk,
        pytest.raises(openai.InternalServerError),
    ):
        sdk.chat.completions.create(model="sm-tgi", messages=MESSAGES, stream=True)
    assert len(_fake(stack).requests) == 2  # the call and one retry


@pytest.mark.parametrize("alias", ["sm-tgi", "sm-vllm"])
def test_ledger_records_the_containers_usage_without_the_client_asking(
    sm_stack: Stack, client: OpenAI, alias: str, background: BackgroundLoop
) -> None:
    events = list(client.chat.completions.create(model=alias, messages=MESSAGES, stream=True))
    assert all(e.usage is None and e.choices for e in events)
    [record] = sm_stack.usage(background)
    assert (record.model, record.upstream, record.outcome) == (alias, "sm", "completed")
    assert not record.usage.estimated
    assert record.usage.input_tokens == _prompt_tokens(sm_stack)
    generated = len(tokens_of(TEXT)) + (1 if alias == "sm-tgi" else 0)
    assert record.usage.output_tokens == generated


def test_ledger_marks_sagemaker_estimates(
    sm_stack: Stack, client: OpenAI, background: BackgroundLoop
) -> None:
    _endpoint(sm_stack, "sm-tgi").report_usage = False
    list(client.chat.completions.create(model="sm-tgi", messages=MESSAGES, stream=True))
    [record] = sm_stack.usage(background)
    assert record.usage.estimated
    assert record.usage.output_tokens == len(tokens_of(TEXT)) + 1
