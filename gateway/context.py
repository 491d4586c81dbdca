"""Per-request values shared by the layers: the caller, the request context, the parsed requests."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from gateway.wire import JSONObject


def new_request_id() -> str:
    """A UUIDv7 string (time-ordered; the future ledger key), with a `req_` prefix like OpenAI's."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64
    value |= 0b10 << 62 | rand & 0x3FFF_FFFF_FFFF_FFFF
    h = f"{value:032x}"
    return f"req_{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """The authenticated caller, built from verified token claims or a service key only."""

    subject: str
    """``sub`` of the token, ``key:<name>`` for a service key, ``anonymous`` with auth off."""
    tenant_id: str
    app_id: str | None = None
    """The app the token or key is bound to."""
    app_user_id: str | None = None
    """The user's id inside the app."""
    email: str | None = None
    groups: tuple[str, ...] = ()
    via: str
    """How the caller authenticated: ``jwt:<issuer name>``, ``api_key:<name>`` or ``anonymous``."""
    model_scope: tuple[str, ...] = ("*",)
    """Model aliases a service key is limited to (``*`` = no limit of its own)."""


@dataclass(slots=True, kw_only=True)
class RequestNotes:
    """What the stages learn while serving a request, for the usage ledger (mutable)."""

    conversation_id: str | None = None
    """The conversation the request belongs to (the PHI vault's scope); set by the PHI stage."""
    phi_counts: dict[str, int] = field(default_factory=dict)
    """Placeholders issued per PHI category in this request: counts only, never values."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestContext:
    """What every stage may know about the request being served."""

    request_id: str
    started_at: float
    """Loop time when the request arrived."""
    principal: Principal | None = None
    """The caller; set by the auth middleware (None only on public routes)."""
    response_headers: dict[str, str] = field(default_factory=dict)
    """Headers stages add to the response (``x-ratelimit-*``); sent when it is prepared.
    Mutable, like ``notes``, and shared by the context's copies."""
    notes: RequestNotes = field(default_factory=RequestNotes)
    """Facts stages record for settlement (shared by the context's copies, like the headers)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PhiOptions:
    """What a chat request asks of PHI handling (gateway fields, never forwarded upstream)."""

    enable: bool | None = None
    """``enable_phi``: opt in (policy ``manual``); None when absent."""
    categories: tuple[str, ...] = ()
    """``phi_categories``: categories added to the policy's for this request (implies opt-in)."""
    conversation_id: str | None = None
    """``conversation_id`` body field or ``X-Conversation-Id`` header: the vault scope."""

    @property
    def requested(self) -> bool:
        """The request asks for PHI handling."""
        return bool(self.enable) or bool(self.categories)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatRequest:
    """A validated chat completion request."""

    model: str
    """The alias the client asked for."""
    stream: bool
    body: JSONObject
    """The allow-listed OpenAI body as received (``model`` is still the alias)."""
    phi: PhiOptions = field(default_factory=PhiOptions)


@dataclass(frozen=True, slots=True, kw_only=True)
class EmbeddingRequest:
    """A validated embeddings request."""

    model: str
    encoding_format: str
    """What the client wants back: ``float`` or ``base64``."""
    body: JSONObject
