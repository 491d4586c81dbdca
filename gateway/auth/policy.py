"""Authorization: what a verified principal may do. Pure; decided from configuration only.

- ``admit`` -- tenant and app isolation, run once per request before the handler: the tenant must
  be configured (or covered by ``[tenants."*"]``); the app a request targets (host label or
  ``/api/{app}/`` prefix) must be the app the token names; admin routes need ``admin:read``, and
  another tenant's admin routes need ``tenants:all`` (``super_admin`` only).
- ``models_for`` -- the one model authorization function: the active models in the intersection of
  the tenant's, the app's and the key's lists. ``/v1/models`` lists exactly these, and invocation
  accepts exactly these; any other alias is "not found", like an unknown one.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from gateway.config import GatewayConfig, ModelConfig, TenantConfig
from gateway.config.access import WILDCARD
from gateway.context import Principal
from gateway.errors import ModelNotFound, NotFound, PermissionDenied

_CACHE_LIMIT: Final = 10_000
_Key = tuple[str, str | None, tuple[str, ...]]


class AccessPolicy:
    """Tenant, app and model permissions of one configuration."""

    def __init__(self, config: GatewayConfig) -> None:
        self._active = {a: m for a, m in config.models.items() if m.status == "active"}
        self._tenants = config.tenants
        self._apps = config.apps
        self._groups = {name: frozenset(g.permissions) for name, g in config.auth.groups.items()}
        self._allowed: dict[_Key, Mapping[str, ModelConfig]] = {}

    @property
    def apps(self) -> frozenset[str]:
        """The configured app names."""
        return frozenset(self._apps)

    def admit(
        self, principal: Principal, *, target_app: str | None, route_tenant: str | None
    ) -> None:
        """Allow the request, or raise.

        ``route_tenant`` is the tenant an admin route names (None on other routes).

        Raises:
            PermissionDenied: the tenant is not enabled, the app does not match, or the caller
                lacks the permission the admin route needs.
        """
        if self._tenant(principal.tenant_id) is None:
            raise PermissionDenied("Your tenant is not enabled on this gateway.")
        app = principal.app_id
        if app is not None and self._apps and app not in self._apps:
            raise PermissionDenied("The app your credential names is not enabled on this gateway.")
        if target_app is not None and target_app != app:
            raise PermissionDenied(f"Your credential was not issued for the app '{target_app}'.")
        if route_tenant is not None:
            self._admit_admin(principal, route_tenant)

    def _admit_admin(self, principal: Principal, route_tenant: str) -> None:
        granted = self.permissions(principal)
        if "admin:read" not in granted:
            raise PermissionDenied("This route needs the admin:read permission.")
        if route_tenant != principal.tenant_id and "tenants:all" not in granted:
            raise PermissionDenied("You may not act on another tenant.")

    def usage_tenant(self, principal: Principal, requested: str | None) -> str:
        """The tenant whose usage ``principal`` asked for (default: its own).

        Raises:
            PermissionDenied: no ``admin:read``, or another tenant without ``tenants:all``.
        """
        tenant = requested or principal.tenant_id
        self._admit_admin(principal, tenant)
        return tenant

    def permissions(self, principal: Principal) -> frozenset[str]:
        """What the principal's groups grant (service keys have no groups)."""
        granted: frozenset[str] = frozenset()
        for group in principal.groups:
            granted |= self._groups.get(group, frozenset())
        return granted

    def models_for(self, principal: Principal) -> Mapping[str, ModelConfig]:
        """The models ``principal`` may list and call, by alias."""
        key = (principal.tenant_id, principal.app_id, principal.model_scope)
        allowed = self._allowed.get(key)
        if allowed is None:
            if len(self._allowed) >= _CACHE_LIMIT:
                self._allowed.clear()
            allowed = self._allowed[key] = MappingProxyType(self._compute(*key))
        return allowed

    def require_model(self, principal: Principal, alias: str) -> ModelConfig:
        """The model ``alias`` if ``principal`` may call it.

        Raises:
            ModelNotFound: unknown, disabled or not permitted (indistinguishable on purpose).
        """
        model = self.models_for(principal).get(alias)
        if model is None:
            raise ModelNotFound(
                f"The model '{alias}' does not exist or you do not have access to it.",
                param="model",
            )
        return model

    def tenant_models(self, tenant: str) -> Mapping[str, ModelConfig]:
        """The models a tenant may use before app and key narrowing (admin routes).

        Raises:
            NotFound: the tenant is not enabled.
        """
        if self._tenant(tenant) is None:
            raise NotFound(f"No tenant '{tenant}' is enabled on this gateway.")
        return self._compute(tenant, None, (WILDCARD,))

    def _tenant(self, tenant: str) -> TenantConfig | None:
        return self._tenants.get(tenant) or self._tenants.get(WILDCARD)

    def _compute(
        self, tenant: str, app: str | None, scope: tuple[str, ...]
    ) -> dict[str, ModelConfig]:
        tenant_config = self._tenant(tenant)
        if tenant_config is None:
            return {}
        lists = [tenant_config.models, scope]
        if app is not None and self._apps:
            app_config = self._apps.get(app)
            if app_config is None:
                return {}
            lists.append(app_config.models)
        return {
            alias: model
            for alias, model in self._active.items()
            if all(WILDCARD in names or alias in names for names in lists)
        }
