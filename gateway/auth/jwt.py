"""Cognito JWT verification as AWS documents it: pure functions over (token, key, policy).

Two steps, both without I/O:

1. ``peek(token)`` -- length cap (8 KiB) before anything else, three base64url segments, JSON
   header and payload; returns the ``kid`` (from the header) and ``iss`` (from the payload) that
   choose the key. Nothing from it is trusted; header fields such as ``jku``, ``x5u`` or ``jwk`` are
   never read.
2. ``verify(token, key, policy, leeway_s)`` -- PyJWT with ``algorithms=["RS256"]`` and the key of
   that ``kid`` from the configured issuer's JWKS (never from the token), the exact ``iss``,
   ``exp``/``nbf``/``iat`` with leeway, the required claims, then ``token_use`` and the app client:
   ``client_id`` for access tokens (they have no ``aud``), ``aud`` for ID tokens.

Every failure is an ``AuthenticationFailed`` whose message names the check, never the token.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any, Final

import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from gateway.errors import AuthenticationFailed

MAX_TOKEN_BYTES: Final = 8192
MAX_KID_CHARS: Final = 128
REQUIRED_CLAIMS: Final = ("exp", "iat", "iss", "sub", "token_use")
_ALGORITHMS: Final = ["RS256"]
_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]+")
"""RFC 7515 segments: base64url without padding. Anything else (``=``, ``+``, ``/``, spaces) would
let one signature appear as many accepted token strings."""


@dataclass(frozen=True, slots=True)
class Peek:
    """The unverified routing fields of a token: which issuer, which key."""

    kid: str
    iss: str


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuerPolicy:
    """What one issuer's tokens must satisfy."""

    name: str
    """The issuer's name in the configuration (shown in ``Principal.via``)."""
    issuer: str
    token_use: frozenset[str]
    client_ids: frozenset[str]


def invalid(reason: str) -> AuthenticationFailed:
    """The 401 for a token that failed ``reason`` (no token material in the message)."""
    return AuthenticationFailed(f"Invalid bearer token: {reason}.", code="invalid_token")


def peek(token: str) -> Peek:
    """The ``kid`` and ``iss`` of ``token``, read without trusting them.

    Raises:
        AuthenticationFailed: oversized, not three base64url segments, or no usable kid/iss.
    """
    if len(token) > MAX_TOKEN_BYTES:
        raise invalid(f"longer than {MAX_TOKEN_BYTES} bytes")
    parts = token.split(".")
    if len(parts) != 3 or not all(_BASE64URL.fullmatch(part) for part in parts):
        raise invalid("not a signed JWT")
    header, payload = _segment(parts[0], "header"), _segment(parts[1], "payload")
    kid, iss = header.get("kid"), payload.get("iss")
    if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_CHARS:
        raise invalid("no usable key id")
    if not isinstance(iss, str) or not iss:
        raise invalid("no issuer")
    return Peek(kid, iss)


def verify(token: str, key: RSAPublicKey, policy: IssuerPolicy, leeway_s: float) -> dict[str, Any]:
    """The verified claims of ``token``.

    Raises:
        AuthenticationFailed: any check failed.
    """
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=_ALGORITHMS,
            issuer=policy.issuer,
            leeway=leeway_s,
            options={"require": list(REQUIRED_CLAIMS), "verify_aud": False},
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthenticationFailed("Invalid bearer token: expired.", code="token_expired") from exc
    except jwt.ImmatureSignatureError as exc:
        raise invalid("not valid yet") from exc
    except jwt.InvalidIssuerError as exc:
        raise invalid("wrong issuer") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise invalid(f"missing claim {exc.claim}") from exc
    except jwt.InvalidSignatureError as exc:
        raise invalid("bad signature") from exc
    except (jwt.InvalidTokenError, OverflowError) as exc:  # alg, crit, malformed claims, ...
        raise invalid("malformed or unsupported") from exc
    _check_use_and_client(claims, policy)
    return claims


def _check_use_and_client(claims: dict[str, Any], policy: IssuerPolicy) -> None:
    use = claims.get("token_use")
    if use not in policy.token_use:
        raise invalid(f"token_use must be {' or '.join(sorted(policy.token_use))}")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise invalid("missing claim sub")
    # Access tokens name their app client in client_id and have no aud; ID tokens use aud.
    client = claims.get("client_id") if use == "access" else claims.get("aud")
    if not isinstance(client, str) or client not in policy.client_ids:
        raise invalid("issued for another app client")


def _segment(text: str, what: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        value = orjson.loads(raw)
    except (binascii.Error, ValueError) as exc:  # orjson.JSONDecodeError is a ValueError
        raise invalid(f"{what} is not base64url JSON") from exc
    if not isinstance(value, dict):
        raise invalid(f"{what} is not a JSON object")
    return value
