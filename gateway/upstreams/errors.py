"""Translation of upstream failures (HTTP statuses, client exceptions, error events) to the tree.

Upstream status -> gateway answer: 400 -> 400, 404 -> 404, 413 -> 413, 422 -> 422, 429 -> 429 with
the upstream's retry hints, 401/403 -> 502 (the gateway's own credential was refused; the client
can do nothing about it), 408 -> 504, other 4xx -> 400, 503 -> 503, other 5xx -> 502. Only the
upstream's 4xx ``message`` is passed on (truncated); 5xx bodies are never shown to clients.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping

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
    message = err.get("message") if isinstance(err, dict) else None
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
