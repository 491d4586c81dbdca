"""The configuration sections for access: authentication, tenants, apps and service API keys.

Tokens are verified as AWS documents for Cognito (see ``gateway/auth``); everything a request may do
follows from the verified principal and these sections, never from headers or body fields.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from gateway.config.limits import LimitRuleConfig
from gateway.config.phi import PhiOverrideConfig, PhiPolicyConfig
from gateway.config.secret import Secret

TOKEN_USES = ("access", "id")
PERMISSIONS = ("admin:read", "tenants:all")
"""``admin:read``: the admin routes of the caller's own tenant. ``tenants:all``: admin routes of any
tenant; only the ``super_admin`` group may hold it."""
CROSS_TENANT_GROUP = "super_admin"
WILDCARD = "*"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_APP_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimsConfig:
    """Claim names read from verified tokens; each is a list tried in order (first present wins)."""

    tenant: tuple[str, ...] = ("custom:tenantId", "custom:tenant_id")
    """The tenant; a token without any of these claims is refused (there is no default tenant)."""
    app: tuple[str, ...] = ("custom:appId", "custom:app_id")
    """The app the token was issued for."""
    app_user: tuple[str, ...] = ("custom:appUserId", "custom:app_user_id")
    """The user's id inside the app."""
    email: tuple[str, ...] = ("email",)
    """The user's email (never logged)."""
    groups: tuple[str, ...] = ("cognito:groups",)
    """The user's groups (admin groups grant what `[auth.groups]` configures)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuerConfig:
    """A Cognito user pool (or any RS256 OIDC issuer) whose tokens are accepted."""

    issuer: str
    """Exact `iss`, e.g. https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123."""
    jwks_url: str = ""
    """Where its keys are fetched; empty = `{issuer}/.well-known/jwks.json`."""
    token_use: tuple[str, ...] = ("access",)
    """Accepted `token_use`: `access` (checked by `client_id`) and/or `id` (checked by `aud`).
    Cognito puts `custom:` attributes into access tokens only with a V2 pre-token-generation
    trigger; without one, accept `id` tokens."""
    client_ids: tuple[str, ...]
    """App client ids whose tokens are accepted."""

    @property
    def jwks_endpoint(self) -> str:
        """The JWKS URL to fetch."""
        return self.jwks_url or f"{self.issuer.rstrip('/')}/.well-known/jwks.json"

    def check(self, where: str) -> Iterator[str]:
        """Problems beyond the field types."""
        if not self.issuer:
            yield f"{where}.issuer: must not be empty"
        if not self.jwks_endpoint.startswith(("https://", "http://")):
            yield f"{where}.jwks_url: must be an http(s) URL"
        yield from _check_token_use(self.token_use, where)
        if not self.client_ids:
            yield f"{where}.client_ids: at least one app client id is required"


@dataclass(frozen=True, slots=True, kw_only=True)
class DevIssuerConfig:
    """A local development issuer (`gateway token` mints its tokens); never enable in production."""

    enabled: bool = False
    """Accept tokens of this issuer. `gateway token` refuses to mint while this is false."""
    issuer: str = "urn:phi-gateway:dev-issuer"
    """The `iss` of minted tokens."""
    key_file: str = "~/.cache/phi-gateway/dev-issuer.pem"
    """RSA private key (PEM), generated with mode 0600 on first use."""
    client_id: str = "dev-client"
    """`client_id` / `aud` of minted tokens."""
    token_use: tuple[str, ...] = TOKEN_USES
    """Accepted `token_use` values."""

    def check(self, where: str) -> Iterator[str]:
        """Problems beyond the field types."""
        yield from _check_token_use(self.token_use, where)


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupConfig:
    """What membership of a group (`cognito:groups`) grants."""

    permissions: tuple[str, ...] = ()
    """Any of `admin:read` (admin routes of the own tenant) and `tenants:all` (admin routes of
    every tenant; `super_admin` only)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthConfig:
    """Authentication: issuers, token checks, the JWKS cache and admin groups."""

    enabled: bool = True
    """false turns authentication off: every request acts as tenant `anonymous_tenant`. For local
    benchmarks only."""
    anonymous_tenant: str = "anonymous"
    """The tenant of every request while authentication is off."""
    leeway_s: float = 30.0
    """Clock skew allowed on `exp`, `nbf` and `iat` (at most 60)."""
    token_cache_size: int = 4096
    """Verified tokens remembered per worker (0 = verify every request)."""
    token_cache_ttl_s: float = 60.0
    """How long a verified token is remembered (never past its `exp`)."""
    jwks_refresh_s: float = 3600.0
    """Interval of scheduled JWKS refreshes."""
    jwks_cooldown_s: float = 30.0
    """Least time between two refreshes of one JWKS caused by unknown `kid`s."""
    jwks_timeout_s: float = 5.0
    """Deadline of one JWKS fetch."""
    jwks_max_keys: int = 16
    """Most keys kept from one JWKS."""
    claims: ClaimsConfig = field(default_factory=ClaimsConfig)
    issuers: Mapping[str, IssuerConfig] = field(default_factory=dict)
    groups: Mapping[str, GroupConfig] = field(default_factory=dict)
    dev_issuer: DevIssuerConfig = field(default_factory=DevIssuerConfig)

    def check(self, where: str) -> Iterator[str]:
        """Problems beyond the field types."""
        if not 0 <= self.leeway_s <= 60:
            yield f"{where}.leeway_s: must be between 0 and 60"
        if self.token_cache_size < 0 or self.token_cache_ttl_s < 0:
            yield f"{where}.token_cache_size/token_cache_ttl_s: must be >= 0"
        for name in ("jwks_refresh_s", "jwks_timeout_s"):
            if getattr(self, name) <= 0:
                yield f"{where}.{name}: must be > 0"
        if not 1 <= self.jwks_cooldown_s <= 600:
            yield f"{where}.jwks_cooldown_s: must be between 1 and 600"
        if not 1 <= self.jwks_max_keys <= 256:
            yield f"{where}.jwks_max_keys: must be between 1 and 256"
        issuers = [i.issuer for i in self.issuers.values()]
        if self.dev_issuer.enabled:
            issuers.append(self.dev_issuer.issuer)
        if len(set(issuers)) != len(issuers):
            yield f"{where}.issuers: an issuer is configured twice"
        yield from _check_groups(self.groups, f"{where}.groups")


