"""Deployment settings in one place: context, tier table, drain budget, environment contract.

Invariants:
- every size, count and feature switch that differs by tier is a field of ``TierSettings`` in
  ``TIERS``; the stacks read it from here and hard-code none of it;
- the gateway's environment is built only by ``gateway_environment`` and named only by
  ``gateway_environment_names``; ``tests/deploy`` checks both against the gateway's config loader
  (this package never imports ``gateway``: the two sides share variable names only);
- a variable holding a secret is named in ``GATEWAY_SECRET_NAMES`` and comes from Secrets Manager,
  never as a plain value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

Environment = Literal["dev", "staging", "prod"]
ENVIRONMENTS: Final[tuple[Environment, ...]] = ("dev", "staging", "prod")

# --- drain budget (reliability.md §4) --------------------------------------------------------
MAX_REQUEST_S: Final = 300
"""Longest request the gateway serves (upstream ``total_timeout_s``); the ALB deregistration delay
equals it, so a task leaving the target group finishes every request it accepted."""
STOP_TIMEOUT_S: Final = 120
"""Fargate's maximum: SIGTERM -> SIGKILL."""
DRAIN_TIMEOUT_S: Final = 90
"""The gateway's SIGTERM drain (``server.drain_timeout_s``); plus its 5 s server shutdown and
worker exit, it ends well inside ``STOP_TIMEOUT_S``."""
ALB_IDLE_TIMEOUT_S: Final = MAX_REQUEST_S + 30
"""A non-streamed completion sends no byte until it is done, so the ALB must wait that long."""
HEALTH_CHECK_GRACE_S: Final = 60
GATEWAY_PORT: Final = 8080
"""The gateway's default ``server.port`` (the production config keeps it)."""
LITELLM_PORT: Final = 4000
CACHE_PORT: Final = 6380
DATABASE_PORT: Final = 5433
LEDGER_DATABASE: Final = "ledger"
"""The Aurora cluster's database (the usage ledger; ``gateway migrate`` creates its tables)."""
LEDGER_USER: Final = "ledger"
"""The cluster's master user, whose generated secret's ``password`` the gateway uses."""

# --- images ---------------------------------------------------------------------------------
LITELLM_IMAGE: Final = "ghcr.io/berriai/litellm:v1.102.4-stable"
"""Override with context ``litellmImage`` (pin a digest: ``...@sha256:...``)."""
CLOUDWATCH_AGENT_IMAGE: Final = "public.ecr.aws/cloudwatch-agent/cloudwatch-agent:1.300062.0b1304"
TGI_IMAGE: Final = (
    "763104351884.dkr.ecr.{region}.amazonaws.com/"
    "huggingface-pytorch-tgi-inference:2.4.0-tgi3.0.1-gpu-py311-cu124-ubuntu22.04"
)
METRICS_NAMESPACE: Final = "PhiGateway"


@dataclass(frozen=True, slots=True, kw_only=True)
class SageMakerModel:
    """A model served by a SageMaker real-time endpoint (TGI container)."""

    alias: str
    """The name clients ask for (a gateway model alias and a LiteLLM model name)."""
    hf_model_id: str
    """Hugging Face model id the TGI container loads."""
    from_tier: int
    """The lowest tier that deploys this model."""
    instance_type: str
    gpus: int
    """GPUs of ``instance_type``, used as TGI's ``SM_NUM_GPUS`` (tensor parallel degree)."""
    max_total_tokens: int = 8192


