"""Keys, JWKs and hand-made tokens for the authentication tests.

RSA keys are generated once per session (2048-bit generation is slow). Two Cognito-shaped issuers:
pool A (access tokens, ``client_id``) and pool B (ID tokens, ``aud``), each with its own key and
JWKS served by a ``tests.fakes.idp.FakeIdP``.
"""

from __future__ import annotations

import base64
import functools
import time
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from jwt.algorithms import RSAAlgorithm

REGION = "eu-west-1"
ISSUER_A = f"https://cognito-idp.{REGION}.amazonaws.com/{REGION}_PoolAaaaA"
ISSUER_B = f"https://cognito-idp.{REGION}.amazonaws.com/{REGION}_PoolBbbbB"
CLIENT_A = "client-a-1234567890"
CLIENT_B = "client-b-0987654321"
TENANT = "t1"


@functools.cache
def rsa_key(name: str, bits: int = 2048) -> rsa.RSAPrivateKey:
    """A private key per name (``a1``, ``a2``, ``b1``, ``attacker``, ...), generated once."""
    del name  # only the cache key
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_jwk(key: rsa.RSAPrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    """The public JWK of ``key`` as Cognito publishes it (``use=sig``, ``alg=RS256``)."""
    jwk: dict[str, Any] = orjson.loads(RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256", **extra}


def private_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    """The JWK of ``key`` including its private parts (``d``, ``p``, ...)."""
    jwk: dict[str, Any] = orjson.loads(RSAAlgorithm.to_jwk(key))
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


def access_claims(**overrides: Any) -> dict[str, Any]:
    """A valid pool-A access token's claims; an override of None removes the claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "user-1",
        "iss": ISSUER_A,
        "token_use": "access",
        "client_id": CLIENT_A,
        "iat": now - 5,
        "auth_time": now - 5,
        "exp": now + 600,
        "jti": "jti-1",
        "custom:tenantId": TENANT,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def id_claims(**overrides: Any) -> dict[str, Any]:
    """A valid pool-B ID token's claims (``aud`` instead of ``client_id``)."""
    return access_claims(
        **{"iss": ISSUER_B, "token_use": "id", "client_id": None, "aud": CLIENT_B, **overrides}
    )


def sign(
    claims: dict[str, Any],
    key: str = "a1",
    *,
    kid: Any = "a1",
    headers: dict[str, Any] | None = None,
) -> str:
    """An RS256 token of ``claims`` signed with ``rsa_key(key)``; ``kid=None`` omits the kid.

    Signed by hand: PyJWT refuses to encode some of the headers the attacks need."""
    header: dict[str, Any] = {"alg": "RS256", "typ": "JWT", "kid": kid, **(headers or {})}
    if kid is None:
        del header["kid"]
    signing_input = f"{b64(orjson.dumps(header))}.{b64(orjson.dumps(claims))}"
    signature = rsa_key(key).sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


def assemble(header: dict[str, Any] | bytes, payload: dict[str, Any] | bytes, sig: bytes) -> str:
    """A compact JWS from raw parts (no signing)."""
    h = header if isinstance(header, bytes) else orjson.dumps(header)
    p = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return f"{b64(h)}.{b64(p)}.{b64(sig)}"
