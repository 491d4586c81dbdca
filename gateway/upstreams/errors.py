"""Translation of upstream failures (HTTP statuses, client exceptions, error events) to the tree.

Upstream status -> gateway answer: 400 -> 400, 404 -> 404, 413 -> 413, 422 -> 422, 429 -> 429 with
the upstream's retry hints, 401/403 -> 502 (the gateway's own credential was refused; the client
can do nothing about it), 408 -> 504, other 4xx -> 400, 503 -> 503, other 5xx -> 502. Only the
upstream's 4xx ``message`` is passed on (truncated); 5xx bodies are never shown to clients.

SageMaker errors (``error_from_sagemaker``, from a botocore error response, no botocore import):
``ModelError`` follows the container's original status (4xx -> 400/422 with its message, 429 ->
429, 5xx -> 502); ``ThrottlingException`` -> 429; ``ModelNotReadyException`` and an inference
component without capacity (scaled to zero) -> 503, both with ``retry-after``; ``ValidationError``
-> 404 for an unknown endpoint or inference component, else 400; ``ServiceUnavailable`` -> 503;
other 5xx -> 502.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

import aiohttp
import orjson

from gateway.errors import (
    GatewayError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    RequestRejected,
    TimeoutPhase,
    UnprocessableEntity,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.sse import SSEProtocolError
from gateway.wire import WireError

_MAX_MESSAGE_CHARS = 1000
#: Seconds a client should wait before retrying a cold or scaled-to-zero endpoint.
COLD_RETRY_AFTER_S: Final = 30.0
_NOT_FOUND: Final = re.compile(r"(endpoint|inference component).*\bnot found", re.IGNORECASE)
_NO_CAPACITY: Final = re.compile(r"no capacity|scaled? (down )?to zero|capacity.*0", re.IGNORECASE)


def error_from_status(
    status: int, body: bytes, headers: Mapping[str, str], upstream: str
) -> GatewayError:
    """The gateway error for a non-2xx upstream response."""
    message = _upstream_message(body)
    retry_after = _retry_after_s(headers)
    if status in (400, 404, 413, 422) or (
        400 <= status < 500 and status not in (401, 403, 408, 429)
    ):
        cls: type[RequestRejected] = {
            404: NotFound, 413: PayloadTooLarge, 422: UnprocessableEntity
        }.get(status, InvalidRequest)  # fmt: skip
        return cls(message or f"upstream rejected the request ({status})")
    if status == 429:
        return RateLimited(
            message or "the upstream model is rate limited; retry later",
            retry_after_s=retry_after if retry_after is not None else 1.0,
        )
    if status in (401, 403):
        return UpstreamError(f"upstream {upstream!r} refused the gateway's credentials")
    if status == 408:
        return UpstreamError("upstream timed out", status=504)
    if status == 503:
        return UpstreamUnavailable(
            f"upstream {upstream!r} is unavailable", retry_after_s=retry_after or 1.0
        )
    return UpstreamError(f"upstream {upstream!r} failed ({status})")


def error_from_event(payload: object, upstream: str) -> GatewayError:
    """The gateway error for a ``data: {"error": ...}`` event inside an upstream stream."""
    code = None
    if isinstance(payload, dict) and isinstance(err := payload.get("error"), dict):
        raw_code = err.get("code")
        # LiteLLM puts the HTTP status in `code`, as a string.
        if isinstance(raw_code, int | str) and str(raw_code).isdigit():
            code = int(raw_code)
    if code == 429:
        return RateLimited("the upstream model is rate limited; retry later", retry_after_s=1.0)
    return UpstreamError(f"upstream {upstream!r} failed during the stream")


def _upstream_message(body: bytes) -> str | None:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    err = obj.get("error") if isinstance(obj, dict) else None
    # OpenAI/LiteLLM: {"error": {"message": ...}}; TGI and LMI: {"error": "...", ...}.
    message = err.get("message") if isinstance(err, dict) else err
    if isinstance(message, str) and message.strip():
        return message[:_MAX_MESSAGE_CHARS]
    return None


def _retry_after_s(headers: Mapping[str, str]) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                seconds = float(value) * scale
            except ValueError:
                continue
            if 0 < seconds <= 120:
                return seconds
    return None


@contextlib.contextmanager
def map_upstream_errors(
    upstream: str, phase: TimeoutPhase, phase_timeout_s: float
) -> Iterator[None]:
    """Translate transport exceptions raised in the block into ``UpstreamError`` subclasses.

    ``GatewayError`` passes through; a timeout is reported as ``phase`` unless the connection
    itself timed out.
    """
    try:
        yield
    except GatewayError:
        raise
    except aiohttp.ConnectionTimeoutError as exc:
        raise UpstreamTimeout("connect", phase_timeout_s) from exc
    except TimeoutError as exc:
        raise UpstreamTimeout(phase, phase_timeout_s) from exc
    except aiohttp.ClientConnectorError as exc:
        raise UpstreamUnavailable(
            f"cannot connect to upstream {upstream!r}", retry_after_s=1.0
        ) from exc
    except (aiohttp.ClientError, SSEProtocolError, WireError) as exc:
        raise UpstreamProtocolError(f"upstream {upstream!r} broke the protocol") from exc
    except asyncio.IncompleteReadError as exc:
        raise UpstreamProtocolError(f"upstream {upstream!r} closed the stream early") from exc


def error_from_sagemaker(response: Mapping[str, Any], upstream: str) -> GatewayError:
    """The gateway error for a SageMaker runtime error response (botocore ``ClientError.response``).

    Messages from AWS are only matched, never passed on (they name accounts and endpoints); the
    container's own 4xx message is, as for other upstreams.
    """
    error = response.get("Error") or {}
    code = str(error.get("Code", ""))
    message = str(error.get("Message", ""))
    meta = response.get("ResponseMetadata") or {}
    status = int(meta.get("HTTPStatusCode") or 0)
    headers = {str(k).lower(): str(v) for k, v in (meta.get("HTTPHeaders") or {}).items()}
    retry_after = _retry_after_s(headers)
    if code == "ModelError":
        original = response.get("OriginalStatusCode")
        body = str(response.get("OriginalMessage") or "").encode()
        return error_from_status(int(original or 500), body, headers, upstream)
    if code == "ThrottlingException":
        return RateLimited(
            "the model endpoint is throttling requests; retry later",
            retry_after_s=retry_after or 1.0,
        )
    if code == "ModelNotReadyException" or (
        code == "ValidationError" and _NO_CAPACITY.search(message)
    ):
        return UpstreamUnavailable(
            "the model is starting (cold or scaled to zero); retry in a moment",
            retry_after_s=retry_after or COLD_RETRY_AFTER_S,
        )
    if code == "ValidationError":
        if _NOT_FOUND.search(message):
            return NotFound(f"the model's endpoint on upstream {upstream!r} does not exist")
        return InvalidRequest("the model endpoint rejected the request")
    if status == 503 or code == "ServiceUnavailable":
        return UpstreamUnavailable(
            f"upstream {upstream!r} is unavailable", retry_after_s=retry_after or 1.0
        )
    return UpstreamError(f"upstream {upstream!r} failed ({code or status})")
