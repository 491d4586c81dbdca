"""The configuration of PHI handling: the per-tenant policy, its per-app overrides, the vault.

A tenant's policy (``[tenants.<t>.phi]``) says whether PHI handling is on (``auto``), on when the
request asks (``manual``: ``enable_phi`` / ``phi_categories`` body fields) or off (``disabled``);
which categories are redacted; whether, and for which groups, placeholders in the answer are turned
back into the originals; and how long a conversation's placeholders live in the vault. An app
(``[apps.<a>.phi]``) overrides any of these for requests of that app. ``[phi]`` configures the
vault and the redaction limits shared by every tenant.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.config.secret import Secret

PhiMode = Literal["auto", "manual", "disabled"]
VaultKind = Literal["memory", "redis"]

#: Every category the detectors know (``gateway.phi.categories.Category``; a test keeps them equal).
CATEGORY_NAMES: Final = (
    "NAME", "ADDRESS", "LOCATION", "DOB", "DATE", "AGE_OVER_89", "PHONE", "FAX", "EMAIL", "SSN",
    "MEDICAL_RECORD", "INSURANCE_ID", "ACCOUNT", "LICENSE", "VEHICLE", "DEVICE", "URL",
    "IP_ADDRESS", "ID", "DIAGNOSIS", "TREATMENT",
)  # fmt: skip
#: Clinical content, not Safe Harbor identifiers: redacted only when a policy names them.
OPT_IN_CATEGORIES: Final = ("DIAGNOSIS", "TREATMENT")
DEFAULT_CATEGORY_NAMES: Final = tuple(c for c in CATEGORY_NAMES if c not in OPT_IN_CATEGORIES)
EVERYONE: Final = "*"
DAY_S: Final = 86_400.0
VAULT_KEY_BYTES: Final = 32
MIN_KEY_MATERIAL_CHARS: Final = 40
"""Shortest ``vault_key`` that is not base64 of 32 bytes: 40 random alphanumeric characters (as
Secrets Manager's generator makes them) carry about 238 bits, close to the 256 of the AES key."""
VAULT_KEY_INFO: Final = b"phi-gateway vault key v1"
"""HKDF ``info`` of the derived key: changing it changes every derived key (a new version)."""


def check_categories(names: tuple[str, ...], where: str) -> Iterator[str]:
    """Unknown category names, and an empty list (nothing would be redacted)."""
    if not names:
        yield f"{where}: name at least one category"
    for name in names:
        if name not in CATEGORY_NAMES:
            yield f"{where}: unknown category {name!r} (known: {', '.join(CATEGORY_NAMES)})"


@dataclass(frozen=True, slots=True, kw_only=True)
class PhiPolicyConfig:
    """A tenant's PHI policy (`[tenants.<t>.phi]`)."""

    mode: PhiMode = "manual"
    """`auto`: every request is redacted; `manual`: requests opt in with `enable_phi: true` (or
    `phi_categories`); `disabled`: no PHI handling, and requests asking for it get 400."""
    categories: tuple[str, ...] = DEFAULT_CATEGORY_NAMES
    """Categories redacted in prompts and masked in answers; default every Safe Harbor category
    (DIAGNOSIS and TREATMENT are off unless listed). A request's `phi_categories` can add to this
    list, never remove from it."""
    reidentify: bool = False
    """Turn placeholders in answers back into the originals for members of `reidentify_groups`."""
    reidentify_groups: tuple[str, ...] = ()
    """Groups (`cognito:groups`) who see re-identified answers; `*` = every caller of the tenant.
    Everyone else gets placeholders."""
    vault_ttl_s: float = DAY_S
    """How long a conversation's placeholders stay in the vault after its last request."""
    zip3: bool = False
    """ZIP codes go upstream (and into answers) as their Safe Harbor three-digit form, `627XX`
    (`000XX` for the restricted prefixes), instead of a placeholder; never re-identified."""

    def check(self, where: str) -> Iterator[str]:
        """Problems beyond the field types."""
        yield from check_categories(self.categories, f"{where}.categories")
        yield from _check_reidentify(self.reidentify, self.reidentify_groups, where)
        yield from _check_ttl(self.vault_ttl_s, where)


@dataclass(frozen=True, slots=True, kw_only=True)
class PhiOverrideConfig:
    """An app's overrides of its tenants' PHI policies (`[apps.<a>.phi]`); unset keys inherit."""

    mode: PhiMode | None = None
    """Overrides the tenant's `mode` for requests of this app."""
    categories: tuple[str, ...] | None = None
    """Replaces the tenant's `categories` for requests of this app."""
    reidentify: bool | None = None
    """Overrides the tenant's `reidentify`."""
    reidentify_groups: tuple[str, ...] | None = None
    """Replaces the tenant's `reidentify_groups`."""
    vault_ttl_s: float | None = None
    """Overrides the tenant's `vault_ttl_s`."""
    zip3: bool | None = None
    """Overrides the tenant's `zip3`."""

    def check(self, where: str) -> Iterator[str]:
        """Problems beyond the field types."""
        if self.categories is not None:
            yield from check_categories(self.categories, f"{where}.categories")
        if self.reidentify and self.reidentify_groups is not None:
            yield from _check_reidentify(True, self.reidentify_groups, where)
        if self.vault_ttl_s is not None:
            yield from _check_ttl(self.vault_ttl_s, where)

    def apply(self, policy: PhiPolicyConfig) -> PhiPolicyConfig:
        """``policy`` with these overrides."""
        return PhiPolicyConfig(
            mode=policy.mode if self.mode is None else self.mode,
            categories=policy.categories if self.categories is None else self.categories,
            reidentify=policy.reidentify if self.reidentify is None else self.reidentify,
            reidentify_groups=(
                policy.reidentify_groups
                if self.reidentify_groups is None
                else self.reidentify_groups
            ),
            vault_ttl_s=policy.vault_ttl_s if self.vault_ttl_s is None else self.vault_ttl_s,
            zip3=policy.zip3 if self.zip3 is None else self.zip3,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PhiConfig:
    """The PHI vault and redaction limits (`[phi]`), shared by every tenant."""

    vault: VaultKind = "memory"
    """`memory` (one process; the embedded default) or `redis` (shared by every worker and
    replica, so a conversation continues on any of them)."""
    redis_url: Secret | None = None
    """Redis URL for `vault = "redis"`, e.g. rediss://host:6380/0 (set it via the environment)."""
    redis_password: Secret | None = None
    """Password Redis checks at connection (AUTH, e.g. an ElastiCache auth token), so the URL
    carries no secret; only with `vault = "redis"` and a URL without a password of its own."""
    key_prefix: str = "gw:phi:"
    """Prefix of the vault's Redis keys."""
    timeout_ms: float = 250.0
    """Longest wait for one vault call; then the request fails closed (500)."""
    vault_key: Secret | None = None
    """AES-256-GCM key of the vault (set it via the environment): 32 bytes, base64 (`gateway
    phi-key` makes one), used as is; or any other key material of at least 40 characters (e.g. a
    random string from Secrets Manager's generator), from which HKDF-SHA256 derives the key (no
    salt, info `phi-gateway vault key v1`). Unset: a random key per process, so placeholders of
    one process cannot be re-identified by another, and `vault = "redis"` or several workers are
    refused."""
    max_input_bytes: int = 1_048_576
    """Largest prompt text (JSON of the messages) redacted; larger requests with PHI handling on
    get 413."""
    inline_bytes: int = 8_192
    """Prompts up to this size are redacted on the event loop (about 5 ms at the measured
    1.5-2 MB/s); larger ones in a worker thread."""

    @property
    def key_bytes(self) -> bytes | None:
        """The vault's AES key, if configured and valid (see ``vault_key_bytes``)."""
        return None if self.vault_key is None else vault_key_bytes(self.vault_key.reveal())

    def check(self, where: str) -> Iterator[str]:
        """Problems beyond the field types."""
        if self.vault == "redis":
            url = self.redis_url.reveal() if self.redis_url is not None else ""
            if not url.startswith(("redis://", "rediss://", "unix://")):
                yield f"{where}.redis_url: vault 'redis' needs a redis://, rediss:// or unix:// URL"
            if self.vault_key is None:
                yield f"{where}.vault_key: vault 'redis' is shared, so it needs a configured key"
            if self.redis_password is not None and _url_password(url):
                yield f"{where}.redis_password: the redis_url carries a password too; keep one"
        elif self.redis_password is not None:
            yield f"{where}.redis_password: only used with vault = 'redis'"
        if self.vault_key is not None and self.key_bytes is None:
            yield (
                f"{where}.vault_key: must be 32 bytes, base64-encoded, or key material of at "
                f"least {MIN_KEY_MATERIAL_CHARS} characters"
            )
        if not 1 <= self.timeout_ms <= 10_000:
            yield f"{where}.timeout_ms: must be between 1 and 10000"
        if self.max_input_bytes < 1024:
            yield f"{where}.max_input_bytes: must be at least 1024"
        if self.inline_bytes < 0:
            yield f"{where}.inline_bytes: must be >= 0"


def vault_key_bytes(material: str) -> bytes | None:
    """The 32-byte AES key of ``phi.vault_key``: base64 of exactly 32 bytes is the key itself;
    other material of at least ``MIN_KEY_MATERIAL_CHARS`` characters goes through HKDF-SHA256
    (no salt: the material is already uniformly random, and every process must derive the same
    key); anything shorter is refused (None)."""
    try:
        key = base64.b64decode(material, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) == VAULT_KEY_BYTES:
        return key
    if len(material) < MIN_KEY_MATERIAL_CHARS:
        return None
    hkdf = HKDF(algorithm=SHA256(), length=VAULT_KEY_BYTES, salt=None, info=VAULT_KEY_INFO)
    return hkdf.derive(material.encode())


def _url_password(url: str) -> bool:
    try:
        return bool(urlsplit(url).password)
    except ValueError:
        return False


def _check_reidentify(reidentify: bool, groups: tuple[str, ...], where: str) -> Iterator[str]:
    if reidentify and not groups:
        yield f"{where}.reidentify_groups: name the groups who may see PHI (or '*' for everyone)"


def _check_ttl(ttl_s: float, where: str) -> Iterator[str]:
    if not 60 <= ttl_s <= 30 * DAY_S:
        yield f"{where}.vault_ttl_s: must be between 60 and 2592000 (30 days)"
