"""SageMaker error responses -> the gateway's error tree (pure mapping, no botocore)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import (
    GatewayError,
    InvalidRequest,
    NotFound,
    RateLimited,
    UnprocessableEntity,
    UpstreamError,
    UpstreamUnavailable,
)
from gateway.upstreams.errors import COLD_RETRY_AFTER_S, error_from_sagemaker


def _response(code: str, status: int, message: str = "", **extra: Any) -> dict[str, Any]:
    return {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}},
        **extra,
    }


def _model_error(original: int, body: str = "") -> dict[str, Any]:
    return _response(
        "ModelError", 424, "Received error", OriginalStatusCode=original, OriginalMessage=body
    )


@pytest.mark.parametrize(
    ("response", "cls", "status"),
    [
        (_model_error(400), InvalidRequest, 400),
        (_model_error(404), NotFound, 404),
        (_model_error(422), UnprocessableEntity, 422),
        (_model_error(429), RateLimited, 429),
        (_model_error(500), UpstreamError, 502),
        (_model_error(503), UpstreamUnavailable, 503),
        (_response("ThrottlingException", 400, "Rate exceeded"), RateLimited, 429),
        (_response("ModelNotReadyException", 429), UpstreamUnavailable, 503),
        (_response("ValidationError", 400, "Endpoint x of account 1 not found."), NotFound, 404),
        (
            _response("ValidationError", 400, "Inference Component Name ic-1 not found"),
            NotFound,
            404,
        ),
        (_response("ValidationError", 400, "Input is malformed"), InvalidRequest, 400),
        (_response("ServiceUnavailable", 503), UpstreamUnavailable, 503),
        (_response("InternalFailure", 500), UpstreamError, 502),
        (_response("InternalDependencyException", 530), UpstreamError, 502),
    ],
)
def test_mapping(response: dict[str, Any], cls: type[GatewayError], status: int) -> None:
    error = error_from_sagemaker(response, "sm")
    assert type(error) is cls
    assert error.http_status == status
    assert "account" not in error.message


def test_cold_and_scaled_to_zero_say_so_and_ask_for_a_later_retry() -> None:
    for response in (
        _response("ModelNotReadyException", 429, "Model is not ready"),
        _response("ValidationError", 400, "Inference Component has no capacity to process"),
    ):
        error = error_from_sagemaker(response, "sm")
        assert error.http_status == 503
        assert error.retry_after_s == COLD_RETRY_AFTER_S
        assert "starting" in error.message
        assert error.headers()["retry-after"] == "30"


def test_throttling_honours_the_retry_after_header() -> None:
    response = _response("ThrottlingException", 400)
    response["ResponseMetadata"]["HTTPHeaders"] = {"Retry-After": "7"}
    assert error_from_sagemaker(response, "sm").retry_after_s == 7.0


def test_container_4xx_message_is_passed_5xx_is_not() -> None:
    tgi = '{"error": "Input validation error: too long", "error_type": "validation"}'
    assert "too long" in error_from_sagemaker(_model_error(400, tgi), "sm").message
    internal = '{"error": "stack trace with internals"}'
    assert "internals" not in error_from_sagemaker(_model_error(500, internal), "sm").message
