from __future__ import annotations

import orjson
import pytest

from gateway.errors import (
    GatewayError,
    ModelNotFound,
    PayloadTooLarge,
    QuotaExhausted,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
    error_body,
    sse_error_event,
)
from gateway.upstreams.errors import error_from_event, error_from_status


def test_body_always_has_four_keys() -> None:
    body = orjson.loads(error_body(GatewayError("boom")))
    assert body == {"error": {"message": "boom", "type": "api_error", "param": None, "code": None}}


@pytest.mark.parametrize(
    ("error", "status", "type_", "code"),
    [
        (PayloadTooLarge("x"), 413, "invalid_request_error", None),
        (ModelNotFound("x"), 404, "invalid_request_error", "model_not_found"),
        (RateLimited("x"), 429, "rate_limit_exceeded", "rate_limit_exceeded"),
        (QuotaExhausted("x"), 429, "insufficient_quota", "insufficient_quota"),
        (UpstreamTimeout("idle", 3), 504, "timeout", "idle_timeout"),
        (UpstreamUnavailable("x"), 503, "api_error", None),
    ],
)
def test_classes_fix_status_type_and_code(
    error: GatewayError, status: int, type_: str, code: str | None
) -> None:
    assert error.http_status == status
    assert error.to_dict()["error"] == {
        "message": error.message,
        "type": type_,
        "param": None,
        "code": code,
    }


def test_retry_hints_follow_the_sdk_rules() -> None:
    assert RateLimited("x", retry_after_s=1.2).headers() == {
        "retry-after": "2",
        "retry-after-ms": "1200",
        "x-should-retry": "true",
    }
    assert QuotaExhausted("x").headers() == {"x-should-retry": "false"}
    assert UpstreamError("x").headers() == {"x-should-retry": "false"}
    assert GatewayError("x").headers() == {}


def test_sse_error_event_framing() -> None:
    event = sse_error_event(UpstreamError("gone"))
    assert event.startswith(b"data: {")
    assert event.endswith(b"}\n\n")
    assert orjson.loads(event[6:])["error"]["message"] == "gone"


@pytest.mark.parametrize(
    ("status", "expected_status", "retry"),
    [(400, 400, None), (404, 404, None), (413, 413, None), (422, 422, None), (418, 400, None),
     (401, 502, "false"), (403, 502, "false"), (408, 504, "false"), (429, 429, "true"),
     (500, 502, "false"), (502, 502, "false"), (503, 503, "true")],
)  # fmt: skip
def test_upstream_statuses_map(status: int, expected_status: int, retry: str | None) -> None:
    body = b'{"error": {"message": "upstream says no", "type": "None", "code": "400"}}'
    error = error_from_status(status, body, {"retry-after": "3"}, "litellm")
    assert error.http_status == expected_status
    assert error.headers().get("x-should-retry") == retry
    if 400 <= expected_status < 500 and expected_status != 429:
        assert error.message == "upstream says no"
    if expected_status >= 500:
        assert "upstream says no" not in error.message


def test_upstream_429_keeps_its_retry_after() -> None:
    error = error_from_status(429, b"not json", {"retry-after-ms": "2500"}, "u")
    assert error.retry_after_s == 2.5


def test_upstream_stream_error_event_maps_without_leaking_its_text() -> None:
    event = {"error": {"message": "secret patient text", "type": "None", "code": "500"}}
    error = error_from_event(event, "litellm")
    assert error.http_status == 502
    assert "secret" not in error.message
    assert error_from_event({"error": {"code": "429"}}, "u").http_status == 429
