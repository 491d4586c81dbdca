"""The development issuer: a local RSA key that mints Cognito-shaped tokens for demos and tests.

The key is generated on first use (2048-bit RSA, PKCS#8 PEM, file mode 0600, created atomically so
concurrent first uses agree on one key). Tokens carry the claims a Cognito user pool with a V2
pre-token-generation trigger would put in them. The gateway accepts them only while
``auth.dev_issuer.enabled`` is true. Synchronous file I/O: call it off the event loop.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

TokenUse = Literal["access", "id"]


def load_or_create_key(path: str) -> rsa.RSAPrivateKey:
    """The private key at ``path`` (``~`` expanded), generated there if it does not exist."""
    file = Path(path).expanduser()
    if not file.exists():
        _create_key_file(file)
    key = serialization.load_pem_private_key(file.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError(f"{file} does not hold an RSA private key")
    return key


def _create_key_file(file: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = file.with_name(f".{file.name}.{uuid.uuid4().hex}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        # link() never replaces: whoever links first wins and everyone reads that key.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, file)
    finally:
        tmp.unlink(missing_ok=True)


def key_id(public: rsa.RSAPublicKey) -> str:
    """The RFC 7638 thumbprint of ``public``: its ``kid``."""
    jwk = _public_jwk_members(public)
    canonical = orjson.dumps({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]})
    return _b64(hashlib.sha256(canonical).digest())


def public_jwks(public: rsa.RSAPublicKey) -> dict[str, Any]:
    """The JWKS document publishing ``public``."""
    jwk = {**_public_jwk_members(public), "kid": key_id(public), "use": "sig", "alg": "RS256"}
    return {"keys": [jwk]}


@dataclass(frozen=True, slots=True, kw_only=True)
class DevIdentity:
    """Who a minted token speaks for."""

    tenant: str
    subject: str = "dev-user"
    app: str | None = None
    app_user: str | None = None
    email: str | None = None
    groups: tuple[str, ...] = ()


def mint(  # noqa: PLR0913 -- the claims of a token, each chosen by the caller
    key: rsa.RSAPrivateKey,
    identity: DevIdentity,
    *,
    issuer: str,
    client_id: str,
    token_use: TokenUse = "access",  # noqa: S107 -- a claim name, not a password
    lifetime_s: int = 3600,
    now: float | None = None,
) -> str:
    """A signed RS256 token shaped like Cognito's (``client_id`` on access, ``aud`` on ID)."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "sub": identity.subject,
        "iss": issuer,
        "token_use": token_use,
        "iat": issued,
        "auth_time": issued,
        "exp": issued + lifetime_s,
        "jti": str(uuid.uuid4()),
        "custom:tenantId": identity.tenant,
    }
    claims["client_id" if token_use == "access" else "aud"] = client_id  # noqa: S105
    optional = {
        "custom:appId": identity.app,
        "custom:appUserId": identity.app_user,
        "email": identity.email,
        "cognito:groups": list(identity.groups) or None,
    }
    claims.update({name: value for name, value in optional.items() if value})
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": key_id(key.public_key())})


def _public_jwk_members(public: rsa.RSAPublicKey) -> dict[str, str]:
    numbers = public.public_numbers()
    return {"kty": "RSA", "n": _b64_int(numbers.n), "e": _b64_int(numbers.e)}


def _b64_int(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
