"""Usage records for tests."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from typing import Any

from gateway.metering.records import TokenUsage, UsageRecord

_ids = itertools.count(1)
T0 = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)


def record(**overrides: Any) -> UsageRecord:
    """A completed chat record of tenant ``acme``; any field may be overridden."""
    usage = overrides.pop("usage", None) or TokenUsage(input_tokens=100, output_tokens=50)
    started = overrides.pop("started_at", T0)
    fields: dict[str, Any] = {
        "request_id": f"req_{next(_ids):08d}", "tenant_id": "acme", "app_id": "chat",
        "user_id": "user-1", "app_user_id": "au-1", "conversation_id": "conv-1",
        "model": "gpt-x", "upstream": "litellm", "provider": "openai", "endpoint": "chat",
        "stream": True, "outcome": "completed", "usage": usage, "cost": Decimal("0.00125"),
        "billed": Decimal("0.0015"), "latency_ms": 12.5, "ttft_ms": 3.25,
        "phi_counts": {"NAME": 2}, "started_at": started,
        "finished_at": started + dt.timedelta(seconds=1),
    }  # fmt: skip
    fields.update(overrides)
    return UsageRecord(**fields)
