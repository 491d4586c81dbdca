"""The usage record of one request, and the token counts read from an upstream's ``usage``.

A record is keyed by the request id; writing it twice is a no-op in every sink. Token counts come
from the upstream's ``usage`` object when there is one (with its cached and reasoning details);
otherwise they are estimated and the record says so (``estimated``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, Literal, get_args

Outcome = Literal["completed", "client_disconnected", "upstream_error", "timeout"]
OUTCOMES: Final[tuple[str, ...]] = get_args(Outcome)
Endpoint = Literal["chat", "embedding"]


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Token counts of one request."""

    input_tokens: int
    output_tokens: int
    cached_tokens: int | None = None
    """Input tokens served from the provider's prompt cache (``prompt_tokens_details``)."""
    reasoning_tokens: int | None = None
    """Output tokens spent on reasoning (``completion_tokens_details``)."""
    estimated: bool = False
    """No usage came from the upstream: counted from the text (UTF-8 bytes / 4)."""

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


def usage_from(obj: object) -> TokenUsage | None:
    """The counts in an OpenAI ``usage`` object, or None when it is missing or malformed.

    ``estimated: true`` (the SageMaker dialects' mark for counts they made up) is carried over.
    """
    if not isinstance(obj, dict):
        return None
    prompt = _count(obj.get("prompt_tokens"))
    completion = _count(obj.get("completion_tokens"))
    total = _count(obj.get("total_tokens"))
    if prompt is None and total is None:
        return None
    prompt = prompt if prompt is not None else total or 0
    if completion is None:
        completion = max(0, (total or 0) - prompt)
    return TokenUsage(
        input_tokens=prompt,
        output_tokens=completion,
        cached_tokens=_detail(obj, "prompt_tokens_details", "cached_tokens"),
        reasoning_tokens=_detail(obj, "completion_tokens_details", "reasoning_tokens"),
        estimated=obj.get("estimated") is True,
    )


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _detail(obj: dict[str, Any], section: str, name: str) -> int | None:
    details = obj.get(section)
    return _count(details.get(name)) if isinstance(details, dict) else None


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageRecord:
    """One request that reached an upstream: who, what, how it ended, what it cost."""

    request_id: str
    tenant_id: str
    app_id: str | None
    user_id: str
    """The principal's subject (``sub``, ``key:<name>`` or ``anonymous``)."""
    app_user_id: str | None
    conversation_id: str | None
    model: str
    """The alias the client asked for."""
    upstream: str
    provider: str
    endpoint: Endpoint
    stream: bool
    outcome: Outcome
    usage: TokenUsage
    cost: Decimal
    billed: Decimal
    latency_ms: float
    ttft_ms: float | None
    """Time to the first streamed chunk (streams only)."""
    phi_counts: dict[str, int] = field(default_factory=dict)
    """Placeholders issued per PHI category: counts only, never values."""
    started_at: dt.datetime
    finished_at: dt.datetime

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (money as decimal strings, times as ISO 8601 UTC)."""
        u = self.usage
        return {
            "request_id": self.request_id, "tenant_id": self.tenant_id, "app_id": self.app_id,
            "user_id": self.user_id, "app_user_id": self.app_user_id,
            "conversation_id": self.conversation_id, "model": self.model,
            "upstream": self.upstream, "provider": self.provider, "endpoint": self.endpoint,
            "stream": self.stream, "outcome": self.outcome, "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens, "total_tokens": u.total_tokens,
            "cached_tokens": u.cached_tokens, "reasoning_tokens": u.reasoning_tokens,
            "estimated": u.estimated, "cost": str(self.cost), "billed": str(self.billed),
            "latency_ms": self.latency_ms, "ttft_ms": self.ttft_ms,
            "phi_counts": dict(self.phi_counts), "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
        }  # fmt: skip

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> UsageRecord:
        """The inverse of ``to_json``.

        Raises:
            KeyError, ValueError, TypeError: not a usage record.
        """
        outcome = obj["outcome"]
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        return cls(
            request_id=str(obj["request_id"]), tenant_id=str(obj["tenant_id"]),
            app_id=obj["app_id"], user_id=str(obj["user_id"]), app_user_id=obj["app_user_id"],
            conversation_id=obj["conversation_id"], model=str(obj["model"]),
            upstream=str(obj["upstream"]), provider=str(obj["provider"]),
            endpoint=obj["endpoint"], stream=bool(obj["stream"]), outcome=outcome,
            usage=TokenUsage(
                input_tokens=int(obj["input_tokens"]), output_tokens=int(obj["output_tokens"]),
                cached_tokens=obj["cached_tokens"], reasoning_tokens=obj["reasoning_tokens"],
                estimated=bool(obj["estimated"]),
            ),
            cost=Decimal(obj["cost"]), billed=Decimal(obj["billed"]),
            latency_ms=float(obj["latency_ms"]), ttft_ms=obj["ttft_ms"],
            phi_counts={str(k): int(v) for k, v in obj["phi_counts"].items()},
            started_at=dt.datetime.fromisoformat(obj["started_at"]),
            finished_at=dt.datetime.fromisoformat(obj["finished_at"]),
        )  # fmt: skip
