"""Test identities: one development-issuer key per test session, and tokens minted from it.

Every test gateway (``tests.stack.make_config``) trusts this key through its dev issuer, so a token
minted here works against any of them.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.auth.dev import DevIdentity, TokenUse, load_or_create_key, mint

ISSUER = "urn:phi-gateway:dev-issuer"
CLIENT_ID = "test-client"
TENANT = "tests"


@functools.cache
def key_file() -> str:
    """The session's dev-issuer key file (created once, removed at exit)."""
    folder = Path(tempfile.mkdtemp(prefix="gateway-tests-"))
    atexit.register(shutil.rmtree, folder, True)
    path = str(folder / "dev-issuer.pem")
    load_or_create_key(path)
    return path


@functools.cache
def private_key() -> rsa.RSAPrivateKey:
    return load_or_create_key(key_file())


def token(
    tenant: str = TENANT,
    *,
    token_use: TokenUse = "access",  # noqa: S107 -- a claim value
    lifetime_s: int = 24 * 3600,
    now: float | None = None,
    **identity: Any,
) -> str:
    """A token of the test issuer for ``tenant`` (and ``app``, ``groups``, ... as given)."""
    return mint(
        private_key(),
        DevIdentity(tenant=tenant, **identity),
        issuer=ISSUER,
        client_id=CLIENT_ID,
        token_use=token_use,
        lifetime_s=lifetime_s,
        now=now,
    )


@functools.cache
def default_token() -> str:
    """The token most tests call with: tenant ``tests``, no app."""
    return token()


def bearer(credential: str | None = None) -> dict[str, str]:
    """An Authorization header for ``credential`` (default: ``default_token()``)."""
    return {"Authorization": f"Bearer {credential or default_token()}"}
