"""Which limits apply to a request, and what it may cost: buckets, max_tokens policy, estimates.

Pure: decided from the configuration, the verified principal and the request body only.

- A request is checked against up to three buckets: its tenant (``t:<tenant>``), its user within
  the tenant (``u:<tenant>:<user>``, the user being the token's app user id, else its subject) and
  its app within the tenant (``a:<tenant>:<app>``). ``[tenants."*"]`` rules give every unlisted
  tenant buckets of its own.
- The token reservation is an estimate: prompt tokens ~ UTF-8 bytes of the message contents / 4
  (no tokenizer: cheap and model-agnostic), plus the bounded completion, ``max_tokens x n``. When
  a token limit applies and the client gave no ``max_tokens``, one is injected upstream, so the
  bound is real.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Final

from gateway.config import GatewayConfig, LimitRuleConfig
from gateway.config.access import WILDCARD
from gateway.context import Principal
from gateway.errors import InvalidRequest
from gateway.wire import JSONObject

_CACHE_LIMIT: Final = 10_000
_BYTES_PER_TOKEN: Final = 4


@dataclass(frozen=True, slots=True)
class Bucket:
    """The limits of one scope, by store key; ``None`` = no such limit."""

    key: str
    requests_per_minute: int | None = None
    burst: int = 1
    tokens_per_day: int | None = None
    max_streams: int | None = None

    def share(self, replicas: int) -> Bucket:
        """This bucket divided among ``replicas`` processes (the store-outage fallback)."""
        if replicas <= 1:
            return self
        return replace(
            self,
            requests_per_minute=_part(self.requests_per_minute, replicas),
            burst=max(1, self.burst // replicas),
            tokens_per_day=_part(self.tokens_per_day, replicas),
            max_streams=_part(self.max_streams, replicas),
        )


def _part(value: int | None, replicas: int) -> int | None:
    return None if value is None else max(1, value // replicas)


@dataclass(frozen=True, slots=True)
class Admission:
    """What one request asks of the store."""

    request_id: str
    buckets: tuple[Bucket, ...]
    tokens: int
    """Tokens reserved (0 when no bucket has a daily token limit)."""
    is_stream: bool


@dataclass(frozen=True, slots=True)
class _Scope:
    buckets: tuple[Bucket, ...]
    max_tokens: int | None
    reject_over_max: bool
    counts_tokens: bool


_NO_SCOPE: Final = _Scope((), None, reject_over_max=False, counts_tokens=False)


class LimitRules:
    """The configured rules, resolved per caller (cached)."""

    def __init__(self, config: GatewayConfig) -> None:
        self._tenants = config.tenants
        self._apps = config.apps
        self._default_max_tokens = config.limits.default_max_tokens
        self._scopes: dict[tuple[str, str | None, str], _Scope] = {}
        self.enabled = config.has_limits

    def _scope(self, principal: Principal) -> _Scope:
        user = principal.app_user_id or principal.subject
        key = (principal.tenant_id, principal.app_id, user)
        scope = self._scopes.get(key)
        if scope is None:
            if len(self._scopes) >= _CACHE_LIMIT:
                self._scopes.clear()
            scope = self._scopes[key] = self._resolve(*key)
        return scope

    def _resolve(self, tenant: str, app: str | None, user: str) -> _Scope:
        tenant_config = self._tenants.get(tenant) or self._tenants.get(WILDCARD)
        rules: list[tuple[str, LimitRuleConfig | None]] = []
        if tenant_config is not None:
            rules.append((f"t:{tenant}", tenant_config.limits))
            rules.append((f"u:{tenant}:{user}", tenant_config.user_limits))
        app_config = self._apps.get(app) if app is not None else None
        if app_config is not None:
            rules.append((f"a:{tenant}:{app}", app_config.limits))
        present = [(key, rule) for key, rule in rules if rule is not None and not rule.is_empty]
        if not present:
            return _NO_SCOPE
        caps = [r.max_tokens_per_request for _, r in present if r.max_tokens_per_request]
        return _Scope(
            buckets=tuple(_bucket(key, rule) for key, rule in present),
            max_tokens=min(caps) if caps else None,
            reject_over_max=any(
                r.max_tokens_mode == "reject" for _, r in present if r.max_tokens_per_request
            ),
            counts_tokens=any(r.tokens_per_day for _, r in present),
        )

    def chat(
        self, principal: Principal, request_id: str, body: JSONObject, *, is_stream: bool
    ) -> tuple[Admission | None, JSONObject, int]:
        """The admission of a chat request, the body to send upstream and the prompt estimate.

        Raises:
            InvalidRequest: ``max_tokens`` above the limit where the rule says ``reject``.
        """
        scope = self._scope(principal)
        if not scope.buckets:
            return None, body, 0
        body, completion = self._bound_completion(scope, body)
        prompt = estimate_chat_prompt(body) if scope.counts_tokens else 0
        tokens = prompt + completion * _n(body) if scope.counts_tokens else 0
        return Admission(request_id, scope.buckets, tokens, is_stream), body, prompt

    def embedding(
        self, principal: Principal, request_id: str, body: JSONObject
    ) -> tuple[Admission | None, int]:
        """The admission of an embeddings request and its token estimate."""
        scope = self._scope(principal)
        if not scope.buckets:
            return None, 0
        tokens = estimate_texts(_strings(body.get("input"))) if scope.counts_tokens else 0
        return Admission(request_id, scope.buckets, tokens, is_stream=False), tokens

    def _bound_completion(self, scope: _Scope, body: JSONObject) -> tuple[JSONObject, int]:
        field = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
        asked = body.get(field)
        cap = scope.max_tokens
        if isinstance(asked, int):
            if cap is None or asked <= cap:
                return body, asked
            if scope.reject_over_max:
                raise InvalidRequest(
                    f"'{field}' is {asked}, above this caller's limit of {cap} tokens per request",
                    param=field,
                    code="max_tokens_exceeded",
                )
            return {**body, field: cap}, cap
        if cap is None and not scope.counts_tokens:
            return body, 0
        bound = cap if cap is not None else self._default_max_tokens
        return {**body, "max_tokens": bound}, bound


def _bucket(key: str, rule: LimitRuleConfig) -> Bucket:
    rpm = rule.requests_per_minute
    return Bucket(
        key=key,
        requests_per_minute=rpm,
        burst=rule.burst or rpm or 1,
        tokens_per_day=rule.tokens_per_day,
        max_streams=rule.max_concurrent_streams,
    )


def _n(body: JSONObject) -> int:
    n = body.get("n")
    return n if isinstance(n, int) and n > 0 else 1


def estimate_texts(texts: Iterable[str]) -> int:
    """Tokens of ``texts``, estimated as UTF-8 bytes / 4 rounded up."""
    size = sum(len(text.encode()) for text in texts)
    return -(-size // _BYTES_PER_TOKEN)


def estimate_chat_prompt(body: JSONObject) -> int:
    """Prompt tokens of a chat body: the text of every message's content (and tool arguments)."""
    texts: list[str] = []
    for message in body.get("messages") or ():
        if isinstance(message, dict):
            texts.extend(_strings(message.get("content")))
            for call in message.get("tool_calls") or ():
                if isinstance(call, dict) and isinstance(call.get("function"), dict):
                    texts.extend(_strings(call["function"].get("arguments")))
    return estimate_texts(texts)


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        out: list[str] = []
        for part in value:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                out.append(part["text"])
        return out
    return []
