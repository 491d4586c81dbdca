"""OpenAI JSON on the wire: orjson codec, lazily parsed payloads, forwarded-field allow-lists.

``Payload`` keeps an upstream body or chunk as raw bytes and parses it only when a stage needs the
object, so the pass-through path (no PHI policy, no usage rewrite) never re-serialises JSON.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

JSONObject = dict[str, Any]

#: Chat completion fields forwarded upstream. Everything else is dropped, notably routing and
#: credential knobs that LiteLLM would obey (`api_base`, `base_url`, `api_key`, `api_version`,
#: `extra_headers`, `mock_response`, `metadata`) -- see CVE-2024-6587.
CHAT_FIELDS: Final = frozenset(
    {
        "model", "messages", "stream", "stream_options", "temperature", "top_p", "n", "stop",
        "max_tokens", "max_completion_tokens", "presence_penalty", "frequency_penalty",
        "logit_bias", "logprobs", "top_logprobs", "user", "tools", "tool_choice",
        "parallel_tool_calls", "response_format", "seed", "functions", "function_call",
        "reasoning_effort", "modalities", "prediction", "verbosity",
    }
)  # fmt: skip

#: Embedding fields forwarded upstream.
EMBEDDING_FIELDS: Final = frozenset({"model", "input", "encoding_format", "dimensions", "user"})


class WireError(ValueError):
    """Bytes that are not the JSON object expected."""


def dumps(obj: object) -> bytes:
    """Serialise to compact JSON bytes."""
    return orjson.dumps(obj)


def loads_object(raw: bytes) -> JSONObject:
    """Parse bytes that must hold a JSON object.

    Raises:
        WireError: not JSON, or not an object.
    """
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise WireError(f"invalid JSON: {exc.msg}") from exc
    if not isinstance(obj, dict):
        raise WireError("expected a JSON object")
    return obj


def pick(body: JSONObject, allowed: frozenset[str]) -> JSONObject:
    """The allow-listed fields of ``body`` (a new dict; ``body`` is not changed)."""
    return {k: v for k, v in body.items() if k in allowed}


class Payload:
    """A JSON object known by its raw bytes, its parsed form, or both."""

    __slots__ = ("_obj", "_raw")

    def __init__(self, raw: bytes | None = None, obj: JSONObject | None = None) -> None:
        if raw is None and obj is None:
            raise ValueError("a payload needs raw bytes or an object")
        self._raw = raw
        self._obj = obj

    @property
    def raw(self) -> bytes:
        """The JSON bytes (serialised on first use if the payload was built from an object)."""
        if self._raw is None:
            self._raw = orjson.dumps(self._obj)
        return self._raw

    @property
    def obj(self) -> JSONObject:
        """The parsed object (parsed on first use).

        Raises:
            WireError: the raw bytes are not a JSON object.
        """
        obj = self._obj
        if obj is None:
            obj = self._obj = loads_object(self._raw or b"")
        return obj

    def replace(self, obj: JSONObject) -> None:
        """Swap in a changed object; the raw bytes are re-serialised when next needed."""
        self._obj = obj
        self._raw = None


#: A `chat.completion.chunk` event of a stream.
Chunk = Payload
