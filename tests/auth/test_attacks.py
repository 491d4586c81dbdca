"""The attack corpus (reliability.md section 1.3, jwt_tool / Wycheproof / aws-jwt-verify cases):
every token below must be refused by ``Authenticator.authenticate`` with a 401 whose message does
not carry the token, and no server named by the token may be contacted."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization

from gateway.auth.authenticator import Authenticator
from gateway.errors import AuthenticationFailed
from tests.auth.tokens import (
    CLIENT_A,
    CLIENT_B,
    ISSUER_A,
    ISSUER_B,
    REGION,
    access_claims,
    b64,
    id_claims,
    private_jwk,
    public_jwk,
    rsa_key,
    sign,
    unb64,
)
from tests.fakes.idp import FakeIdP

Case = Callable[[str], str]
"""Builds the attack token; the argument is the attacker server's base URL."""
NOW = int(time.time())


def _parts(token: str) -> list[str]:
    return token.split(".")


def _alg_none(alg: str, keep_signature: bool) -> Case:
    def build(_: str) -> str:
        _h, p, s = _parts(sign(access_claims()))
        header = b64(b'{"alg":"%s","typ":"JWT","kid":"a1"}' % alg.encode())
        return f"{header}.{p}.{s if keep_signature else ''}"

    return build


def _other_alg(alg: str) -> Case:
    """Signed with pool A's real key, but with an algorithm other than RS256."""
    return lambda _: jwt.encode(
        access_claims(), rsa_key("a1"), algorithm=alg, headers={"kid": "a1"}
    )


def _hs256(secret: bytes, kid: str = "a1") -> Case:
    def build(_: str) -> str:
        header = b64(b'{"alg":"HS256","typ":"JWT","kid":"%s"}' % kid.encode())
        payload = b64(orjson.dumps(access_claims()))
        mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{b64(mac)}"

    return build


