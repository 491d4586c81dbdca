"""``Privacy`` / ``PhiSession`` without HTTP: notes for settlement, logs without values, limits."""

from __future__ import annotations

import logging

import pytest

from gateway.config import load_config
from gateway.context import ChatRequest, PhiOptions, Principal, RequestContext
from gateway.errors import InvalidRequest, PayloadTooLarge
from gateway.privacy import Privacy

CONFIG = """
[auth.dev_issuer]
enabled = true

[upstreams.u]
base_url = "http://127.0.0.1:4000"

[models.safe]
upstream = "u"
target = "m"
hipaa_eligible = true

[tenants.clinic.phi]
mode = "auto"

[server]
workers = 1

[phi]
max_input_bytes = 2048
inline_bytes = 64
"""
PROMPT = "Patient Jane Doe, MRN: A1234567, phone 212-555-0199; Jane Doe again."


def _ctx() -> RequestContext:
    principal = Principal(subject="s", tenant_id="clinic", via="test")
    return RequestContext(request_id="req_1", started_at=0.0, principal=principal)


def _request(text: str, conversation: str | None = None) -> ChatRequest:
    body = {"model": "safe", "messages": [{"role": "user", "content": text}], "user": "a@b.org"}
    return ChatRequest(
        model="safe", stream=False, body=body, phi=PhiOptions(conversation_id=conversation)
    )


async def test_notes_get_the_conversation_and_counts_and_logs_no_values(
    caplog: pytest.LogCaptureFixture,
) -> None:
    privacy = Privacy(load_config(CONFIG, {}))
    await privacy.start()
    ctx, request = _ctx(), _request(PROMPT)
    session = await privacy.begin(ctx, request, load_config(CONFIG, {}).models["safe"])
    assert session is not None
    with caplog.at_level(logging.INFO, logger="gateway.phi"):
        body = await session.redact(request.body)  # 70 characters: over inline_bytes (thread)
    assert body["messages"][0]["content"] == (
        "Patient [PHI_NAME_1], MRN: [PHI_MEDICAL_RECORD_1], phone [PHI_PHONE_1]; "
        "[PHI_NAME_1] again."
    )
    assert "user" not in body
    assert ctx.notes.conversation_id == "req_1"
    assert ctx.notes.phi_counts == {"NAME": 1, "MEDICAL_RECORD": 1, "PHONE": 1}
    logged = "\n".join(r.getMessage() + str(getattr(r, "fields", "")) for r in caplog.records)
    assert "NAME" in logged
    assert not any(v in logged for v in ("Jane", "A1234567", "212-555-0199"))
    await privacy.aclose()


async def test_prompt_size_cap_and_conversations_across_requests() -> None:
    config = load_config(CONFIG, {})
    privacy = Privacy(config)
    model = config.models["safe"]
    big = _request("x" * 3000)
    session = await privacy.begin(_ctx(), big, model)
    assert session is not None
    with pytest.raises(PayloadTooLarge):
        await session.redact(big.body)
    first = _request("Jane Doe called.", "visit-1")
    s1 = await privacy.begin(_ctx(), first, model)
    assert s1 is not None
    await s1.redact(first.body)
    second = _request("John Roe and Jane Doe.", "visit-1")
    ctx = _ctx()
    s2 = await privacy.begin(ctx, second, model)
    assert s2 is not None
    body = await s2.redact(second.body)
    assert body["messages"][0]["content"] == "[PHI_NAME_2] and [PHI_NAME_1]."
    assert ctx.notes.phi_counts == {"NAME": 1}  # only what this request issued
    assert ctx.response_headers["x-conversation-id"] == "visit-1"


async def test_conversation_ids_are_refused_without_a_shared_vault() -> None:
    config = load_config(CONFIG.replace("workers = 1", "workers = 4"), {})
    privacy = Privacy(config)
    with pytest.raises(InvalidRequest, match="shared PHI vault"):
        await privacy.begin(_ctx(), _request("hi", "visit-1"), config.models["safe"])
    assert await privacy.begin(_ctx(), _request("hi"), config.models["safe"]) is not None
