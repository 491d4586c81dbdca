"""``phi.vault_key``: base64 of 32 bytes is the AES key; longer key material is derived (HKDF)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string

import pytest

from gateway.config import load_config
from gateway.config.phi import MIN_KEY_MATERIAL_CHARS, vault_key_bytes
from gateway.errors import ConfigError, RedactionFailed
from gateway.phi.vault import Sealer

REDIS_VAULT = """
[auth.dev_issuer]
enabled = true

[upstreams.u]
base_url = "http://127.0.0.1:4000"

[models.m]
upstream = "u"
target = "m"

[phi]
vault = "redis"
redis_url = "rediss://127.0.0.1:6380/0"
"""
ALPHANUMERIC = string.ascii_letters + string.digits


def _generated(length: int = 48) -> str:
    """Like Secrets Manager's generator with ``exclude_punctuation``: letters and digits."""
    return "".join(secrets.choice(ALPHANUMERIC) for _ in range(length))


def _rfc5869(material: bytes, info: bytes) -> bytes:
    """HKDF-SHA256 per RFC 5869, written out with hmac: no salt = 32 zero bytes; one block."""
    prk = hmac.new(bytes(32), material, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def _key(env_value: str) -> bytes | None:
    config = load_config(REDIS_VAULT, {"GATEWAY__PHI__VAULT_KEY": env_value})
    return config.phi.key_bytes


def test_base64_of_32_bytes_is_the_key_itself() -> None:
    raw = secrets.token_bytes(32)
    assert _key(base64.b64encode(raw).decode()) == raw


def test_generated_material_derives_the_rfc_5869_key() -> None:
    material = _generated()
    key = _key(material)
    assert key is not None
    assert len(key) == 32
    assert key == _rfc5869(material.encode(), b"phi-gateway vault key v1")
    assert key != material.encode()[:32]


def test_derivation_is_deterministic_and_differs_per_material() -> None:
    material = _generated()
    assert vault_key_bytes(material) == vault_key_bytes(material)
    other = material[:-1] + ("A" if material[-1] != "A" else "B")
    assert vault_key_bytes(other) != vault_key_bytes(material)
    # Another process derives the same key: what one seals, the other opens.
    one, two = Sealer(_key(material) or b""), Sealer(_key(material) or b"")
    assert two.open("t", "c", "[NAME_1]", one.seal("t", "c", "[NAME_1]", "Ada")) == "Ada"
    with pytest.raises(RedactionFailed):
        Sealer(_key(other) or b"").open("t", "c", "[NAME_1]", one.seal("t", "c", "[NAME_1]", "Ada"))


def test_material_of_40_characters_is_enough_and_39_is_not() -> None:
    assert MIN_KEY_MATERIAL_CHARS == 40
    assert vault_key_bytes(_generated(40)) is not None
    assert vault_key_bytes(_generated(39)) is None


@pytest.mark.parametrize(
    "value",
    [
        "c2hvcnQ=",  # base64 of 5 bytes
        base64.b64encode(bytes(16)).decode(),  # base64 of 16 bytes, 24 characters
        "correct horse battery staple",
    ],
)
def test_short_keys_are_refused_with_both_forms_named(value: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(REDIS_VAULT, {"GATEWAY__PHI__VAULT_KEY": value})
    problems = "\n".join(err.value.problems)
    assert "phi.vault_key: must be 32 bytes, base64-encoded, or key material of at least 40" in (
        problems
    )


def test_long_base64_of_other_lengths_is_material_not_a_raw_key() -> None:
    """Base64 of 48 bytes (64 characters) is not an AES-256 key: it is derived like any text."""
    text = base64.b64encode(secrets.token_bytes(48)).decode()
    key = vault_key_bytes(text)
    assert key == _rfc5869(text.encode(), b"phi-gateway vault key v1")