def _public_pem() -> bytes:
    return (
        rsa_key("a1")
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _signed(key: str = "a1", kid: object = "a1", **claims: object) -> Case:
    return lambda _: sign(access_claims(**claims), key, kid=kid)


def _with(claims: dict[str, object]) -> Case:
    """A pool-A token with ``claims`` changed (None removes a claim)."""
    return lambda _: sign(access_claims(**claims))


def _header(**fields: object) -> Case:
    """A token signed with the attacker's key whose header points at the attacker's key."""

    def build(url: str) -> str:
        values = {k: (v.format(url=url) if isinstance(v, str) else v) for k, v in fields.items()}
        return sign(access_claims(), "attacker", kid="a1", headers=values)

    return build


def _resign_signature(edit: Callable[[str], str]) -> Case:
    def build(_: str) -> str:
        h, p, s = _parts(sign(access_claims()))
        return f"{h}.{p}.{edit(s)}"

    return build


def _flip_bit(sig: str) -> str:
    raw = bytearray(unb64(sig))
    raw[len(raw) // 2] ^= 0x01
    return b64(bytes(raw))


def _standard_b64(sig: str) -> str:
    assert "-" in sig or "_" in sig  # 342 random characters: never false in practice
    return sig.replace("-", "+").replace("_", "/")


def _tampered(_: str) -> str:
    h, _p, s = _parts(sign(access_claims()))
    return f"{h}.{b64(orjson.dumps(access_claims(**{'custom:tenantId': 't2'})))}.{s}"


def _raw_header(header: bytes) -> Case:
    def build(_: str) -> str:
        _h, p, s = _parts(sign(access_claims()))
        return f"{b64(header)}.{p}.{s}"

    return build


ATTACKER_JWK = public_jwk(rsa_key("attacker"), "a1")

CASES: dict[str, Case] = {
    # alg none, any spelling, with and without a signature
    **{f"alg-{a}": _alg_none(a, False) for a in ("none", "None", "NONE", "nOnE")},
    **{f"alg-{a}-with-signature": _alg_none(a, True) for a in ("none", "NONE")},
    # key confusion: HMAC keyed with public material
    "hs256-public-pem": _hs256(_public_pem()),
    "hs256-jwk-n": _hs256(str(ATTACKER_JWK["n"]).encode()),
    "hs256-real-jwk-n": _hs256(str(public_jwk(rsa_key("a1"), "a1")["n"]).encode()),
    "hs256-oct-jwk-in-jwks": _hs256(b"shared-secret", kid="hs"),
    # an algorithm the key allows but the configuration does not
    **{f"alg-{alg}": _other_alg(alg) for alg in ("RS384", "RS512", "PS256")},
    # kid
    "kid-unknown": _signed(kid="no-such-kid"),
    "kid-path-traversal": _signed(kid="../../dev/null"),
    "kid-sql": _signed(kid="' OR 1=1 --"),
    "kid-blank": _signed(kid=""),
    "kid-too-long": _signed(kid="a" * 129),
    "kid-int": _signed(kid=1),
    "kid-list": _signed(kid=["a1"]),
    "kid-missing": _signed(kid=None),
    # keys named by the token
    "jku": _header(jku="{url}/.well-known/jwks.json"),
    "x5u": _header(x5u="{url}/cert.pem"),
    "embedded-jwk": _header(jwk=ATTACKER_JWK),
    "jku-unknown-kid": lambda url: sign(
        access_claims(), "attacker", kid="evil", headers={"jku": f"{url}/jwks.json"}
    ),
    # time
    "expired-beyond-leeway": _signed(exp=NOW - 90, iat=NOW - 700),
    "nbf-future": _signed(nbf=NOW + 120),
    "iat-future": _signed(iat=NOW + 120),
    # issuer
    "iss-other-pool": _signed(iss=f"https://cognito-idp.{REGION}.amazonaws.com/{REGION}_Other111"),
    "iss-other-region": _signed(iss=ISSUER_A.replace(REGION, "us-east-1")),
    "iss-suffix": _signed(iss=ISSUER_A + "x"),
    "iss-trailing-slash": _signed(iss=ISSUER_A + "/"),
    "iss-truncated": _signed(iss=ISSUER_A[:-1]),
    "iss-b-with-a-key": _with({"iss": ISSUER_B, "token_use": "id", "aud": CLIENT_B}),
    # app client and token_use
    "access-wrong-client-id": _signed(client_id="other-client"),
    "access-client-id-list": _signed(client_id=[CLIENT_A]),
    "access-aud-instead-of-client-id": _signed(client_id=None, aud=CLIENT_A),
    "id-wrong-aud": lambda _: sign(id_claims(aud="other-client"), "b1", kid="b1"),
    "id-token-where-access-configured": _with(
        {"token_use": "id", "client_id": None, "aud": CLIENT_A}
    ),
    "access-token-where-id-configured": lambda _: sign(
        id_claims(token_use="access", client_id=CLIENT_B),  # noqa: S106 -- a claim value
        "b1",
        kid="b1",
    ),
    # required claims
    **{f"missing-{c}": _with({c: None}) for c in ("sub", "exp", "iat", "token_use")},
    "missing-tenant": _with({"custom:tenantId": None}),
    "blank-sub": _signed(sub=""),
    "tenant-not-a-string": _with({"custom:tenantId": ["t1", "t2"]}),
    # signature and structure
    "payload-tampered": _tampered,
    "signature-truncated": _resign_signature(lambda s: s[:-4]),
    "signature-bit-flip": _resign_signature(_flip_bit),
    "signature-padded": _resign_signature(lambda s: s + "=" * (-len(s) % 4)),
    "signature-standard-base64": _resign_signature(_standard_b64),
    "signature-of-other-key": _signed(key="attacker"),
    "header-not-json": _raw_header(b"not json at all"),
    "header-json-array": _raw_header(b'[{"alg":"RS256","kid":"a1"}]'),
    "two-segments": lambda _: ".".join(_parts(sign(access_claims()))[:2]),
    "four-segments": lambda _: sign(access_claims()) + ".e30",
    "empty": lambda _: "",
    "dots-only": lambda _: "..",
    "oversized-9k": _signed(pad="x" * 9 * 1024),
    "oversized-1mb-garbage": lambda _: "A" * (1 << 20),
    # keys that must not be in the key set
    "duplicate-kid-across-issuers": _signed(key="b1", kid="dup"),
    "jwks-rsa-key-marked-hs256": _signed(kid="rsa-hs"),
    "jwks-rsa-key-below-2048-bits": _signed(key="small", kid="small"),
    "jwks-entry-with-private-d": _signed(key="priv", kid="priv"),
    "jwks-entry-use-enc": _signed(key="enc", kid="enc"),
    "crit-unknown": lambda _: sign(
        access_claims(), headers={"crit": ["urn:example:must-understand"], "urn:example:x": 1}
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_attack_is_rejected(
    authenticator: Authenticator, attacker: FakeIdP, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = CASES[case](attacker.url)
    with pytest.raises(AuthenticationFailed) as info:
        await authenticator.authenticate(token)
    error = info.value
    assert error.http_status == 401
    assert error.type == "authentication_error"
    assert "Bearer" in error.headers()["www-authenticate"]
    text = f"{error.message} {error!s} {error.to_dict()} {caplog.text}"
    for part in (token, *_parts(token)):
        assert len(part) < 8 or part not in text
    assert attacker.requests == []


@pytest.mark.parametrize(
    "kid", ["", "a" * 129, 7, ["a1"], None], ids=["blank", "long", "int", "list", "missing"]
)
async def test_unusable_kid_is_refused_without_any_fetch(
    authenticator: Authenticator, idp_a: FakeIdP, kid: object
) -> None:
    before = len(idp_a.requests)
    with pytest.raises(AuthenticationFailed):
        await authenticator.authenticate(sign(access_claims(), kid=kid))
    assert len(idp_a.requests) == before


async def test_oversized_token_is_refused_before_any_parsing(
    authenticator: Authenticator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("parsed an oversized token")

    monkeypatch.setattr("gateway.auth.jwt._segment", must_not_run)
    monkeypatch.setattr("gateway.auth.jwt.jwt.decode", must_not_run)
    valid_but_huge = sign(access_claims(pad="x" * (1 << 20)))
    for token in (valid_but_huge, "A" * (1 << 20), sign(access_claims(pad="y" * 8200))):
        with pytest.raises(AuthenticationFailed, match="longer than 8192"):
            await authenticator.authenticate(token)


async def test_expired_within_leeway_is_accepted(authenticator: Authenticator) -> None:
    token = sign(access_claims(exp=NOW - 10, iat=NOW - 700))
    principal = await authenticator.authenticate(token)
    assert principal.tenant_id == "t1"


@pytest.mark.parametrize("claim", ["nbf", "iat"])
async def test_future_nbf_or_iat_within_leeway_is_accepted(
    authenticator: Authenticator, claim: str
) -> None:
    principal = await authenticator.authenticate(sign(access_claims(**{claim: NOW + 10})))
    assert principal.subject == "user-1"


async def test_expired_is_reported_as_expired(authenticator: Authenticator) -> None:
    with pytest.raises(AuthenticationFailed) as info:
        await authenticator.authenticate(sign(access_claims(exp=NOW - 90, iat=NOW - 700)))
    assert info.value.code == "token_expired"


def test_private_jwk_fixture_really_has_d() -> None:
    """Guards the ``jwks-entry-with-private-d`` case: the entry must carry ``d``."""
    assert "d" in private_jwk(rsa_key("priv"), "priv")


# --- valid tokens of every configured kind -------------------------------------------------------

CAMEL = {"custom:tenantId": "t1", "custom:appId": "chat", "custom:appUserId": "u-42"}
SNAKE = {"custom:tenant_id": "t1", "custom:app_id": "chat", "custom:app_user_id": "u-42"}


@pytest.mark.parametrize("spelling", [CAMEL, SNAKE], ids=["camelCase", "snake_case"])
async def test_access_token_with_client_id_is_accepted(
    authenticator: Authenticator, spelling: dict[str, str]
) -> None:
    extra = {"email": "u@example.com", "cognito:groups": ["admin", "operator"]}
    claims = access_claims(**{"custom:tenantId": None, **spelling, **extra})
    principal = await authenticator.authenticate(sign(claims))
    assert principal.subject == "user-1"
    assert principal.tenant_id == "t1"
    assert principal.app_id == "chat"
    assert principal.app_user_id == "u-42"
    assert principal.email == "u@example.com"
    assert principal.groups == ("admin", "operator")
    assert principal.via == "jwt:pool-a"
    assert principal.model_scope == ("*",)


@pytest.mark.parametrize("spelling", [CAMEL, SNAKE], ids=["camelCase", "snake_case"])
async def test_id_token_with_aud_is_accepted(
    authenticator: Authenticator, spelling: dict[str, str]
) -> None:
    claims = id_claims(**{"custom:tenantId": None, **spelling, "cognito:groups": ["x"]})
    principal = await authenticator.authenticate(sign(claims, "b1", kid="b1"))
    assert (principal.tenant_id, principal.app_id, principal.app_user_id) == ("t1", "chat", "u-42")
    assert principal.groups == ("x",)
    assert principal.email is None
    assert principal.via == "jwt:pool-b"


async def test_minimal_token_has_no_app_user_email_or_groups(
    authenticator: Authenticator,
) -> None:
    principal = await authenticator.authenticate(sign(access_claims()))
    assert principal.app_id is None
    assert principal.app_user_id is None
    assert principal.email is None
    assert principal.groups == ()


async def test_duplicate_kid_resolves_within_the_claimed_issuer(
    authenticator: Authenticator,
) -> None:
    """Positive controls for the duplicate-kid attack: ``dup`` is a1 in pool A and b1 in pool B."""
    a = await authenticator.authenticate(sign(access_claims(), "a1", kid="dup"))
    b = await authenticator.authenticate(sign(id_claims(), "b1", kid="dup"))
    assert (a.via, b.via) == ("jwt:pool-a", "jwt:pool-b")


async def test_first_claim_spelling_wins(authenticator: Authenticator) -> None:
    claims = access_claims(**{"custom:tenantId": "t1", "custom:tenant_id": "t2"})
    assert (await authenticator.authenticate(sign(claims))).tenant_id == "t1"
