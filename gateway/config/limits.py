"""The configuration of rate limits and token quotas: the per-scope rules and the counter store.

Rules attach to a tenant (``[tenants.<t>.limits]``), to each user of a tenant
(``[tenants.<t>.user_limits]``) and to an app (``[apps.<a>.limits]``); a request is checked
against every rule that applies to it, and the strictest answer wins.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from gateway.config.secret import Secret

MaxTokensMode = Literal["clamp", "reject"]
StoreKind = Literal["memory", "redis"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitRuleConfig:
    """Limits of one scope (a tenant, each user of a tenant, or an app); every field is optional."""

    requests_per_minute: int | None = None
    """Requests admitted per minute (GCRA: exact across workers and replicas sharing Redis)."""
    burst: int | None = None
    """Requests that may arrive back-to-back; default = `requests_per_minute`. In any window of W
    seconds at most `burst + W * requests_per_minute / 60` are admitted, so `burst = 1` means
    never more than `requests_per_minute` in any rolling minute."""
    tokens_per_day: int | None = None
    """Prompt + completion tokens per UTC calendar day (the window resets at 00:00 UTC). Reserved
    at admission (estimate), settled with the actual usage at the end of the request."""
    max_tokens_per_request: int | None = None
    """Largest `max_tokens` (or `max_completion_tokens`) a request may ask for."""
    max_tokens_mode: MaxTokensMode = "clamp"
    """`clamp`: lower a larger `max_tokens` to the limit; `reject`: answer 400 instead."""
    max_concurrent_streams: int | None = None
    """Streamed completions open at the same time."""

    @property
    def is_empty(self) -> bool:
        """No limit is set."""
        return (
            self.requests_per_minute is None
            and self.tokens_per_day is None
            and self.max_tokens_per_request is None
            and self.max_concurrent_streams is None
        )

    def check(self, where: str) -> Iterator[str]:
        """Problems beyond the field types."""
        for name in (
            "requests_per_minute",
            "burst",
            "tokens_per_day",
            "max_tokens_per_request",
            "max_concurrent_streams",
        ):
            value = getattr(self, name)
            if value is not None and value < 1:
                yield f"{where}.{name}: must be >= 1"
        if self.burst is not None and self.requests_per_minute is None:
            yield f"{where}.burst: needs requests_per_minute"


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitsConfig:
    """Where the limit counters live, and what happens when that store is unreachable."""

    store: StoreKind = "memory"
    """`memory` (one process only) or `redis` (shared by every worker and replica)."""
    redis_url: Secret | None = None
    """Redis URL for `store = "redis"`, e.g. rediss://host:6380/0 (TLS) or redis://host:6379/0;
    a password in the URL (redis://:password@host...) works too, but prefer `redis_password`."""
    redis_password: Secret | None = None
    """Password Redis checks at connection (AUTH, e.g. an ElastiCache auth token), so the URL
    carries no secret; only with `store = "redis"` and a URL without a password of its own."""
    key_prefix: str = "gw:rl:"
    """Prefix of every Redis key the limiter writes."""
    timeout_ms: float = 50.0
    """Longest wait for one Redis call; then the request is decided by the local fallback."""
    retry_interval_s: float = 1.0
    """After a Redis failure, the fallback decides alone for this long before Redis is tried
    again (circuit breaker)."""
    replicas: int = 1
    """Expected number of gateway processes (workers x tasks) sharing the limits; while Redis is
    unreachable each enforces limit / replicas locally."""
    reservation_ttl_s: float = 900.0
    """A token reservation never settled (crashed process) is released after this long; must
    exceed every upstream's `total_timeout_s`."""
    default_max_tokens: int = 4096
    """`max_tokens` injected upstream when a client omits it and a token limit applies without a
    `max_tokens_per_request` (so the reservation bounds the real usage)."""

    def check(self, where: str) -> Iterator[str]:
        """Problems beyond the field types."""
        yield from self._check_redis(where)
        if not 1 <= self.timeout_ms <= 5000:
            yield f"{where}.timeout_ms: must be between 1 and 5000"
        if self.retry_interval_s <= 0:
            yield f"{where}.retry_interval_s: must be > 0"
        if self.replicas < 1:
            yield f"{where}.replicas: must be >= 1"
        if self.reservation_ttl_s < 1:
            yield f"{where}.reservation_ttl_s: must be >= 1"
        if self.default_max_tokens < 1:
            yield f"{where}.default_max_tokens: must be >= 1"

    def _check_redis(self, where: str) -> Iterator[str]:
        url = self.redis_url.reveal() if self.redis_url is not None else ""
        if self.store == "redis" and not url.startswith(("redis://", "rediss://", "unix://")):
            yield f"{where}.redis_url: store 'redis' needs a redis://, rediss:// or unix:// URL"
        elif self.store == "redis" and not _parses(url):
            yield f"{where}.redis_url: not a valid URL (host, or port as a number)"
        if self.redis_password is None:
            return
        if self.store != "redis":
            yield f"{where}.redis_password: only used with store = 'redis'"
        elif _url_password(url):
            # redis-py lets the URL's password win: two sources would hide which one is used.
            yield f"{where}.redis_password: the redis_url carries a password too; keep one"


def _parses(url: str) -> bool:
    try:
        _ = urlsplit(url).port
    except ValueError:
        return False
    return True


def _url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None
