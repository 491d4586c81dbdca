"""The gateway's one error tree; each class knows its HTTP status, OpenAI type/code and retry hints.

```
GatewayError                    500 api_error
├── RequestRejected             4xx
│   ├── InvalidRequest          400 invalid_request_error
│   │   ├── PayloadTooLarge     413 invalid_request_error
│   │   └── UnprocessableEntity 422 invalid_request_error
│   ├── AuthenticationFailed    401 authentication_error
│   ├── PermissionDenied        403 permission_error
│   ├── NotFound                404 invalid_request_error   (unknown path)
│   │   └── ModelNotFound       404 invalid_request_error   code model_not_found
│   ├── MethodNotAllowed        405 invalid_request_error
│   └── RateLimited             429 rate_limit_exceeded     retry_after_s, x-should-retry: true
│       └── QuotaExhausted      429 insufficient_quota      x-should-retry: false
├── UpstreamError               502 api_error               x-should-retry: false
│   ├── UpstreamUnavailable     503 api_error               retry_after_s, x-should-retry: true
│   ├── UpstreamTimeout         504 timeout                 phase: connect|first_byte|idle|total
│   └── UpstreamProtocolError   502 api_error               malformed SSE / body
├── ServerShuttingDown          503 server_shutdown         x-should-retry: true
├── LedgerFull                  503 api_error               ledger queue and spill full
└── RedactionFailed             500 api_error               PHI fail-closed
ConfigError                     start-up only, never rendered over HTTP
```

Messages are safe for clients: they never carry PHI, tokens or upstream bodies, except the
upstream's own 4xx ``message`` (which only ever saw redacted input). Rendering to bytes happens in
``error_body``; the HTTP layer adds headers from ``headers()``. No aiohttp here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import ClassVar, Literal

import orjson

TimeoutPhase = Literal["connect", "first_byte", "idle", "total", "client_write"]


class GatewayError(Exception):
    """Base of every error a client may see."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "api_error"
    default_code: ClassVar[str | None] = None
    should_retry: ClassVar[bool | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after_s: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.retry_after_s = retry_after_s
        self.http_status = status if status is not None else self.status

    def to_dict(self) -> dict[str, object]:
        """The OpenAI error object (all four keys always present)."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def headers(self) -> dict[str, str]:
        """Retry hints for the SDKs: ``retry-after(-ms)`` and ``x-should-retry``."""
        headers: dict[str, str] = {}
        if self.retry_after_s is not None and self.retry_after_s > 0:
            headers["retry-after"] = str(max(1, math.ceil(self.retry_after_s)))
            headers["retry-after-ms"] = str(max(1, round(self.retry_after_s * 1000)))
        if self.should_retry is not None:
            headers["x-should-retry"] = "true" if self.should_retry else "false"
        return headers


class RequestRejected(GatewayError):
    """The request cannot be served as sent (4xx)."""

    status = 400
    type = "invalid_request_error"


class InvalidRequest(RequestRejected):
    """Malformed JSON, wrong types, missing or invalid fields."""


class PayloadTooLarge(InvalidRequest):
    status = 413


class UnprocessableEntity(InvalidRequest):
    status = 422


class AuthenticationFailed(RequestRejected):
    """Missing, malformed, expired or unverifiable credentials (RFC 6750 challenge attached)."""

    status = 401
    type = "authentication_error"
    default_code = "invalid_api_key"

    def headers(self) -> dict[str, str]:
        """``WWW-Authenticate: Bearer`` as RFC 6750 section 3 asks of every 401."""
        return {**super().headers(), "www-authenticate": 'Bearer realm="gateway"'}


class PermissionDenied(RequestRejected):
    status = 403
    type = "permission_error"


class NotFound(RequestRejected):
    status = 404


class ModelNotFound(NotFound):
    default_code = "model_not_found"


class MethodNotAllowed(RequestRejected):
    status = 405

    def __init__(self, message: str, *, allowed: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.allowed = tuple(sorted(set(allowed)))

    def headers(self) -> dict[str, str]:
        """``Allow`` lists the methods the path accepts (RFC 9110 section 15.5.6)."""
        return {**super().headers(), "allow": ", ".join(self.allowed)}


class RateLimited(RequestRejected):
    """A limit is reached; ``headers`` carries the ``x-ratelimit-*`` values of the refusal."""

    status = 429
    type = "rate_limit_exceeded"
    default_code = "rate_limit_exceeded"
    should_retry = True

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float | None = None,
        headers: Mapping[str, str] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, retry_after_s=retry_after_s, status=status)
        self.limit_headers = dict(headers or {})

    def headers(self) -> dict[str, str]:
        """Retry hints plus the ``x-ratelimit-*`` headers."""
        return {**self.limit_headers, **super().headers()}


class QuotaExhausted(RateLimited):
    type = "insufficient_quota"
    default_code = "insufficient_quota"
    should_retry = False


class UpstreamError(GatewayError):
    """The upstream failed; the gateway already decided not to retry (avoids 3x amplification)."""

    status = 502
    should_retry = False


class UpstreamUnavailable(UpstreamError):
    status = 503
    should_retry = True


class UpstreamTimeout(UpstreamError):
    status = 504
    type = "timeout"

    def __init__(self, phase: TimeoutPhase, timeout_s: float) -> None:
        super().__init__(
            f"upstream did not answer in time ({phase.replace('_', ' ')} deadline of "
            f"{timeout_s:g}s)",
            code=f"{phase}_timeout",
        )
        self.phase = phase


class UpstreamProtocolError(UpstreamError):
    pass


class ServerShuttingDown(GatewayError):
    status = 503
    type = "server_shutdown"
    should_retry = True


class LedgerFull(GatewayError):
    """The usage ledger is unreachable and its local buffers are full: new requests wait."""

    status = 503
    default_code = "usage_ledger_unavailable"
    should_retry = True


class RedactionFailed(GatewayError):
    """PHI redaction failed; the request ends instead of forwarding raw text."""


class ConfigError(Exception):
    """Invalid configuration; every problem is listed. Start-up only (exit status 3)."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in self.problems))


def error_body(error: GatewayError) -> bytes:
    """The JSON body of an error response."""
    return orjson.dumps(error.to_dict())


def sse_error_event(error: GatewayError) -> bytes:
    """The SSE event that ends a stream which already started: ``data: {"error": ...}``."""
    return b"data: " + orjson.dumps(error.to_dict()) + b"\n\n"


INTERNAL_ERROR_MESSAGE = "the gateway failed to process the request"


def internal_error() -> GatewayError:
    """The opaque error shown for an unexpected exception (details only in the logs)."""
    return GatewayError(INTERNAL_ERROR_MESSAGE)
