"""The ``Principal`` of verified claims: who the caller is, in which tenant and app.

Only claims that passed ``jwt.verify`` come here. Claim names are configurable; each is a list
tried in order, so both spellings the existing API's clients use (``custom:tenantId`` and
``custom:tenant_id``) work. A token without a tenant is refused: there is no default tenant.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from gateway.auth.jwt import invalid
from gateway.config import ClaimsConfig
from gateway.context import Principal

MAX_ID_CHARS: Final = 256
MAX_GROUPS: Final = 64


def principal_from_claims(
    claims: Mapping[str, Any], names: ClaimsConfig, issuer_name: str
) -> Principal:
    """The caller named by verified ``claims``.

    Raises:
        AuthenticationFailed: no tenant, or an identity claim of the wrong shape.
    """
    tenant = _identifier(claims, names.tenant)
    if tenant is None:
        raise invalid("no tenant claim")
    return Principal(
        subject=str(claims["sub"]),
        tenant_id=tenant,
        app_id=_identifier(claims, names.app),
        app_user_id=_identifier(claims, names.app_user),
        email=_identifier(claims, names.email),
        groups=_groups(claims, names.groups),
        via=f"jwt:{issuer_name}",
    )


def _identifier(claims: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = claims.get(name)
        if value is None or value == "":
            continue
        if not isinstance(value, str) or len(value) > MAX_ID_CHARS or not value.isprintable():
            raise invalid(f"claim {name} is malformed")
        return value
    return None


def _groups(claims: Mapping[str, Any], names: tuple[str, ...]) -> tuple[str, ...]:
    for name in names:
        value = claims.get(name)
        if value is None:
            continue
        if (
            not isinstance(value, list)
            or len(value) > MAX_GROUPS
            or not all(isinstance(g, str) and len(g) <= MAX_ID_CHARS for g in value)
        ):
            raise invalid(f"claim {name} is malformed")
        return tuple(value)
    return ()
