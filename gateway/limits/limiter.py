"""The limiter: admission (one store call), the 429 answers and their headers, settlement.

Invariants:
- a request with no applicable rule costs one dict lookup and never reaches the store;
- every answer for a limited caller carries the ``x-ratelimit-*`` headers (reset values as Go
  durations, as OpenAI sends them), refusals also ``retry-after``/``retry-after-ms`` and
  ``x-should-retry`` (false when the day's token quota is spent);
- ``settle`` is called exactly once per admitted request (the pipeline's settle point); the store
  ignores repeats of a request id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from gateway import tasks
from gateway.config import GatewayConfig
from gateway.context import Principal
from gateway.errors import QuotaExhausted, RateLimited
from gateway.limits.fallback import FallbackStore
from gateway.limits.gcra import US_PER_S, go_duration
from gateway.limits.redis_store import RedisStore
from gateway.limits.rules import Admission, LimitRules
from gateway.limits.store import LimitStore, MemoryStore, Verdict
from gateway.telemetry import Metrics
from gateway.wire import JSONObject

SETTLE_TASK: Final = "limits-settle"


def open_store(config: GatewayConfig, metrics: Metrics) -> LimitStore:
    """The store ``[limits]`` configures: in-memory, or Redis behind the outage fallback."""
    limits = config.limits
    local = MemoryStore(limits.reservation_ttl_s)
    if not config.has_limits or limits.store == "memory" or limits.redis_url is None:
        return local
    shared = RedisStore(
        limits.redis_url.reveal(),
        key_prefix=limits.key_prefix,
        reservation_ttl_s=limits.reservation_ttl_s,
        password=limits.redis_password.reveal() if limits.redis_password is not None else None,
    )
    return FallbackStore(
        shared,
        local=local,
        replicas=limits.replicas,
        timeout_s=limits.timeout_ms / 1000,
        retry_interval_s=limits.retry_interval_s,
        metrics=metrics,
    )


@dataclass(frozen=True, slots=True)
class Ticket:
    """An admitted request: what to settle, and the headers for its response."""

    admission: Admission
    verdict: Verdict
    prompt_tokens: int
    """The prompt estimate (charged when no usage is reported)."""
    headers: dict[str, str]

    @property
    def counts_tokens(self) -> bool:
        """Whether settling needs the actual token count."""
        return self.admission.tokens > 0


class Limiter:
    """Applies the configured rules through one ``LimitStore``."""

    def __init__(self, config: GatewayConfig, store: LimitStore) -> None:
        self.rules = LimitRules(config)
        self.store = store

    async def admit_chat(
        self, principal: Principal, request_id: str, body: JSONObject, *, is_stream: bool
    ) -> tuple[Ticket | None, JSONObject]:
        """Admit a chat request; returns its ticket (None: no limits apply) and upstream body.

        Raises:
            RateLimited: a request, stream or in-flight token limit is reached.
            QuotaExhausted: the day's token budget is spent.
            InvalidRequest: ``max_tokens`` above a ``reject`` limit.
        """
        if not self.rules.enabled:
            return None, body
        admission, body, prompt = self.rules.chat(principal, request_id, body, is_stream=is_stream)
        if admission is None:
            return None, body
        return await self._admit(admission, prompt), body

    async def admit_embedding(
        self, principal: Principal, request_id: str, body: JSONObject
    ) -> Ticket | None:
        """Admit an embeddings request (see ``admit_chat``)."""
        if not self.rules.enabled:
            return None
        admission, prompt = self.rules.embedding(principal, request_id, body)
        if admission is None:
            return None
        return await self._admit(admission, prompt)

    async def _admit(self, admission: Admission, prompt: int) -> Ticket:
        verdict = await self.store.admit(admission)
        headers = ratelimit_headers(verdict)
        if not verdict.allowed:
            raise refusal_error(verdict, headers)
        return Ticket(admission, verdict, prompt, headers)

    async def settle(self, ticket: Ticket, actual_tokens: int) -> None:
        """Charge ``actual_tokens`` instead of the reservation and free the stream slot."""
        await self.store.settle(ticket.admission, ticket.verdict, max(0, actual_tokens))

    def settle_soon(self, ticket: Ticket, actual_tokens: int) -> None:
        """``settle`` without waiting: at once for the in-memory store, else in a task of its own
        (which a cancelled request cannot interrupt; shutdown waits for it)."""
        admission = ticket.admission
        if not admission.tokens and not (
            admission.is_stream and any(b.max_streams for b in admission.buckets)
        ):
            return  # nothing reserved: request-rate limits only (saves a round trip)
        if isinstance(self.store, MemoryStore):
            self.store.settle_now(ticket.admission, ticket.verdict, max(0, actual_tokens))
            return
        _ = tasks.spawn(self.settle(ticket, actual_tokens), name=SETTLE_TASK)


def ratelimit_headers(verdict: Verdict) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` headers for the strictest applicable bucket of each kind."""
    headers: dict[str, str] = {}
    if verdict.limit_requests is not None:
        headers["x-ratelimit-limit-requests"] = str(verdict.limit_requests)
        headers["x-ratelimit-remaining-requests"] = str(verdict.remaining_requests)
        headers["x-ratelimit-reset-requests"] = go_duration(verdict.reset_requests_us)
    if verdict.limit_tokens is not None:
        headers["x-ratelimit-limit-tokens"] = str(verdict.limit_tokens)
        headers["x-ratelimit-remaining-tokens"] = str(verdict.remaining_tokens)
        headers["x-ratelimit-reset-tokens"] = go_duration(verdict.reset_tokens_us)
    return headers


def refusal_error(verdict: Verdict, headers: dict[str, str]) -> RateLimited:
    """The 429 for a refused admission."""
    retry_s = verdict.retry_after_us / US_PER_S
    match verdict.refusal:
        case "quota":
            return QuotaExhausted(
                "You exceeded your daily token quota; it resets at 00:00 UTC.",
                retry_after_s=retry_s,
                headers=headers,
            )
        case "tokens":
            message = "Requests in flight hold the rest of your daily token quota; retry shortly."
        case "streams":
            message = "Too many concurrent streams; retry when one has finished."
        case _:
            message = "Rate limit reached for requests; retry after the time in retry-after."
    return RateLimited(message, retry_after_s=retry_s, headers=headers)
