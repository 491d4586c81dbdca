"""The answer's side of PHI handling: transducers per choice and per text field of a response.

Every text the model produces -- ``content``, ``refusal``, ``reasoning_content`` / ``reasoning``,
each tool call's ``arguments`` (by tool call ``index``), legacy ``function_call.arguments`` -- runs
through its own chain: the masker
(PHI the model generated and verbatim echoes of the conversation's originals -> placeholders),
then, for callers allowed to see PHI, the re-identifier (placeholders -> originals). A choice's
chains are flushed into a chunk of their own just before the chunk carrying its
``finish_reason``, and whatever is still open when the stream ends is flushed into a last chunk.

Fail closed: any event shape this module does not know to be free of model text -- an unknown key
holding a string, list or object, ``logprobs``, a non-string text field -- raises
``RedactionFailed`` instead of passing through.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from gateway.errors import RedactionFailed
from gateway.phi.transducer import Transducer
from gateway.wire import Chunk, JSONObject, Payload, WireError

#: Text fields of a delta or message: ``reasoning_content`` (DeepSeek, vLLM, LiteLLM) and
#: ``reasoning`` (newer vLLM) carry a reasoning model's thinking, as text like any other.
_TEXT: Final = ("content", "refusal", "reasoning_content", "reasoning")
#: Top-level chunk keys that carry no model text (their values pass unchanged).
_TOP: Final = frozenset(
    {"id", "object", "created", "model", "system_fingerprint", "usage", "service_tier",
     "obfuscation", "choices"}
)  # fmt: skip
#: Choice keys that carry no model text (``stop_reason``: vLLM's matched stop, from the request).
_CHOICE: Final = frozenset({"index", "finish_reason", "stop_reason", "delta", "message"})
_CALL: Final = frozenset({"index", "id", "type"})
_Field = tuple[int, str, int]
"""(choice index, field name, tool call index or -1)."""


class Chain:
    """Masker, then (for callers allowed to see PHI) re-identifier, as one transducer."""

    __slots__ = ("_first", "_second")

    def __init__(self, first: Transducer, second: Transducer | None) -> None:
        self._first = first
        self._second = second

    def feed(self, text: str) -> str:
        """Feed both stages."""
        out = self._first.feed(text)
        return out if self._second is None else self._second.feed(out)

    @property
    def held(self) -> int:
        """Characters held back by both stages."""
        first = getattr(self._first, "held", 0)
        return first + (0 if self._second is None else getattr(self._second, "held", 0))

    def flush(self) -> str:
        """Flush both stages, in order."""
        out = self._first.flush()
        if self._second is None:
            return out
        return self._second.feed(out) + self._second.flush()


def _refuse(what: str) -> RedactionFailed:
    return RedactionFailed(f"PHI handling cannot inspect this upstream output ({what}); refused")


def _is_empty(value: object) -> bool:
    """No text anywhere inside: null, numbers, booleans, and lists or objects of those (LiteLLM
    sends ``"provider_specific_fields": {"refusal": null}``)."""
    if value is None or isinstance(value, bool | int | float):
        return True
    if isinstance(value, list):
        return all(_is_empty(v) for v in value)
    if isinstance(value, dict):
        return all(_is_empty(v) for v in value.values())
    return False


def _text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise _refuse(f"{where} is not a string")
    return value


class OutputTransformer:
    """Transforms the chunks of one stream (or one non-streamed completion)."""

    def __init__(self, make_chain: Callable[[], Chain]) -> None:
        self._make = make_chain
        self._open: dict[_Field, Chain] = {}
        self._last: JSONObject = {}
        """The last chunk seen (its identity fields head the flush chunks)."""

    @property
    def held(self) -> int:
        """Characters held back over every open field (for the bench)."""
        return sum(chain.held for chain in self._open.values())

    def _feed(self, key: _Field, text: str) -> str:
        chain = self._open.get(key)
        if chain is None:
            chain = self._open[key] = self._make()
        return chain.feed(text)

    # --- streams ---------------------------------------------------------------------------

    def batch(self, batch: list[Chunk]) -> list[Chunk]:
        """The transformed batch (flush chunks inserted before finish chunks).

        Raises:
            RedactionFailed: an unknown shape, or the transducers failed.
        """
        out: list[Chunk] = []
        for chunk in batch:
            self._chunk(chunk, out)
        return out

    def finish(self) -> list[Chunk]:
        """A last chunk with everything still held (the stream ended without finish reasons)."""
        choices = sorted({key[0] for key in self._open})
        flushed = [{"index": i, "delta": self._flush_choice(i), "finish_reason": None}
                   for i in choices]  # fmt: skip
        flushed = [c for c in flushed if c["delta"]]
        if not flushed:
            return []
        return [Payload(obj={**self._top(), "choices": flushed})]

    def _top(self) -> JSONObject:
        last = self._last
        return {k: last[k] for k in ("id", "object", "created", "model") if k in last}

    def _chunk(self, chunk: Chunk, out: list[Chunk]) -> None:
        try:
            obj = chunk.obj
        except WireError as exc:
            raise _refuse("not a JSON object") from exc
        for key, value in obj.items():
            if key not in _TOP and not _is_empty(value):
                raise _refuse(f"unknown chunk field {key!r}")
        self._last = obj
        choices = obj.get("choices")
        if choices is None:
            out.append(chunk)
            return
        if not isinstance(choices, list):
            raise _refuse("choices is not a list")
        for choice in choices:
            index, delta, finish = self._choice(choice, "delta")
            new = self._delta(index, delta)
            if finish is not None:
                _merge(new, self._flush_choice(index))
                texts = {k: v for k, v in new.items() if k != "role"}
                if texts:  # the held-back tail goes out before the finish chunk
                    flush = {"index": index, "delta": texts, "finish_reason": None}
                    out.append(Payload(obj={**self._top(), "choices": [flush]}))
                new = {k: v for k, v in new.items() if k == "role"}
            choice["delta"] = new  # the parsed chunk is this transformer's own
        chunk.replace(obj)
        out.append(chunk)

    @staticmethod
    def _choice(choice: object, body_key: str) -> tuple[int, dict[str, Any], object]:
        if not isinstance(choice, dict):
            raise _refuse("a choice is not an object")
        index = choice.get("index", 0)
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise _refuse("a choice has no valid index")
        for key, value in choice.items():
            if key not in _CHOICE and not _is_empty(value):
                raise _refuse(f"unknown choice field {key!r}")
        body = choice.get(body_key) or {}
        if not isinstance(body, dict):
            raise _refuse(f"{body_key} is not an object")
        return index, body, choice.get("finish_reason")

    def _delta(self, index: int, delta: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in delta.items():
            if key in _TEXT and value is not None:
                out[key] = self._feed((index, key, -1), _text(value, key))
            elif key == "tool_calls" and value is not None:
                if not isinstance(value, list):
                    raise _refuse("tool_calls is not a list")
                out[key] = [self._call(index, call, i) for i, call in enumerate(value)]
            elif key == "function_call" and value is not None:
                out[key] = self._function(index, value, -2)
            elif key == "role" or _is_empty(value):
                out[key] = value
            else:
                raise _refuse(f"unknown delta field {key!r}")
        return out

    def _call(self, index: int, call: object, position: int) -> dict[str, Any]:
        if not isinstance(call, dict):
            raise _refuse("a tool call is not an object")
        number = call.get("index", position)  # a completion's message lists calls without index
        if not isinstance(number, int) or isinstance(number, bool) or number < 0:
            raise _refuse("a tool call has no valid index")
        out: dict[str, Any] = {}
        for key, value in call.items():
            if key == "function" and value is not None:
                out[key] = self._function(index, value, number)
            elif key in _CALL or _is_empty(value):
                out[key] = value
            else:
                raise _refuse(f"unknown tool call field {key!r}")
        return out

    def _function(self, index: int, fn: object, number: int) -> dict[str, Any]:
        if not isinstance(fn, dict):
            raise _refuse("a function call is not an object")
        out: dict[str, Any] = {}
        for key, value in fn.items():
            if key == "arguments" and value is not None:
                out[key] = self._feed((index, "arguments", number), _text(value, "arguments"))
            elif key == "name" or _is_empty(value):
                out[key] = value
            else:
                raise _refuse(f"unknown function field {key!r}")
        return out

    def _flush_choice(self, index: int) -> dict[str, Any]:
        """Flush and close every open field of choice ``index`` into a delta."""
        delta: dict[str, Any] = {}
        for key in sorted(k for k in self._open if k[0] == index):
            text = self._open.pop(key).flush()
            _, name, number = key
            if name in _TEXT:
                delta[name] = text
            elif number == -2:
                delta["function_call"] = {"arguments": text}
            else:
                delta.setdefault("tool_calls", []).append(
                    {"index": number, "function": {"arguments": text}}
                )
        return delta

    # --- non-streamed completions ----------------------------------------------------------

    def completion(self, payload: Payload) -> None:
        """Transform a ``chat.completion`` in place (each text as a whole).

        Raises:
            RedactionFailed: an unknown shape, or the transducers failed.
        """
        obj = payload.obj
        for key, value in obj.items():
            if key not in _TOP and not _is_empty(value):
                raise _refuse(f"unknown completion field {key!r}")
        choices = obj.get("choices")
        if not isinstance(choices, list):
            raise _refuse("choices is not a list")
        changed = []
        for choice in choices:
            index, message, _ = self._choice(choice, "message")
            new = self._delta(index, message)
            _merge(new, self._flush_choice(index))
            changed.append({**choice, "message": new})
        obj["choices"] = changed
        payload.replace(obj)


def _merge(delta: dict[str, Any], flushed: dict[str, Any]) -> None:
    """Append flushed text to the same fields of ``delta`` (tool calls by index)."""
    for key, value in flushed.items():
        if key in _TEXT:
            delta[key] = (delta.get(key) or "") + value
        elif key == "function_call":
            fn = delta.setdefault("function_call", {})
            fn["arguments"] = (fn.get("arguments") or "") + value["arguments"]
        else:
            calls = delta.setdefault("tool_calls", [])
            by_index = {c.get("index", i): c for i, c in enumerate(calls)}
            for piece in value:
                call = by_index.get(piece["index"])
                if call is None:
                    calls.append(piece)
                    continue
                fn = call.setdefault("function", {})
                fn["arguments"] = (fn.get("arguments") or "") + piece["function"]["arguments"]
