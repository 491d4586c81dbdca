"""Admin routes (``/admin/v1/...``): tenant-scoped views for operators.

The tenancy middleware has already checked ``admin:read`` and, for another tenant's routes,
``tenants:all``.
"""

from __future__ import annotations

from aiohttp import web

from gateway.keys import POLICY
from gateway.wire import dumps


async def tenant_models(request: web.Request) -> web.Response:
    """The models a tenant may use (before app and key narrowing).

    Raises:
        NotFound: the tenant is not enabled.
    """
    tenant = request.match_info["tenant"]
    models = request.app[POLICY].tenant_models(tenant)
    body = {
        "object": "list",
        "tenant": tenant,
        "data": [{"id": alias, "object": "model", "kind": m.kind} for alias, m in models.items()],
    }
    return web.Response(body=dumps(body), content_type="application/json")
