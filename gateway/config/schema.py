"""The sections for serving (server, upstreams, models) and the root ``GatewayConfig``.

Each section is a frozen, slotted dataclass whose field docstrings are the configuration reference.
A section may define ``check(where)``, yielding problems the field types cannot express; the loader
calls it after building the section.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from gateway.config.access import (
    WILDCARD,
    ApiKeyConfig,
    AppConfig,
    AuthConfig,
    TenantConfig,
    check_app_names,
)
from gateway.config.limits import LimitsConfig
from gateway.config.metering import MeteringConfig, PricingConfig
from gateway.config.phi import PhiConfig
from gateway.config.secret import Secret

UpstreamKind = Literal["litellm", "openai", "sagemaker"]
SageMakerDialect = Literal["tgi", "messages", "lmi", "vllm"]
ChatTemplate = Literal["llama3", "llama2", "mistral", "chatml"]
ModelKind = Literal["chat", "embedding"]
ModelStatus = Literal["active", "disabled"]
LogLevel = Literal["debug", "info", "warning", "error"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """Listener, worker processes and HTTP-level limits."""

    host: str = "127.0.0.1"
    """Address to bind; use 0.0.0.0 in a container."""
    port: int = 8080
    """TCP port; 0 picks a free port (tests)."""
    workers: int = 0
    """Worker processes sharing the port (SO_REUSEPORT); 0 means one per CPU."""
    max_body_bytes: int = 20 * 1024 * 1024
    """Largest accepted request body; larger bodies get 413."""
    sse_keepalive_s: float = 15.0
    """Interval of `: keep-alive` comments until the upstream sends its first chunk."""
    client_write_timeout_s: float = 60.0
    """A stream whose client does not read for this long is aborted (slow-reader guard)."""
    drain_timeout_s: float = 25.0
    """On SIGTERM, open requests get this long to finish before streams end with a final event."""
    cors_origins: tuple[str, ...] = ()
    """Browser origins allowed by CORS (exact match, e.g. https://chat.example.com)."""
    log_level: LogLevel = "info"
    """Log level of the gateway's JSON logs."""
    access_log: bool = False
    """Per-request access log lines (method, path, status, duration; never bodies or tokens)."""

    def check(self, where: str) -> Iterator[str]:
        """Problems beyond the field types."""
        if not 0 <= self.port <= 65535:
            yield f"{where}.port: must be between 0 and 65535"
        if self.workers < 0:
            yield f"{where}.workers: must be >= 0 (0 = one per CPU)"
        if self.max_body_bytes < 1024:
            yield f"{where}.max_body_bytes: must be at least 1024"
        for name in ("sse_keepalive_s", "client_write_timeout_s", "drain_timeout_s"):
            if getattr(self, name) <= 0:
                yield f"{where}.{name}: must be > 0"
        for origin in self.cors_origins:
            if origin == "*" or not origin.startswith(("http://", "https://")):
                yield f"{where}.cors_origins: {origin!r} must be an exact http(s) origin"


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamConfig:
    """An upstream: an OpenAI-compatible server (LiteLLM proxy, any OpenAI-wire server) or the
    SageMaker runtime of one AWS region."""

    kind: UpstreamKind = "litellm"
    """`litellm` (LiteLLM proxy), `openai` (any OpenAI-compatible server) or `sagemaker`
    (SageMaker runtime; each model names its endpoint in `models.<alias>.sagemaker`)."""
    base_url: str = ""
    """Base URL without `/v1`, e.g. http://litellm.internal:4000 (`litellm`/`openai` only)."""
    region: str | None = None
    """AWS region of the SageMaker endpoints, e.g. eu-west-1 (`sagemaker` only, required).
    Credentials come from the default chain (the Fargate task role)."""
    endpoint_url: str | None = None
    """Override of the SageMaker runtime URL, e.g. a VPC interface endpoint (`sagemaker` only)."""
    max_retries: int = 1
    """SageMaker only: retries of a call refused before any output (throttling, 5xx, connection
    errors; botocore standard mode with backoff). Clients retry too: keep it small."""
    api_key: Secret | None = None
    """The gateway's own credential for this upstream (set it via the environment)."""
    connect_timeout_s: float = 5.0
    """Deadline for opening a TCP connection."""
    first_byte_timeout_s: float = 60.0
    """Deadline from sending a request to the upstream's response headers (504 before ours)."""
    idle_timeout_s: float = 30.0
    """Longest gap between two stream chunks once streaming (SSE error event after ours started)."""
    total_timeout_s: float = 600.0
    """Deadline for a whole request, streamed or not."""
    max_connections: int = 1000
    """Connection pool size of this worker's client session."""
    max_event_bytes: int = 1024 * 1024
    """Largest upstream SSE event accepted; larger is a protocol error."""

    def check(self, where: str) -> Iterator[str]:
        """Problems beyond the field types."""
        if self.kind == "sagemaker":
            yield from self._check_sagemaker(where)
        elif not self.base_url:
            yield f"{where}.base_url: required"
        elif not self.base_url.startswith(("http://", "https://")):
            yield f"{where}.base_url: must be an http(s) URL"
        for timeout in ("connect_timeout_s", "first_byte_timeout_s", "idle_timeout_s"):
            if getattr(self, timeout) <= 0:
                yield f"{where}.{timeout}: must be > 0"
        if self.total_timeout_s < self.first_byte_timeout_s:
            yield f"{where}.total_timeout_s: must be >= first_byte_timeout_s"
        if self.max_connections < 1:
            yield f"{where}.max_connections: must be >= 1"
        if self.max_event_bytes < 1024:
            yield f"{where}.max_event_bytes: must be at least 1024"

    def _check_sagemaker(self, where: str) -> Iterator[str]:
        if not self.region:
            yield f"{where}.region: required for kind = 'sagemaker'"
        if self.base_url:
            yield f"{where}.base_url: not used by kind = 'sagemaker' (see endpoint_url)"
        if self.api_key is not None:
            yield f"{where}.api_key: not used by kind = 'sagemaker' (AWS default credentials)"
        if self.endpoint_url is not None and not self.endpoint_url.startswith(
            ("http://", "https://")
        ):
            yield f"{where}.endpoint_url: must be an http(s) URL"
        if not 0 <= self.max_retries <= 5:
            yield f"{where}.max_retries: must be between 0 and 5"


@dataclass(frozen=True, slots=True, kw_only=True)
class SageMakerModelConfig:
    """Where and how a model is served on SageMaker (`[models.<alias>.sagemaker]`)."""

    endpoint_name: str
    """The SageMaker endpoint name."""
    dialect: SageMakerDialect
    """The container's wire format: `tgi` (TGI native `inputs`/`parameters`, SSE `token` events),
    `messages` (TGI/vLLM Messages API: OpenAI chat body and chunks), `lmi` (DJL/LMI jsonlines
    tokens) or `vllm` (vLLM `/invocations`: the OpenAI server's output)."""
    chat_template: ChatTemplate | None = None
    """Prompt format for `tgi` and `lmi` (required there): `llama3`, `llama2`, `mistral` or
    `chatml` (Qwen and others). Built in, never a user-supplied Jinja template."""
    max_new_tokens: int = 1024
    """`max_new_tokens` sent to `tgi`/`lmi` containers when the client sets no `max_tokens`."""
    inference_component: str | None = None
    """`X-Amzn-SageMaker-Inference-Component` (endpoints hosting several models)."""
    target_variant: str | None = None
    """`X-Amzn-SageMaker-Target-Variant` (pin a production variant)."""
    custom_attributes: str | None = None
    """`X-Amzn-SageMaker-Custom-Attributes`, passed to the container as is (e.g.
    `accept_eula=true`); at most 1024 printable ASCII characters."""

    def check(self, where: str) -> Iterator[str]:
        """Problems beyond the field types."""
        if not self.endpoint_name:
            yield f"{where}.endpoint_name: must not be empty"
        if self.dialect in ("tgi", "lmi") and self.chat_template is None:
            yield f"{where}.chat_template: required for dialect {self.dialect!r}"
        if self.max_new_tokens < 1:
            yield f"{where}.max_new_tokens: must be >= 1"
        attrs = self.custom_attributes
        if attrs is not None and (
            len(attrs) > 1024 or not all(0x20 <= ord(c) < 0x7F for c in attrs)
        ):
            yield f"{where}.custom_attributes: at most 1024 printable ASCII characters"


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelConfig:
    """A model alias clients ask for, and where it is served."""

    upstream: str
    """Name of the upstream (a key of `[upstreams]`)."""
    target: str
    """Model name sent to the upstream."""
    kind: ModelKind = "chat"
    """`chat` or `embedding`."""
    owned_by: str = "gateway"
    """`owned_by` shown in /v1/models."""
    created: int = 0
    """`created` (Unix seconds) shown in /v1/models."""
    status: ModelStatus = "active"
    """`disabled` models are hidden and answer 404."""
    sagemaker: SageMakerModelConfig | None = None
    """Endpoint settings; required when the upstream is of kind `sagemaker`, refused otherwise."""
    provider: str = ""
    """Provider shown in usage records and reports (e.g. `bedrock`); default: the upstream's
    name."""
    pricing: PricingConfig = field(default_factory=PricingConfig)
    """Price per million input/output tokens and markup (default: free)."""
    hipaa_eligible: bool = False
    """Covered by a BAA: only such models may be called while PHI handling is on for a request
    (others answer 403 `model_not_hipaa_eligible`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayConfig:
    """The whole configuration, handed to factories (there is no config singleton)."""

    server: ServerConfig = field(default_factory=ServerConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    tenants: Mapping[str, TenantConfig] = field(default_factory=dict)
    apps: Mapping[str, AppConfig] = field(default_factory=dict)
    api_keys: Mapping[str, ApiKeyConfig] = field(default_factory=dict)
    upstreams: Mapping[str, UpstreamConfig] = field(default_factory=dict)
    models: Mapping[str, ModelConfig]
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    metering: MeteringConfig = field(default_factory=MeteringConfig)
    phi: PhiConfig = field(default_factory=PhiConfig)

    @property
    def has_limits(self) -> bool:
        """Some tenant, user or app limit is configured."""
        rules = [t.limits for t in self.tenants.values()]
        rules += [t.user_limits for t in self.tenants.values()]
        rules += [a.limits for a in self.apps.values()]
        return any(rule is not None and not rule.is_empty for rule in rules)

    def check(self, where: str) -> Iterator[str]:
        """Rules across sections."""
        del where
        if not self.models:
            yield "models: at least one model must be configured"
        for alias, model in self.models.items():
            if model.upstream not in self.upstreams:
                yield f"models.{alias}.upstream: no upstream named {model.upstream!r}"
            else:
                yield from _check_sagemaker_model(alias, model, self.upstreams[model.upstream])
        yield from _check_model_lists(self)
        yield from check_app_names(self.apps)
        yield from _check_limits(self)
        for name, key in self.api_keys.items():
            if key.tenant not in self.tenants and WILDCARD not in self.tenants:
                yield f"api_keys.{name}.tenant: no tenant named {key.tenant!r}"
            if key.app is not None and key.app not in self.apps:
                yield f"api_keys.{name}.app: no app named {key.app!r}"
        auth = self.auth
        if auth.enabled and not (auth.issuers or auth.dev_issuer.enabled or self.api_keys):
            yield "auth: enabled, but no issuer, dev issuer or API key is configured"
        if not auth.enabled and not ({auth.anonymous_tenant, WILDCARD} & set(self.tenants)):
            yield f"auth.anonymous_tenant: no tenant named {auth.anonymous_tenant!r} in [tenants]"


def _check_limits(config: GatewayConfig) -> Iterator[str]:
    if not config.has_limits:
        return
    workers = config.server.workers or os.cpu_count() or 1
    if config.limits.store == "memory" and workers > 1:
        yield (
            f"limits.store: 'memory' keeps counters per process, but server.workers gives "
            f"{workers} workers; set limits.store = 'redis' or server.workers = 1"
        )
    slowest = max((u.total_timeout_s for u in config.upstreams.values()), default=0.0)
    if config.limits.reservation_ttl_s < slowest:
        yield "limits.reservation_ttl_s: must be >= every upstream's total_timeout_s"


def _check_model_lists(config: GatewayConfig) -> Iterator[str]:
    sections: list[tuple[str, Mapping[str, TenantConfig | AppConfig | ApiKeyConfig]]] = [
        ("tenants", config.tenants),
        ("apps", config.apps),
        ("api_keys", config.api_keys),
    ]
    for section, entries in sections:
        for name, entry in entries.items():
            for alias in entry.models:
                if alias != WILDCARD and alias not in config.models:
                    yield f"{section}.{name}.models: no model named {alias!r}"


def _check_sagemaker_model(
    alias: str, model: ModelConfig, upstream: UpstreamConfig
) -> Iterator[str]:
    if upstream.kind == "sagemaker":
        if model.sagemaker is None:
            yield f"models.{alias}.sagemaker: required (upstream {model.upstream!r} is SageMaker)"
        elif model.kind != "chat":
            yield f"models.{alias}.kind: SageMaker upstreams serve chat models only"
    elif model.sagemaker is not None:
        yield f"models.{alias}.sagemaker: only for models on a SageMaker upstream"
