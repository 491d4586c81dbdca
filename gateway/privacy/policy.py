"""Whether and how PHI is handled for one request: the tenant's policy, the app's overrides, the
request's opt-in fields and the caller's groups, decided once before anything is sent upstream.
Pure: configuration and the request in, a ``PhiPlan`` (or None: PHI handling off) out.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config import GatewayConfig, ModelConfig, PhiPolicyConfig
from gateway.config.access import WILDCARD
from gateway.config.phi import CATEGORY_NAMES, EVERYONE
from gateway.context import PhiOptions, Principal
from gateway.errors import InvalidRequest, PermissionDenied

#: Request fields whose output bypasses the text transducers (token strings, predicted content,
#: audio); refused while PHI handling is on rather than forwarded unmasked.
_UNMASKABLE = ("logprobs", "top_logprobs", "prediction", "audio")
_CACHE_LIMIT = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class PhiPlan:
    """PHI handling for one request."""

    categories: frozenset[str]
    """Category names redacted in the prompt and masked in the answer."""
    reidentify: bool
    """The caller may see originals: placeholders in the answer are turned back."""
    ttl_s: float
    """Vault TTL of the conversation."""
    zip3: bool = False
    """ZIP codes become their Safe Harbor three-digit form instead of placeholders."""
    conversation_id: str | None
    """The client's conversation id; None: the request is its own conversation."""


class PhiPolicies:
    """The effective PHI policy of each tenant and app of one configuration."""

    def __init__(self, config: GatewayConfig) -> None:
        self._tenants = config.tenants
        self._apps = config.apps
        self._cache: dict[tuple[str, str | None], PhiPolicyConfig | None] = {}

    def policy(self, tenant: str, app: str | None) -> PhiPolicyConfig | None:
        """The tenant's policy with the app's overrides (None: the tenant is unknown)."""
        key = (tenant, app)
        if key not in self._cache:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = self._policy(tenant, app)
        return self._cache[key]

    def _policy(self, tenant: str, app: str | None) -> PhiPolicyConfig | None:
        tenant_config = self._tenants.get(tenant) or self._tenants.get(WILDCARD)
        if tenant_config is None:
            return None
        policy = tenant_config.phi
        app_config = self._apps.get(app) if app is not None else None
        return policy if app_config is None else app_config.phi.apply(policy)

    def all_policies(self) -> list[PhiPolicyConfig]:
        """Every tenant x app combination's policy (to prepare their detectors at start-up)."""
        apps: list[str | None] = [None, *self._apps]
        return [
            p
            for tenant in self._tenants
            for app in apps
            if (p := self.policy(tenant, app)) is not None
        ]

    def plan(
        self, principal: Principal, options: PhiOptions, model: ModelConfig, alias: str
    ) -> PhiPlan | None:
        """PHI handling for this request, or None when it is off.

        Raises:
            InvalidRequest: PHI fields on a tenant where PHI handling is disabled, or unknown
                categories.
            PermissionDenied: PHI handling is on and the model is not HIPAA-eligible.
        """
        policy = self.policy(principal.tenant_id, principal.app_id)
        if policy is None or policy.mode == "disabled":
            if options.requested:
                raise InvalidRequest(
                    "PHI handling is disabled for your tenant; remove 'enable_phi' and "
                    "'phi_categories'",
                    param="enable_phi",
                    code="phi_disabled",
                )
            return None
        if policy.mode == "manual" and not options.requested:
            return None
        unknown = [c for c in options.categories if c not in CATEGORY_NAMES]
        if unknown:
            raise InvalidRequest(
                f"unknown PHI categories {unknown}; known: {', '.join(CATEGORY_NAMES)}",
                param="phi_categories",
            )
        if not model.hipaa_eligible:
            raise PermissionDenied(
                f"The model '{alias}' is not HIPAA-eligible; requests with PHI handling may "
                "only use HIPAA-eligible models.",
                param="model",
                code="model_not_hipaa_eligible",
            )
        groups = set(policy.reidentify_groups)
        return PhiPlan(
            categories=frozenset(policy.categories) | frozenset(options.categories),
            reidentify=policy.reidentify
            and (EVERYONE in groups or bool(groups & set(principal.groups))),
            ttl_s=policy.vault_ttl_s,
            zip3=policy.zip3,
            conversation_id=options.conversation_id,
        )


def refuse_unmaskable(body: dict[str, object]) -> None:
    """Refuse request fields whose output the transducers cannot mask.

    Raises:
        InvalidRequest: such a field is set.
    """
    for key in _UNMASKABLE:
        if body.get(key) not in (None, False, 0):
            raise InvalidRequest(
                f"'{key}' cannot be used with PHI handling (its output cannot be masked)",
                param=key,
            )
    modalities = body.get("modalities")
    if modalities not in (None, ["text"]):
        raise InvalidRequest("only text output can be used with PHI handling", param="modalities")
