"""The PHI stage of the pipeline: ``Privacy`` (one per worker) and ``PhiSession`` (one per request).

``Privacy.begin`` decides from the policy whether PHI handling is on (None: the request takes the
untouched fast path) and refuses non-HIPAA models. A session then

1. ``redact``: loads the conversation's placeholders from the vault (explicit conversation ids
   only; without one the request is its own conversation and never touches the vault), redacts
   the body (on the event loop up to ``phi.inline_bytes``, in a worker thread above, 413 above
   ``phi.max_input_bytes``), stores the newly issued placeholders, and only then returns the body
   that may go upstream;
2. ``stream`` / ``completion``: runs the answer through ``OutputTransformer``.

Detectors are built once per category set per process (``detector_for``; ~80 ms each plus a
warm-up), for every configured policy at start-up. Logs carry counts per category, never values.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from collections.abc import AsyncIterator
from typing import Final

import orjson

from gateway.config import GatewayConfig, ModelConfig
from gateway.context import ChatRequest, Principal, RequestContext
from gateway.errors import InvalidRequest, PayloadTooLarge, PermissionDenied, RedactionFailed
from gateway.phi.categories import Category
from gateway.phi.detectors import Detector
from gateway.phi.redactor import PLACEHOLDER_RE, PlaceholderBook, Redaction, redact_chat
from gateway.phi.transducer import Echoes, Masker, Reidentifier
from gateway.phi.vault import MemoryVault, Sealer, Vault
from gateway.phi.warmup import warm_up
from gateway.privacy.output import Chain, OutputTransformer
from gateway.privacy.policy import PhiPlan, PhiPolicies, refuse_unmaskable
from gateway.wire import Chunk, JSONObject, Payload

CONVERSATION_RESPONSE_HEADER: Final = "x-conversation-id"
_log = logging.getLogger("gateway.phi")


_MAX_DETECTORS: Final = 32
_detectors: dict[frozenset[str], Detector] = {}
"""Built detectors by category set (process-wide: immutable and shared between threads)."""


def detector_for(categories: frozenset[str]) -> Detector:
    """The detector of a category set, built and warmed up on first use (~0.2 s: call it in a
    worker thread, or at start-up)."""
    detector = _detectors.get(categories)
    if detector is None:
        detector = Detector(Category(c) for c in categories)
        warm_up(detector)
        if len(_detectors) >= _MAX_DETECTORS:
            _detectors.pop(next(iter(_detectors)))
        _detectors[categories] = detector
    return detector


async def detector(categories: frozenset[str]) -> Detector:
    """The detector of a category set; built in a worker thread if new."""
    built = _detectors.get(categories)
    return built if built is not None else await asyncio.to_thread(detector_for, categories)


def open_vault(config: GatewayConfig) -> Vault:
    """The configured vault (an ephemeral key when none is configured: memory vault only)."""
    phi = config.phi
    key = phi.key_bytes
    if key is None:
        key = os.urandom(32)
        _log.warning("phi.vault_key is not set: using a random key for this process")
    sealer = Sealer(key)
    if phi.vault == "redis" and phi.redis_url is not None:
        from gateway.phi.redis_vault import RedisVault

        return RedisVault(
            phi.redis_url.reveal(),
            sealer,
            key_prefix=phi.key_prefix,
            timeout_s=phi.timeout_ms / 1000,
            password=None if phi.redis_password is None else phi.redis_password.reveal(),
        )
    return MemoryVault(sealer)


class Privacy:
    """One worker's PHI stage: policies, detectors and the vault."""

    def __init__(self, config: GatewayConfig, vault: Vault | None = None) -> None:
        self._config = config.phi
        self.policies = PhiPolicies(config)
        self.vault = vault if vault is not None else open_vault(config)
        workers = config.server.workers or os.cpu_count() or 1
        self._shared = config.phi.vault == "redis" or workers == 1
        """Conversations can continue on any worker (else explicit conversation ids get 400)."""

    async def start(self) -> None:
        """Open the vault; build and warm up the detector of every configured policy."""
        await self.vault.start()
        sets = {
            frozenset(p.categories) for p in self.policies.all_policies() if p.mode != "disabled"
        }
        for categories in sets:
            await asyncio.to_thread(detector_for, categories)

    async def aclose(self) -> None:
        """Close the vault."""
        await self.vault.aclose()

    async def begin(
        self, ctx: RequestContext, request: ChatRequest, model: ModelConfig
    ) -> PhiSession | None:
        """The request's PHI session, or None when PHI handling is off for it.

        Raises:
            InvalidRequest: PHI fields where PHI handling is disabled, or a conversation id
                without a shared vault.
            PermissionDenied: the model is not HIPAA-eligible.
        """
        if ctx.principal is None:  # pragma: no cover - the auth middleware runs first
            raise RedactionFailed("no caller")
        plan = self.policies.plan(ctx.principal, request.phi, model, request.model)
        if plan is None:
            return None
        if plan.conversation_id is not None and not self._shared:
            raise InvalidRequest(
                "conversation ids need the shared PHI vault (phi.vault = 'redis') or a single "
                "worker",
                param="conversation_id",
            )
        refuse_unmaskable(request.body)
        return PhiSession(self, ctx, plan, await detector(plan.categories))

    def guard_embedding(self, principal: Principal, model: ModelConfig, alias: str) -> None:
        """Embedding inputs are not redacted (placeholders would change the vectors): for a
        tenant in ``auto`` mode they may only go to HIPAA-eligible models.

        Raises:
            PermissionDenied: PHI handling is always on and the model is not HIPAA-eligible.
        """
        policy = self.policies.policy(principal.tenant_id, principal.app_id)
        if policy is not None and policy.mode == "auto" and not model.hipaa_eligible:
            raise PermissionDenied(
                f"The model '{alias}' is not HIPAA-eligible; your tenant handles PHI on every "
                "request, so only HIPAA-eligible models may be used.",
                param="model",
                code="model_not_hipaa_eligible",
            )

    @property
    def limits(self) -> tuple[int, int]:
        """(max_input_bytes, inline_bytes)."""
        return self._config.max_input_bytes, self._config.inline_bytes