MODELS: Final[tuple[SageMakerModel, ...]] = (
    SageMakerModel(alias="llama3-8b-instruct", hf_model_id="meta-llama/Llama-3.1-8B-Instruct",
                   from_tier=1, instance_type="ml.g5.xlarge", gpus=1),
    SageMakerModel(alias="mistral-small-24b-instruct",
                   hf_model_id="mistralai/Mistral-Small-24B-Instruct-2501",
                   from_tier=2, instance_type="ml.g5.12xlarge", gpus=4),
    SageMakerModel(alias="llama3-70b-instruct", hf_model_id="meta-llama/Llama-3.3-70B-Instruct",
                   from_tier=3, instance_type="ml.g6e.12xlarge", gpus=4),
    SageMakerModel(alias="llama3-405b-instruct-fp8",
                   hf_model_id="meta-llama/Llama-3.1-405B-Instruct-FP8",
                   from_tier=5, instance_type="ml.p5.48xlarge", gpus=8, max_total_tokens=16384),
)  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class TierSettings:
    """What one capacity tier deploys."""

    gateway_cpu: int
    """Fargate CPU units of a gateway task (1024 = 1 vCPU; one worker per vCPU)."""
    gateway_memory_mib: int
    gateway_min_tasks: int
    gateway_max_tasks: int
    litellm_cpu: int
    litellm_memory_mib: int
    litellm_tasks: int
    cache_node_type: str
    cache_nodes: int
    """Primary plus replicas; more than one enables Multi-AZ failover."""
    database_min_acu: float
    database_max_acu: float
    database_readers: int
    endpoint_min_instances: int
    endpoint_max_instances: int
    nat_gateways: int
    max_azs: int
    waf: bool
    """AWS managed rule groups and a per-IP rate rule in front of the ALB."""
    open_streams_per_task: int
    """Scale-out target: average open SSE streams per gateway task."""
    waf_requests_per_5min_per_ip: int = 3000


TIERS: Final[Mapping[int, TierSettings]] = {
    1: TierSettings(gateway_cpu=512, gateway_memory_mib=1024, gateway_min_tasks=1,
                    gateway_max_tasks=2, litellm_cpu=512, litellm_memory_mib=1024, litellm_tasks=1,
                    cache_node_type="cache.t4g.micro", cache_nodes=1, database_min_acu=0.5,
                    database_max_acu=2, database_readers=0, endpoint_min_instances=1,
                    endpoint_max_instances=1, nat_gateways=1, max_azs=2, waf=False,
                    open_streams_per_task=100),
    2: TierSettings(gateway_cpu=1024, gateway_memory_mib=2048, gateway_min_tasks=2,
                    gateway_max_tasks=4, litellm_cpu=1024, litellm_memory_mib=2048, litellm_tasks=2,
                    cache_node_type="cache.t4g.small", cache_nodes=2, database_min_acu=0.5,
                    database_max_acu=4, database_readers=0, endpoint_min_instances=1,
                    endpoint_max_instances=2, nat_gateways=1, max_azs=2, waf=True,
                    open_streams_per_task=200),
    3: TierSettings(gateway_cpu=2048, gateway_memory_mib=4096, gateway_min_tasks=2,
                    gateway_max_tasks=8, litellm_cpu=2048, litellm_memory_mib=4096, litellm_tasks=2,
                    cache_node_type="cache.m7g.large", cache_nodes=2, database_min_acu=1,
                    database_max_acu=8, database_readers=1, endpoint_min_instances=1,
                    endpoint_max_instances=3, nat_gateways=2, max_azs=2, waf=True,
                    open_streams_per_task=400),
    4: TierSettings(gateway_cpu=2048, gateway_memory_mib=4096, gateway_min_tasks=3,
                    gateway_max_tasks=16, litellm_cpu=2048, litellm_memory_mib=4096,
                    litellm_tasks=3,
                    cache_node_type="cache.m7g.large", cache_nodes=3, database_min_acu=2,
                    database_max_acu=16, database_readers=1, endpoint_min_instances=2,
                    endpoint_max_instances=4, nat_gateways=3, max_azs=3, waf=True,
                    open_streams_per_task=400),
    5: TierSettings(gateway_cpu=4096, gateway_memory_mib=8192, gateway_min_tasks=3,
                    gateway_max_tasks=32, litellm_cpu=4096, litellm_memory_mib=8192,
                    litellm_tasks=4,
                    cache_node_type="cache.r7g.large", cache_nodes=3, database_min_acu=4,
                    database_max_acu=32, database_readers=2, endpoint_min_instances=2,
                    endpoint_max_instances=6, nat_gateways=3, max_azs=3, waf=True,
                    open_streams_per_task=800),
}  # fmt: skip