@dataclass(frozen=True, slots=True, kw_only=True)
class TenantConfig:
    """A tenant (`[tenants."*"]` applies to tenants not listed; without it they are refused)."""

    models: tuple[str, ...] = ()
    """Model aliases the tenant may use; `*` = every active model."""
    limits: LimitRuleConfig | None = None
    """Limits shared by all of the tenant's requests (for `*`: each unlisted tenant its own)."""
    user_limits: LimitRuleConfig | None = None
    """Limits of each user of the tenant (the token's app user id, else its subject)."""
    phi: PhiPolicyConfig = field(default_factory=PhiPolicyConfig)
    """The tenant's PHI policy."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AppConfig:
    """An app: requests target it by host (`{app}.example.com`) or path (`/api/{app}/v1/...`)."""

    models: tuple[str, ...] = (WILDCARD,)
    """Model aliases usable through this app (narrows the tenant's list); `*` = no narrowing."""
    limits: LimitRuleConfig | None = None
    """Limits of the app, per tenant using it."""
    phi: PhiOverrideConfig = field(default_factory=PhiOverrideConfig)
    """Overrides of the tenants' PHI policies for requests of this app."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKeyConfig:
    """A service API key for server-to-server clients, stored only as a hash."""

    sha256: Secret
    """Hex SHA-256 of the key (`gateway key` creates a key and prints this)."""
    tenant: str
    """The tenant the key acts for."""
    app: str | None = None
    """The app the key is bound to (none = no app)."""
    models: tuple[str, ...] = (WILDCARD,)
    """Model aliases the key may use (narrows the tenant's and app's lists)."""
    revoked: bool = False
    """A revoked key is refused like an unknown one."""

    def check(self, where: str) -> Iterator[str]:
        """Problems beyond the field types."""
        if not _HEX64.fullmatch(self.sha256.reveal()):
            yield f"{where}.sha256: must be 64 lowercase hex digits"
        if not self.tenant:
            yield f"{where}.tenant: must not be empty"


def check_app_names(apps: Mapping[str, AppConfig]) -> Iterator[str]:
    """App names are DNS labels and never collide with the `/api/v2` REST prefix."""
    for name in apps:
        if not _APP_NAME.fullmatch(name) or name == "v2":
            yield f"apps.{name}: must be a lowercase DNS label other than 'v2'"


def _check_token_use(token_use: tuple[str, ...], where: str) -> Iterator[str]:
    if not token_use or any(use not in TOKEN_USES for use in token_use):
        yield f"{where}.token_use: must be a non-empty list of 'access' and 'id'"


def _check_groups(groups: Mapping[str, GroupConfig], where: str) -> Iterator[str]:
    for name, group in groups.items():
        for permission in group.permissions:
            if permission not in PERMISSIONS:
                yield f"{where}.{name}.permissions: unknown permission {permission!r}"
            elif permission == "tenants:all" and name != CROSS_TENANT_GROUP:
                yield f"{where}.{name}.permissions: only {CROSS_TENANT_GROUP} acts across tenants"