class PhiSession:
    """PHI handling of one request."""

    def __init__(
        self, privacy: Privacy, ctx: RequestContext, plan: PhiPlan, detector: Detector
    ) -> None:
        self._privacy = privacy
        self._ctx = ctx
        self._plan = plan
        self._detector = detector
        self._book = PlaceholderBook(zip3=plan.zip3)
        tenant = ctx.principal.tenant_id if ctx.principal is not None else ""
        self._tenant = tenant
        self._conversation = plan.conversation_id or ctx.request_id

    async def redact(self, body: JSONObject) -> JSONObject:
        """The body to send upstream: PHI replaced by placeholders, vault updated first.

        Raises:
            PayloadTooLarge: the prompt is larger than ``phi.max_input_bytes``.
            RedactionFailed: detection or the vault failed; nothing may be sent.
        """
        detector = self._detector
        size = len(orjson.dumps(body.get("messages")))
        max_bytes, inline_bytes = self._privacy.limits
        if size > max_bytes:
            raise PayloadTooLarge(
                f"prompts with PHI handling are limited to {max_bytes} bytes", param="messages"
            )
        vault = self._privacy.vault
        known: dict[str, str] = {}
        if self._plan.conversation_id is not None:
            known = await vault.load(self._tenant, self._conversation)
        self._book = PlaceholderBook(known, zip3=self._plan.zip3)
        body = {k: v for k, v in body.items() if k != "user"}  # may be an email: not forwarded
        if size > inline_bytes:
            redaction = await asyncio.to_thread(redact_chat, body, detector, self._book)
        else:
            redaction = redact_chat(body, detector, self._book)
        issued = {p: v for p, v in redaction.originals.items() if p not in known}
        if self._plan.conversation_id is not None:
            await vault.save(self._tenant, self._conversation, issued, self._plan.ttl_s)
            self._ctx.response_headers[CONVERSATION_RESPONSE_HEADER] = self._conversation
        self._record(redaction, issued)
        return redaction.body

    def _record(self, redaction: Redaction, issued: dict[str, str]) -> None:
        counts: Counter[str] = Counter()
        for placeholder in issued:
            match = PLACEHOLDER_RE.fullmatch(placeholder)
            if match is not None:
                counts[match.group(1)] += 1
        notes = self._ctx.notes
        notes.conversation_id = self._conversation
        notes.phi_counts = dict(counts)
        _log.info(
            "phi redacted",
            extra={"fields": {"request_id": self._ctx.request_id, "phi_counts": dict(counts),
                              "placeholders": len(redaction.originals),
                              "reidentify": self._plan.reidentify}},
        )  # fmt: skip

    def transformer(self) -> OutputTransformer:
        """A transformer for this request's answer (one per stream or completion)."""
        detector = self._detector
        book = self._book.copy()  # generated PHI gets fresh numbers, never a vault value's
        originals = book.originals if self._plan.reidentify else None
        echoes = Echoes(book.originals)

        def make() -> Chain:
            masker = Masker(detector, book, reveal=originals, echoes=echoes)
            return Chain(masker, None if originals is None else Reidentifier(originals))

        return OutputTransformer(make)

    async def stream(self, chunks: AsyncIterator[list[Chunk]]) -> AsyncIterator[list[Chunk]]:
        """The answer's chunk batches, transformed (see ``OutputTransformer``).

        Raises:
            RedactionFailed: an unknown event shape or a transducer failure.
        """
        transformer = self.transformer()
        async for batch in chunks:
            yield transformer.batch(batch)
        tail = transformer.finish()
        if tail:
            yield tail

    def completion(self, payload: Payload) -> None:
        """Transform a non-streamed answer in place.

        Raises:
            RedactionFailed: an unknown shape or a transducer failure.
        """
        self.transformer().completion(payload)
