"""PHI handling through the HTTP app, with the real openai-python SDK as the client and the fake
upstream recording what it received: input redaction, re-identification, masking, policies, the
HIPAA model gate and fail-closed behaviour before and after the stream is committed."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import orjson
import pytest
from openai import (
    BadRequestError,
    InternalServerError,
    OpenAI,
    PermissionDeniedError,
)
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from bench.phi_eval.corpus import generate
from gateway.config import PhiPolicyConfig, Secret
from gateway.demo import Behaviour
from gateway.phi.detectors import Detector
from gateway.phi.redactor import PLACEHOLDER_RE
from tests import identity
from tests.redis_server import free_port
from tests.stack import BackgroundLoop, Stack

PROMPT = "Patient Jane Doe, MRN: A1234567, phone 212-555-0199, email jane.doe@example.org."
ORIGINALS = ("Jane Doe", "A1234567", "212-555-0199", "jane.doe@example.org")
CLINICIAN = "clinician"
TOOLS: list[ChatCompletionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": "lookup_patient",
            "parameters": {"type": "object", "properties": {"patient": {"type": "string"}}},
        },
    }
]


def auto(**policy: Any) -> dict[str, Any]:
    """Tenant settings for PHI handling in ``auto`` mode (``policy``: more of it)."""
    return {"phi": PhiPolicyConfig(**{"mode": "auto", **policy})}


def reidentifying() -> dict[str, Any]:
    return auto(reidentify=True, reidentify_groups=(CLINICIAN,))


_OPEN: list[OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Every SDK client a test made is closed after it (no socket left to the garbage collector)."""
    yield
    while _OPEN:
        _OPEN.pop().close()


def client(stack: Stack, *groups: str) -> OpenAI:
    key = identity.token(groups=groups) if groups else stack.api_key
    sdk = OpenAI(base_url=stack.v1, api_key=key, max_retries=0)
    _OPEN.append(sdk)
    return sdk


def sent(stack: Stack) -> dict[str, Any]:
    """The body of the last request the fake upstream received."""
    return stack.fake.requests[-1][1]


def sent_text(stack: Stack) -> str:
    return orjson.dumps(sent(stack)).decode()