LOG_RETENTION_DAYS: Final[Mapping[Environment, int]] = {"dev": 30, "staging": 90, "prod": 365}

_APP_ID = re.compile(r"[a-z][a-z0-9-]{0,19}")
_APP_NAME = re.compile(r"[a-z][a-z0-9]{0,62}")
_DOMAIN = re.compile(r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")


class ContextError(ValueError):
    """The CDK context (``-c key=value``) is missing a value or has an invalid one."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeployContext:
    """The deployment's identity: the context the existing deploy takes, validated."""

    app_id: str
    """Short lowercase id; prefixes resource names (``{app_id}-{environment}-...``)."""
    app_name: str
    """The gateway app (``apps.<app_name>``) the Cognito app client is for."""
    environment: Environment
    tier: int
    domain: str | None = None
    """The gateway's host name; with it the ALB listens on HTTPS with an ACM certificate."""
    certificate_arn: str | None = None
    """An existing ACM certificate for ``domain`` (else one is requested, DNS-validated)."""
    alarm_email: str | None = None
    litellm_image: str = LITELLM_IMAGE

    @property
    def prefix(self) -> str:
        """Resource name prefix."""
        return f"{self.app_id}-{self.environment}"

    @property
    def settings(self) -> TierSettings:
        """This deployment's row of the tier table."""
        return TIERS[self.tier]

    @property
    def models(self) -> tuple[SageMakerModel, ...]:
        """The models this tier deploys."""
        return tuple(m for m in MODELS if m.from_tier <= self.tier)

    @property
    def is_prod(self) -> bool:
        """Production keeps data on delete and protects it from deletion."""
        return self.environment == "prod"

    def endpoint_name(self, model: SageMakerModel) -> str:
        """The endpoint name of ``model`` here (fixed, so IAM policies can name it)."""
        return f"{self.prefix}-{model.alias}"[:63]


def parse_context(get: Mapping[str, object]) -> DeployContext:
    """Validate the CDK context; every problem is reported at once.

    Raises:
        ContextError: listing each missing or invalid value.
    """
    problems: list[str] = []

    def text(key: str) -> str | None:
        value = get.get(key)
        return None if value in (None, "") else str(value).strip()

    app_id, app_name, env = text("appId"), text("appName"), text("environment")
    domain, tier_text = text("domain"), text("tier") or "1"
    if app_id is None or not _APP_ID.fullmatch(app_id):
        problems.append("appId: required, lowercase letters, digits and '-', at most 20")
    if app_name is None or not _APP_NAME.fullmatch(app_name) or app_name == "v2":
        # no '-': the name becomes an environment variable segment (GATEWAY__APPS__<NAME>__...)
        problems.append("appName: required, lowercase letters and digits, not 'v2'")
    if env not in ENVIRONMENTS:
        problems.append(f"environment: one of {', '.join(ENVIRONMENTS)}")
    tier = int(tier_text) if tier_text.isdigit() else 0
    if tier not in TIERS:
        problems.append(f"tier: one of {', '.join(map(str, TIERS))}")
    if domain is not None and not _DOMAIN.fullmatch(domain):
        problems.append("domain: a lowercase host name such as gateway.example.com")
    if env in ("staging", "prod") and domain is None:
        problems.append(f"domain: required for {env} (the ALB serves HTTPS only with one)")
    if problems:
        raise ContextError("invalid CDK context:\n  " + "\n  ".join(problems))
    assert app_id is not None  # noqa: S101 (narrowed by the checks above)
    assert app_name is not None  # noqa: S101
    return DeployContext(
        app_id=app_id, app_name=app_name, environment=env, tier=tier,  # type: ignore[arg-type]
        domain=domain, certificate_arn=text("certificateArn"), alarm_email=text("alarmEmail"),
        litellm_image=text("litellmImage") or LITELLM_IMAGE,
    )  # fmt: skip


# --- the environment contract with the gateway ------------------------------------------------
GATEWAY_CONFIG_PATH: Final = "/app/config/gateway.production.toml"
"""The production base config shipped in the image (``config/gateway.production.toml``)."""
ISSUERS: Final = ("users", "admins")
"""``auth.issuers.<name>``: the Cognito user pool and the admin pool."""
LITELLM_API_KEY_ENV: Final = "GATEWAY__UPSTREAMS__LITELLM__API_KEY"
CACHE_AUTH_ENV: Final = "GATEWAY__LIMITS__REDIS_PASSWORD"
"""The cache's AUTH token (the data stack's secret), so the Redis URL carries no secret."""
LEDGER_AUTH_ENV: Final = "GATEWAY__METERING__POSTGRES_PASSWORD"
"""The ledger user's password (the ``password`` field of the cluster's generated secret), so the
DSN carries no secret."""
VAULT_CACHE_AUTH_ENV: Final = "GATEWAY__PHI__REDIS_PASSWORD"
"""The same AUTH token for the PHI vault, which lives in the same cache (its own key prefix)."""
VAULT_KEY_ENV: Final = "GATEWAY__PHI__VAULT_KEY"
"""The vault's key material (the data stack's generated secret, encrypted with the PHI vault KMS
key); the gateway derives its AES-256 key from it with HKDF-SHA256."""
GATEWAY_SECRET_NAMES: Final = frozenset(
    {LITELLM_API_KEY_ENV, CACHE_AUTH_ENV, LEDGER_AUTH_ENV, VAULT_CACHE_AUTH_ENV, VAULT_KEY_ENV}
)
"""Variables the task definition takes from Secrets Manager, never as plain values."""


def _env_key(alias: str) -> str:
    return alias.upper().replace("-", "_")


def gateway_workers(ctx: DeployContext) -> int:
    """Gateway worker processes per task: one per vCPU, at least one."""
    return max(1, ctx.settings.gateway_cpu // 1024)


def limit_replicas(ctx: DeployContext) -> int:
    """``limits.replicas``: workers per task x the tier's *maximum* task count.

    While the cache is unreachable each process enforces limit / replicas on its own. The task
    count moves between the tier's minimum and maximum (scaling) and the variable is fixed at
    deploy time, so the maximum keeps the fleet at or under each limit at any scale; with fewer
    tasks the fallback is stricter than the limit, never looser. (A rolling deployment runs old
    and new tasks together, up to twice the count: an outage during one can exceed a limit.)
    """
    return gateway_workers(ctx) * ctx.settings.gateway_max_tasks


def gateway_environment_names(ctx: DeployContext) -> frozenset[str]:
    """Every variable the gateway's task definition sets (plain and secret)."""
    names = {
        "GATEWAY_CONFIG",
        "GATEWAY__SERVER__HOST",
        "GATEWAY__SERVER__WORKERS",
        "GATEWAY__SERVER__DRAIN_TIMEOUT_S",
        "GATEWAY__UPSTREAMS__LITELLM__BASE_URL",
        "GATEWAY__UPSTREAMS__LITELLM__TOTAL_TIMEOUT_S",
        "GATEWAY__LIMITS__REDIS_URL",
        "GATEWAY__LIMITS__REPLICAS",
        "GATEWAY__PHI__REDIS_URL",
        "GATEWAY__METERING__POSTGRES_DSN",
        f"GATEWAY__APPS__{_env_key(ctx.app_name)}__MODELS",
    }
    for issuer in ISSUERS:
        names |= {f"GATEWAY__AUTH__ISSUERS__{issuer.upper()}__{key}"
                  for key in ("ISSUER", "CLIENT_IDS", "TOKEN_USE")}  # fmt: skip
    names |= {f"GATEWAY__MODELS__{_env_key(m.alias)}__STATUS" for m in ctx.models}
    return frozenset(names | GATEWAY_SECRET_NAMES)


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuerValues:
    """A Cognito user pool as the gateway's ``auth.issuers.<name>`` sees it."""

    issuer: str
    client_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheValues:
    """The cache's primary endpoint (the data stack's replication group attributes)."""

    host: str
    port: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseValues:
    """The ledger cluster's writer endpoint (the data stack's cluster attributes)."""

    host: str
    port: str


def cache_url(cache: CacheValues) -> str:
    """The cache's Redis URL over TLS, no password (the AUTH token is a secret of its own): the
    rate-limit store and the PHI vault share it, each under its own key prefix."""
    return f"rediss://{cache.host}:{cache.port}/0"


def ledger_dsn(database: DatabaseValues) -> str:
    """``metering.postgres_dsn``: the writer endpoint over TLS, no password (``sslmode=require``
    encrypts; asyncpg then does not verify the certificate: see deploy/README.md)."""
    return (
        f"postgresql://{LEDGER_USER}@{database.host}:{database.port}/{LEDGER_DATABASE}"
        "?sslmode=require"
    )


def gateway_environment(
    ctx: DeployContext,
    *,
    litellm_url: str,
    cache: CacheValues,
    database: DatabaseValues,
    issuers: Mapping[str, IssuerValues],
) -> dict[str, str]:
    """The plain (non-secret) variables of the gateway container.

    ``issuers`` maps each name of ``ISSUERS`` to its pool. Tokens are ID tokens: Cognito puts
    ``custom:`` attributes into access tokens only with a V2 pre-token-generation trigger. The
    cache requires TLS (``rediss://``); its AUTH token is the secret ``CACHE_AUTH_ENV`` (and
    ``VAULT_CACHE_AUTH_ENV`` for the PHI vault in the same cache). The ledger's DSN carries no
    password either: it is the secret ``LEDGER_AUTH_ENV``.
    """
    env = {
        "GATEWAY_CONFIG": GATEWAY_CONFIG_PATH,
        "GATEWAY__SERVER__HOST": "0.0.0.0",  # noqa: S104 (a container listens on all interfaces)
        "GATEWAY__SERVER__WORKERS": str(gateway_workers(ctx)),
        "GATEWAY__SERVER__DRAIN_TIMEOUT_S": str(DRAIN_TIMEOUT_S),
        "GATEWAY__UPSTREAMS__LITELLM__BASE_URL": litellm_url,
        "GATEWAY__UPSTREAMS__LITELLM__TOTAL_TIMEOUT_S": str(MAX_REQUEST_S),
        "GATEWAY__LIMITS__REDIS_URL": cache_url(cache),
        "GATEWAY__LIMITS__REPLICAS": str(limit_replicas(ctx)),
        "GATEWAY__PHI__REDIS_URL": cache_url(cache),
        "GATEWAY__METERING__POSTGRES_DSN": ledger_dsn(database),
        f"GATEWAY__APPS__{_env_key(ctx.app_name)}__MODELS": "*",
    }
    for name in ISSUERS:
        pool = issuers[name]
        prefix = f"GATEWAY__AUTH__ISSUERS__{name.upper()}__"
        env[prefix + "ISSUER"] = pool.issuer
        env[prefix + "CLIENT_IDS"] = ",".join(pool.client_ids)
        env[prefix + "TOKEN_USE"] = "id"
    for model in ctx.models:
        env[f"GATEWAY__MODELS__{_env_key(model.alias)}__STATUS"] = "active"
    return env
