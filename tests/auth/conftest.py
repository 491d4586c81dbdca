"""Fixtures: two fake Cognito pools (A: access tokens, B: ID tokens), an attacker server, and an
``Authenticator`` trusting both pools."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from gateway.auth.authenticator import Authenticator
from gateway.config import AuthConfig, IssuerConfig
from tests.auth.site import Site, close_site, open_site
from tests.auth.tokens import (
    CLIENT_A,
    CLIENT_B,
    ISSUER_A,
    ISSUER_B,
    b64,
    private_jwk,
    public_jwk,
    rsa_key,
)
from tests.fakes.idp import FakeIdP
from tests.stack import BackgroundLoop


def jwks_a() -> list[dict[str, Any]]:
    """Pool A's JWKS: its key (also as ``dup``) and entries that must all be ignored."""
    return [
        public_jwk(rsa_key("a1"), "a1"),
        public_jwk(rsa_key("a1"), "dup"),
        {"kty": "oct", "kid": "hs", "k": b64(b"shared-secret"), "alg": "HS256", "use": "sig"},
        public_jwk(rsa_key("a1"), "rsa-hs", alg="HS256"),
        public_jwk(rsa_key("small", 1024), "small"),
        private_jwk(rsa_key("priv"), "priv"),
        public_jwk(rsa_key("enc"), "enc", use="enc"),
    ]


def jwks_b() -> list[dict[str, Any]]:
    return [public_jwk(rsa_key("b1"), "b1"), public_jwk(rsa_key("b1"), "dup")]


@pytest.fixture(scope="session", autouse=True)
def _keys() -> None:
    """Generate every key before any event loop runs."""
    jwks_a()
    jwks_b()
    rsa_key("a2")
    rsa_key("attacker")


@pytest.fixture
async def idp_a() -> AsyncIterator[FakeIdP]:
    idp = await FakeIdP({"keys": jwks_a()}).start()
    yield idp
    await idp.close()


@pytest.fixture
async def idp_b() -> AsyncIterator[FakeIdP]:
    idp = await FakeIdP({"keys": jwks_b()}).start()
    yield idp
    await idp.close()


@pytest.fixture
async def attacker() -> AsyncIterator[FakeIdP]:
    """A server an attacker controls, publishing the attacker's key."""
    idp = await FakeIdP({"keys": [public_jwk(rsa_key("attacker"), "a1")]}).start()
    yield idp
    await idp.close()


def auth_config(idp_a: FakeIdP, idp_b: FakeIdP, **overrides: Any) -> AuthConfig:
    """Pool A accepts access tokens of CLIENT_A, pool B ID tokens of CLIENT_B."""
    issuers = {
        "pool-a": IssuerConfig(
            issuer=ISSUER_A, jwks_url=idp_a.jwks_url, token_use=("access",), client_ids=(CLIENT_A,)
        ),
        "pool-b": IssuerConfig(
            issuer=ISSUER_B, jwks_url=idp_b.jwks_url, token_use=("id",), client_ids=(CLIENT_B,)
        ),
    }
    settings: dict[str, Any] = {"leeway_s": 30.0, "jwks_cooldown_s": 30.0, "issuers": issuers}
    return AuthConfig(**{**settings, **overrides})


@pytest.fixture
async def authenticator(idp_a: FakeIdP, idp_b: FakeIdP) -> AsyncIterator[Authenticator]:
    auth = Authenticator(auth_config(idp_a, idp_b), {})
    await auth.start()
    yield auth
    await auth.aclose()


@pytest.fixture(scope="module")
def site(background: BackgroundLoop) -> Iterator[Site]:
    """The isolation gateway (``tests.auth.site``), shared by a module's tests."""
    opened = open_site(background)
    yield opened
    close_site(background, opened)


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session without default credentials."""
    async with aiohttp.ClientSession() as session:
        yield session