def user(text: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": text}]


def streamed(stream: Iterator[Any]) -> tuple[str, dict[int, str]]:
    """The streamed content and the tool-call arguments by tool call index."""
    content: list[str] = []
    args: dict[int, str] = {}
    for event in stream:
        for choice in event.choices:
            content.append(choice.delta.content or "")
            for call in choice.delta.tool_calls or ():
                args[call.index] = args.get(call.index, "") + (call.function.arguments or "")
    return "".join(content), args


def _leaked(value: str, text: str) -> bool:
    """A corpus value survives verbatim (case-insensitive) or as 6+ of its digits in a row."""
    text = PLACEHOLDER_RE.sub(" ", text)
    if value.casefold() in text.casefold():
        return True
    digits = "".join(ch for ch in value if ch.isdigit())
    return len(digits) >= 6 and digits in "".join(ch for ch in text if ch.isdigit())


# --- input redaction -------------------------------------------------------------------------


def test_no_corpus_value_reaches_the_upstream(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(tenant=auto(), phi={})
    examples = generate(per_template=5, seed=11)
    assert sum(len(e.entities) for e in examples) > 250
    roles = ("user", "system", "assistant", "tool")
    messages: list[dict[str, Any]] = []
    for i, example in enumerate(examples):
        role = roles[i % len(roles)]
        message: dict[str, Any] = {"role": role, "content": example.text}
        if role == "tool":
            message["tool_call_id"] = f"call_{i}"
        if role == "assistant":
            arguments = orjson.dumps({"note": example.text}).decode()
            message["tool_calls"] = [
                {"id": f"call_{i}", "type": "function",
                 "function": {"name": "note", "arguments": arguments}}
            ]  # fmt: skip
        messages.append(message)
    completion = client(stack).chat.completions.create(
        model="test-hipaa",
        messages=messages,  # type: ignore[arg-type]
    )
    received = sent(stack)["messages"]
    assert len(received) == len(examples)
    leaks = [
        (ent.category, ent.value)
        for example, message in zip(examples, received, strict=True)
        for ent in example.entities
        if _leaked(ent.value, orjson.dumps(message).decode())
    ]
    assert leaks == []
    assert PLACEHOLDER_RE.search(orjson.dumps(received).decode())
    assert completion.choices[0].message.content is not None


def test_the_same_value_gets_the_same_placeholder(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(tenant=auto(), phi={})
    client(stack).chat.completions.create(
        model="test-hipaa",
        messages=[
            {"role": "system", "content": "Call Jane Doe at 212-555-0199."},
            {"role": "user", "content": "Is Jane Doe reachable at 212-555-0199?"},
        ],
    )
    system, question = (m["content"] for m in sent(stack)["messages"])
    assert system == "Call [PHI_NAME_1] at [PHI_PHONE_1]."
    assert question == "Is [PHI_NAME_1] reachable at [PHI_PHONE_1]?"
    assert "user" not in sent(stack)


def test_the_usage_record_counts_placeholders_per_category_and_holds_no_value(
    make_stack: Callable[..., Stack], background: BackgroundLoop
) -> None:
    stack = make_stack(tenant=auto(), phi={})
    stream = client(stack).chat.completions.create(
        model="test-hipaa", messages=user(PROMPT), stream=True,
        extra_headers={"X-Conversation-Id": "visit-42"},
    )  # fmt: skip
    streamed(stream)
    placeholders = {m.group(0): m.group(1) for m in PLACEHOLDER_RE.finditer(sent_text(stack))}
    issued = Counter(placeholders.values())
    assert sum(issued.values()) == len(ORIGINALS)
    (record,) = stack.usage(background)
    assert record.conversation_id == "visit-42"
    assert record.phi_counts == dict(issued)
    assert record.outcome == "completed"
    stored = orjson.dumps(record.to_json()).decode()
    assert not any(value in stored for value in ORIGINALS)


# --- answers: re-identification and masking --------------------------------------------------


@pytest.mark.parametrize("piece_chars", [1, 3, 7])
def test_streamed_answer_is_reidentified_for_an_allowed_group(
    make_stack: Callable[..., Stack], piece_chars: int
) -> None:
    stack = make_stack(tenant=reidentifying(), phi={})
    stack.fake.default = Behaviour(piece_chars=piece_chars)  # placeholders cut across chunks
    stream = client(stack, CLINICIAN).chat.completions.create(
        model="test-hipaa", messages=user(PROMPT), stream=True
    )
    content, _ = streamed(stream)
    assert content == f"I received: {PROMPT}"
    assert not any(value in sent_text(stack) for value in ORIGINALS)


def test_non_streamed_answer_is_reidentified_for_an_allowed_group(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(tenant=reidentifying(), phi={})
    completion = client(stack, CLINICIAN).chat.completions.create(
        model="test-hipaa", messages=user(PROMPT)
    )
    assert completion.choices[0].message.content == f"I received: {PROMPT}"


def test_mutated_placeholders_are_reidentified(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(tenant=reidentifying(), phi={})
    stack.fake.default = Behaviour(text="Ask phi_name_1 or [ PHI NAME 1 ] today.", piece_chars=2)
    stream = client(stack, CLINICIAN).chat.completions.create(
        model="test-hipaa", messages=user("Patient Jane Doe is here."), stream=True
    )
    assert streamed(stream)[0] == "Ask Jane Doe or Jane Doe today."


def test_callers_outside_the_groups_get_placeholders(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(tenant=reidentifying(), phi={})
    stack.fake.default = Behaviour(piece_chars=4)
    stream = client(stack, "nurse").chat.completions.create(
        model="test-hipaa", messages=user(PROMPT), stream=True
    )
    content, _ = streamed(stream)
    assert "[PHI_NAME_1]" in content
    assert not any(value in content for value in ORIGINALS)


@pytest.mark.parametrize("piece_chars", [1, 2, 5])
def test_echoed_and_generated_phi_is_masked_across_chunks(
    make_stack: Callable[..., Stack], piece_chars: int
) -> None:
    stack = make_stack(tenant=auto(), phi={})
    answer = "Jane Doe can be reached at 415-555-0123 or jdoe@example.com; SSN 123-45-6789."
    stack.fake.default = Behaviour(text=answer, piece_chars=piece_chars)
    stream = client(stack).chat.completions.create(
        model="test-hipaa", messages=user("Where is Jane Doe?"), stream=True
    )
    content, _ = streamed(stream)
    for value in ("Jane Doe", "415-555-0123", "jdoe@example.com", "123-45-6789"):
        assert value not in content
    assert content.startswith("[PHI_NAME_1] can be reached at [PHI_PHONE_")
    whole = client(stack).chat.completions.create(
        model="test-hipaa", messages=user("Where is Jane Doe?")
    )
    assert whole.choices[0].message.content == content  # streamed == whole-text


def test_tool_call_argument_deltas_are_masked_and_reidentified(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(tenant=reidentifying(), phi={})
    # 7-character deltas cut both values; the SSN is generated by the model (not in the prompt).
    stack.fake.default = Behaviour(tool_arguments='{"patient": "Jane Doe", "ssn": "123-45-6789"}')
    for groups, name in (((), "[PHI_NAME_1]"), ((CLINICIAN,), "Jane Doe")):
        stream = client(stack, *groups).chat.completions.create(
            model="test-hipaa", messages=user("Look up Jane Doe."), tools=TOOLS, stream=True
        )
        _, args = streamed(stream)
        parsed = orjson.loads(args[0])
        assert parsed["patient"] == name
        assert re.fullmatch(r"\[PHI_SSN_\d+\]", parsed["ssn"])
        completion = client(stack, *groups).chat.completions.create(
            model="test-hipaa", messages=user("Look up Jane Doe."), tools=TOOLS
        )
        calls = completion.choices[0].message.tool_calls or []
        assert orjson.loads(calls[0].function.arguments) == parsed  # type: ignore[union-attr]


def test_every_choice_is_transformed_and_flushed(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(tenant=auto(), phi={})
    stack.fake.default = Behaviour(text="Call 212-555-0199", piece_chars=3)
    stream = client(stack).chat.completions.create(
        model="test-hipaa", messages=user("hello"), stream=True, n=2
    )
    texts: dict[int, str] = {}
    finished: dict[int, int] = {}
    for event in stream:
        for choice in event.choices:
            assert choice.index not in finished, "text after the finish chunk"
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            if choice.finish_reason is not None:
                finished[choice.index] = 1
    assert texts == {0: "Call [PHI_PHONE_1]", 1: "Call [PHI_PHONE_1]"}


# --- policies ----------------------------------------------------------------------------------


def test_manual_mode_needs_the_request_to_opt_in(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(tenant={"phi": PhiPolicyConfig(mode="manual")}, phi={})
    api = client(stack)
    api.chat.completions.create(model="test-chat", messages=user(PROMPT))
    assert sent(stack)["messages"][0]["content"] == PROMPT  # off: the untouched fast path
    api.chat.completions.create(
        model="test-hipaa", messages=user(PROMPT), extra_body={"enable_phi": True}
    )
    assert "Jane Doe" not in sent_text(stack)
    assert "enable_phi" not in sent(stack)
    api.chat.completions.create(
        model="test-hipaa",
        messages=user("Jane Doe has diabetes."),
        extra_body={"phi_categories": ["diagnosis"]},
    )
    assert sent(stack)["messages"][0]["content"] == "[PHI_NAME_1] has [PHI_DIAGNOSIS_1]."
    assert "phi_categories" not in sent(stack)


def test_diagnosis_is_not_redacted_by_default(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(tenant=auto(), phi={})
    client(stack).chat.completions.create(
        model="test-hipaa", messages=user("Jane Doe has diabetes.")
    )
    assert sent(stack)["messages"][0]["content"] == "[PHI_NAME_1] has diabetes."


def test_disabled_mode_refuses_opt_in_and_forwards_as_is(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(tenant={"phi": PhiPolicyConfig(mode="disabled")}, phi={})
    api = client(stack)
    with pytest.raises(BadRequestError) as err:
        api.chat.completions.create(
            model="test-hipaa", messages=user(PROMPT), extra_body={"enable_phi": True}
        )
    assert err.value.code == "phi_disabled"
    api.chat.completions.create(model="test-chat", messages=user(PROMPT))
    assert sent(stack)["messages"][0]["content"] == PROMPT


def test_non_hipaa_models_are_refused_while_phi_handling_is_on(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(tenant=auto(), phi={})
    before = len(stack.fake.requests)
    for stream in (False, True):
        with pytest.raises(PermissionDeniedError) as err:
            client(stack).chat.completions.create(
                model="test-chat", messages=user(PROMPT), stream=stream
            )
        assert err.value.code == "model_not_hipaa_eligible"
        assert err.value.status_code == 403
    assert len(stack.fake.requests) == before


def test_unmaskable_request_fields_are_refused(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(tenant=auto(), phi={})
    with pytest.raises(BadRequestError) as err:
        client(stack).chat.completions.create(
            model="test-hipaa", messages=user(PROMPT), logprobs=True
        )
    assert err.value.param == "logprobs"


async def test_conversation_id_needs_a_shared_vault_or_one_worker(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(tenant=auto(), phi={}, server={"workers": 2})
    body = {"model": "test-hipaa", "messages": user(PROMPT), "conversation_id": "c-1"}
    async with (
        aiohttp.ClientSession(headers=stack.headers) as http,
        http.post(f"{stack.v1}/chat/completions", json=body) as response,
    ):
        assert response.status == 400
        error = (await response.json())["error"]
    assert error["param"] == "conversation_id"


# --- fail closed ---------------------------------------------------------------------------------


def test_vault_failure_before_the_stream_is_a_500(make_stack: Callable[..., Stack]) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    key = "A" * 43 + "="
    stack = make_stack(
        tenant=auto(), phi={"vault": "redis", "redis_url": Secret(dead), "vault_key": Secret(key)}
    )
    before = len(stack.fake.requests)
    for stream in (False, True):
        with pytest.raises(InternalServerError) as err:
            client(stack).chat.completions.create(
                model="test-hipaa",
                messages=user(PROMPT),
                stream=stream,
                extra_headers={"X-Conversation-Id": "conv-1"},
            )
        assert err.value.status_code == 500
        assert "vault" in err.value.message
    assert len(stack.fake.requests) == before  # nothing went upstream


async def test_reasoning_content_is_masked_like_content(make_stack: Callable[..., Stack]) -> None:
    """A reasoning model's thinking streams through the masker too (it used to end the stream)."""
    stack = make_stack(tenant=auto(), phi={})
    stack.fake.default = Behaviour(
        text="Fine.", extra_delta={"reasoning_content": "Jane Doe, 212-555-0199. "}
    )
    events = await _raw_stream(stack, "Jane Doe?")
    assert not any("error" in e for e in events)
    thinking = "".join(
        c["delta"].get("reasoning_content") or "" for e in events for c in e.get("choices", ())
    )
    assert thinking.startswith("[PHI_NAME_1], [PHI_PHONE_1]. ")
    assert "Jane Doe" not in thinking
    assert "212-555-0199" not in thinking


async def test_unknown_event_shape_after_commit_ends_with_an_error_event(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(tenant=auto(), phi={})
    stack.fake.default = Behaviour(
        text="Jane Doe is fine",
        extra_delta={"thinking": "Jane Doe, 212-555-0199"},
        chunk_delay_s=0.05,  # the role chunk alone commits the response first
    )
    events = await _raw_stream(stack, "Jane Doe?")
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "error" in events[-1]
    assert events[-1]["error"]["type"] == "api_error"
    raw = orjson.dumps(events).decode()
    assert "Jane Doe" not in raw
    assert "212-555-0199" not in raw


async def test_detector_failure_mid_stream_ends_with_an_error_event(
    make_stack: Callable[..., Stack], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = make_stack(tenant=auto(), phi={})
    stack.fake.default = Behaviour(
        text="All good so far. Then boom: 212-555-0199", piece_chars=4, chunk_delay_s=0.01
    )
    real = Detector.scan

    def failing(self: Detector, text: str, start: int, stop: int) -> Any:
        if "boom" in text:
            raise RuntimeError("detector crashed")
        return real(self, text, start, stop)

    monkeypatch.setattr(Detector, "scan", failing)
    events = await _raw_stream(stack, "hello")
    assert "error" in events[-1]
    content = "".join(
        c["delta"].get("content") or "" for e in events[:-1] for c in e.get("choices", ())
    )
    assert "boom" not in content
    assert "212-555-0199" not in content
    assert content.startswith("All good")


async def _raw_stream(stack: Stack, prompt: str) -> list[dict[str, Any]]:
    body = {"model": "test-hipaa", "stream": True, "messages": user(prompt)}
    async with (
        aiohttp.ClientSession(headers=stack.headers) as http,
        http.post(f"{stack.v1}/chat/completions", json=body) as response,
    ):
        assert response.status == 200
        raw = (await response.read()).decode()
    return [
        orjson.loads(line[6:])
        for line in raw.splitlines()
        if line.startswith("data: ") and line != "data: [DONE]"
    ]


# --- the shared vault ---------------------------------------------------------------------------


def test_a_conversation_continues_on_another_instance_through_redis(
    make_stack: Callable[..., Stack], redis_url: str
) -> None:
    phi = {
        "vault": "redis",
        "redis_url": Secret(redis_url),
        "vault_key": Secret("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="),
        "key_prefix": f"t:{id(make_stack)}:",
    }
    first, second = (
        make_stack(tenant=reidentifying(), phi=phi, server={"workers": 2}) for _ in "ab"
    )
    conversation = {"X-Conversation-Id": "visit-42"}
    client(first, CLINICIAN).chat.completions.create(
        model="test-hipaa", messages=user(PROMPT), extra_headers=conversation
    )
    assert "[PHI_NAME_1]" in sent_text(first)
    # Turn two, on the other instance: the same person keeps her placeholder, a new one is
    # numbered after her, and the answer's placeholders are re-identified from the shared vault.
    second.fake.default = Behaviour(text="[PHI_NAME_1] and [PHI_NAME_2] agree.", piece_chars=3)
    stream = client(second, CLINICIAN).chat.completions.with_raw_response.create(
        model="test-hipaa",
        messages=user("Jane Doe asked John Roe."),
        stream=True,
        extra_headers=conversation,
    )
    assert stream.headers["x-conversation-id"] == "visit-42"
    content, _ = streamed(stream.parse())
    assert sent(second)["messages"][0]["content"] == "[PHI_NAME_1] asked [PHI_NAME_2]."
    assert content == "Jane Doe and John Roe agree."
    # Without the conversation id, the request is a conversation of its own: nothing to restore.
    alone = client(second, CLINICIAN).chat.completions.create(
        model="test-hipaa", messages=user("hello")
    )
    assert alone.choices[0].message.content == "[PHI_NAME_1] and [PHI_NAME_2] agree."


def test_embeddings_of_an_auto_tenant_need_a_hipaa_eligible_model(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(tenant=auto(), phi={})
    before = len(stack.fake.requests)
    with pytest.raises(PermissionDeniedError) as err:
        client(stack).embeddings.create(model="test-embed", input=PROMPT)
    assert err.value.code == "model_not_hipaa_eligible"
    assert len(stack.fake.requests) == before
    manual = make_stack(tenant={"phi": PhiPolicyConfig(mode="manual")}, phi={})
    assert client(manual).embeddings.create(model="test-embed", input="hello").data


def test_zip3_policy_sends_the_safe_harbor_prefix_and_masks_answers_alike(
    make_stack: Callable[..., Stack],
) -> None:
    """With `zip3`, the model sees `627XX` and the city's placeholder; a ZIP it writes itself is
    generalised the same way; a re-identifying caller gets the city back, never the ZIP."""
    tenant = auto(reidentify=True, reidentify_groups=(CLINICIAN,), zip3=True)
    stack = make_stack(tenant=tenant, phi={})
    stack.fake.default = Behaviour(text="Zone: ZIP 03601. Near [PHI_LOCATION_1], IL 627XX.")
    for groups, city in (((), "[PHI_LOCATION_1]"), ((CLINICIAN,), "Springfield")):
        answer = client(stack, *groups).chat.completions.create(
            model="test-hipaa", messages=user("She lives in Springfield, IL 62704.")
        )
        assert "She lives in [PHI_LOCATION_1], IL 627XX." in sent_text(stack)
        assert answer.choices[0].message.content == f"Zone: ZIP 000XX. Near {city}, IL 627XX."
