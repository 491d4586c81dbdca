"""Sans-io decoding of SageMaker container output into OpenAI chunks and completions.

``StreamDecoder.feed(payload_part_bytes)`` returns the ``chat.completion.chunk`` payloads the bytes
complete; ``finish()`` is called at the end of the event stream. Invariants:

- PayloadPart boundaries are arbitrary byte cuts: bytes are buffered and split on line (jsonlines)
  or event (SSE) boundaries before any JSON or UTF-8 decoding, with the buffer bounded by
  ``max_event_bytes`` (``UpstreamProtocolError`` past it).
- Whatever the dialect, output chunks carry one ``id``, ``role: assistant`` on the first delta,
  OpenAI ``finish_reason`` values only (``eos_token``/``stop_sequence`` -> ``stop``, unknown ->
  ``stop``), then -- only if the client asked with ``stream_options.include_usage`` -- one
  usage chunk with ``choices: []``. Usage is the container's own count when it reports one; else
  generated tokens are counted from the stream (one per token event or content chunk), the prompt
  is estimated at four characters a token, and the usage object carries ``"estimated": true``.
- An in-band error (TGI/vLLM ``error`` event, LMI token ``id: -1``) raises a ``GatewayError``
  after the chunks before it were returned; output ending without the dialect's end marker is an
  ``UpstreamProtocolError`` (truncation is never reported as success).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import orjson

from gateway.config import SageMakerDialect
from gateway.errors import GatewayError, RateLimited, UpstreamError, UpstreamProtocolError
from gateway.sse import DONE_DATA, SSEDecoder, SSEProtocolError
from gateway.wire import Chunk, JSONObject, Payload, WireError, dumps, loads_object

OPENAI_FINISH: Final = frozenset(
    {"stop", "length", "tool_calls", "content_filter", "function_call"}
)
_FINISH_MAP: Final = {"eos_token": "stop", "stop_sequence": "stop", "max_tokens": "length"}


def finish_reason(value: object) -> str:
    """The OpenAI ``finish_reason`` for a container's value."""
    if isinstance(value, str):
        if value in OPENAI_FINISH:
            return value
        return _FINISH_MAP.get(value, "stop")
    return "stop"


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamSettings:
    """Per-request values the decoder stamps on chunks."""

    chunk_id: str
    created: int
    model: str
    include_usage: bool
    """The client asked for the usage chunk."""
    prompt_chars: int
    max_event_bytes: int = 1024 * 1024
    upstream: str = "sagemaker"


def estimate_tokens(chars: int) -> int:
    """A prompt's token count estimated from its length (about four characters a token)."""
    return max(1, (chars + 3) // 4)


class StreamDecoder:
    """Reassembles one container's output stream and emits OpenAI chunks (see module docstring)."""

    __slots__ = (
        "_completion_tokens", "_done", "_id", "_lines", "_model", "_native", "_prompt_tokens",
        "_role_sent", "_settings", "_sse", "_usage_exact",
    )  # fmt: skip

    def __init__(self, dialect: SageMakerDialect, settings: StreamSettings) -> None:
        self._settings = settings
        self._id = settings.chunk_id
        self._model = settings.model
        self._native = dialect in ("tgi", "lmi")
        # TGI and the OpenAI-wire containers speak SSE; LMI speaks jsonlines (an optional
        # ``data:`` prefix, from ``option.output_formatter=sse``, is accepted too).
        self._sse = None if dialect == "lmi" else SSEDecoder(settings.max_event_bytes)
        self._lines = b""
        self._done = False
        self._role_sent = False
        self._completion_tokens = 0
        self._prompt_tokens: int | None = None
        self._usage_exact = False

    @property
    def done(self) -> bool:
        """The container's end marker was seen; anything after it is ignored."""
        return self._done

    def feed(self, data: bytes) -> list[Chunk]:
        """Chunks completed by one payload part.

        Raises:
            StreamFailed: an in-band error, malformed output or an over-long event.
        """
        if self._done:
            return []
        out: list[Chunk] = []
        with self._failing(out):
            for record in self._records(data):
                self._record(record, out)  # ignores records after the end marker
        return out

    def finish(self) -> list[Chunk]:
        """End of the event stream: flush what is buffered.

        Raises:
            StreamFailed: the output ended before the dialect's end marker.
        """
        out: list[Chunk] = []
        if self.done:
            return out
        with self._failing(out):
            tail = [e.data for e in self._sse.flush()] if self._sse is not None else [self._lines]
            self._lines = b""
            for data in tail:
                if data.strip():
                    self._record(data, out)
        if not self._done:
            raise StreamFailed(
                out,
                UpstreamProtocolError(
                    f"upstream {self._settings.upstream!r} ended the stream before its end marker"
                ),
            )
        return out

    @contextlib.contextmanager
    def _failing(self, out: list[Chunk]) -> Iterator[None]:
        """Turn failures into ``StreamFailed`` carrying the chunks decoded before them."""
        try:
            yield
        except _InBandError as exc:
            raise StreamFailed(out, exc.error) from None
        except (SSEProtocolError, WireError) as exc:
            error = UpstreamProtocolError(
                f"upstream {self._settings.upstream!r} broke the protocol"
            )
            raise StreamFailed(out, error) from exc

    def _records(self, data: bytes) -> list[bytes]:
        if self._sse is not None:
            return [event.data for event in self._sse.feed(data)]
        buf = self._lines + data if self._lines else data
        lines = buf.split(b"\n")
        self._lines = lines.pop()
        if len(self._lines) > self._settings.max_event_bytes:
            raise SSEProtocolError("jsonlines line too long")
        return [line for line in lines if line.strip()]

    def _record(self, raw: bytes, out: list[Chunk]) -> None:
        if self._done:
            return
        if not self._native:
            self._openai_record(raw, out)
            return
        if raw.startswith(b"data:"):
            raw = raw[5:]
        obj = loads_object(raw)
        if obj.get("error"):
            raise _InBandError(_error_of(obj, self._settings.upstream))
        token = obj.get("token")
        details = obj.get("details")
        if isinstance(token, dict):
            if token.get("id") == -1:  # LMI: generation failed
                raise _InBandError(UpstreamError("the model failed during generation"))
            self._completion_tokens += 1
            text = token.get("text")
            if text and not token.get("special"):
                out.append(self._delta({"content": text}))
        if isinstance(details, dict) or obj.get("generated_text") is not None:
            details = details if isinstance(details, dict) else {}
            if details.get("finish_reason") == "error":
                raise _InBandError(UpstreamError("the model failed during generation"))
            self._native_usage(details)
            self._end(finish_reason(details.get("finish_reason")), out)

    def _native_usage(self, details: JSONObject) -> None:
        generated = details.get("generated_tokens")
        if isinstance(generated, int):
            self._completion_tokens = generated
        prompt = details.get("input_length", details.get("prompt_tokens"))
        if isinstance(prompt, int):
            self._prompt_tokens = prompt
            self._usage_exact = isinstance(generated, int)

    def _openai_record(self, raw: bytes, out: list[Chunk]) -> None:
        if raw == DONE_DATA:
            self._end(None, out)
            return
        chunk = Chunk(raw)
        obj = chunk.obj
        if obj.get("error") or obj.get("object") == "error":
            raise _InBandError(_error_of(obj, self._settings.upstream))
        usage = obj.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            self._completion_tokens = usage["completion_tokens"]
            self._prompt_tokens = usage.get("prompt_tokens")
            self._usage_exact = isinstance(self._prompt_tokens, int)
        choices = obj.get("choices")
        if not choices:
            return  # the usage-only chunk: re-emitted at the end if the client asked
        changed = _normalise_choices(choices)
        if usage is not None:
            obj["usage"] = None
            changed = True
        if not self._usage_exact and _has_content(choices):
            self._completion_tokens += 1
        if not self._role_sent:  # OpenAI-wire chunks keep the upstream's id; so does ours
            self._id = str(obj.get("id") or self._id)
            self._model = str(obj.get("model") or self._model)
        if b"\n" in raw or changed:
            chunk = Chunk(obj=obj)
        self._role_sent = True
        out.append(chunk)

    def _delta(self, delta: JSONObject, reason: str | None = None) -> Chunk:
        s = self._settings
        if not self._role_sent:
            delta = {"role": "assistant", **delta}
            self._role_sent = True
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
        obj = {
            "id": self._id, "object": "chat.completion.chunk", "created": s.created,
            "model": self._model, "choices": [choice],
        }  # fmt: skip
        return Chunk(dumps(obj), obj)

    def _end(self, reason: str | None, out: list[Chunk]) -> None:
        """The end marker: the finish chunk (native dialects) and the usage chunk if asked."""
        self._done = True
        if reason is not None:
            out.append(self._delta({}, reason))
        if self._settings.include_usage:
            obj = {
                "id": self._id, "object": "chat.completion.chunk",
                "created": self._settings.created, "model": self._model, "choices": [],
                "usage": self.usage(),
            }  # fmt: skip
            out.append(Chunk(dumps(obj), obj))

    def usage(self) -> JSONObject:
        """The request's usage so far (exact, or estimated and marked so)."""
        prompt = self._prompt_tokens
        exact = self._usage_exact and isinstance(prompt, int)
        if not isinstance(prompt, int):
            prompt = estimate_tokens(self._settings.prompt_chars)
        usage: JSONObject = {
            "prompt_tokens": prompt,
            "completion_tokens": self._completion_tokens,
            "total_tokens": prompt + self._completion_tokens,
        }
        if not exact:
            usage["estimated"] = True
        return usage


def _normalise_choices(choices: list[Any]) -> bool:
    """Map non-OpenAI ``finish_reason`` values in place; True if anything changed."""
    changed = False
    for choice in choices:
        reason = choice.get("finish_reason") if isinstance(choice, dict) else None
        if reason is not None and reason not in OPENAI_FINISH:
            choice["finish_reason"] = finish_reason(reason)
            changed = True
    return changed


def _has_content(choices: list[Any]) -> bool:
    for choice in choices:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict) and (delta.get("content") or delta.get("tool_calls")):
            return True
    return False


class _InBandError(Exception):
    def __init__(self, error: GatewayError) -> None:
        self.error = error


class StreamFailed(Exception):
    """Raised by ``feed``/``finish``: deliver ``chunks`` (output before the failure), then raise
    ``error``."""

    def __init__(self, chunks: list[Chunk], error: GatewayError) -> None:
        super().__init__(error.message)
        self.chunks = chunks
        self.error = error


def _error_of(obj: JSONObject, upstream: str) -> GatewayError:
    err = obj.get("error")
    status = obj.get("code") if isinstance(obj.get("code"), int) else None
    if isinstance(err, dict):
        status = err.get("http_status_code", err.get("code", status))
    if status == 429 or str(status) == "429":
        return RateLimited("the model is overloaded; retry later", retry_after_s=1.0)
    return UpstreamError(f"upstream {upstream!r} failed during the stream")


# --- non-streamed ----------------------------------------------------------------------------


def completion(dialect: SageMakerDialect, body: bytes, settings: StreamSettings) -> Payload:
    """A standard ``chat.completion`` from a container's non-streamed answer.

    Raises:
        UpstreamProtocolError: the answer is not what the dialect produces.
    """
    try:
        obj: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UpstreamProtocolError(
            f"upstream {settings.upstream!r} returned malformed JSON"
        ) from exc
    convert = _NON_STREAM[dialect in ("tgi", "lmi")]
    result = convert(obj, settings)
    if result is None:
        raise UpstreamProtocolError(f"upstream {settings.upstream!r} returned an unexpected body")
    return result


def _native_completion(obj: Any, settings: StreamSettings) -> Payload | None:
    if isinstance(obj, list) and obj:  # TGI on SageMaker, and LMI's TGI-compatible mode
        obj = obj[0]
    if not isinstance(obj, dict) or not isinstance(obj.get("generated_text"), str):
        return None
    details: JSONObject = obj["details"] if isinstance(obj.get("details"), dict) else {}
    if details.get("finish_reason") == "error":
        raise UpstreamError(f"upstream {settings.upstream!r} failed during generation")
    text: str = obj["generated_text"]
    generated = details.get("generated_tokens")
    prefill = details.get("prefill")
    prompt = details.get("input_length", details.get("prompt_tokens"))
    if not isinstance(prompt, int) and isinstance(prefill, list) and prefill:
        prompt = len(prefill)
    usage: JSONObject = {}
    if not (isinstance(generated, int) and isinstance(prompt, int)):
        usage["estimated"] = True
    prompt = prompt if isinstance(prompt, int) else estimate_tokens(settings.prompt_chars)
    generated = generated if isinstance(generated, int) else estimate_tokens(len(text))
    usage = {
        "prompt_tokens": prompt, "completion_tokens": generated,
        "total_tokens": prompt + generated, **usage,
    }  # fmt: skip
    message = {"role": "assistant", "content": text}
    choice = {
        "index": 0, "message": message, "logprobs": None,
        "finish_reason": finish_reason(details.get("finish_reason")),
    }  # fmt: skip
    return Payload(
        obj={
            "id": settings.chunk_id,
            "object": "chat.completion",
            "created": settings.created,
            "model": settings.model,
            "choices": [choice],
            "usage": usage,
        }
    )


def _openai_completion(obj: Any, settings: StreamSettings) -> Payload | None:
    if not isinstance(obj, dict) or not isinstance(obj.get("choices"), list):
        return None
    changed = _normalise_choices(obj["choices"])
    if not isinstance(obj.get("usage"), dict):
        text = "".join(
            str((c.get("message") or {}).get("content") or "")
            for c in obj["choices"]
            if isinstance(c, dict)
        )
        prompt, generated = estimate_tokens(settings.prompt_chars), estimate_tokens(len(text))
        obj["usage"] = {
            "prompt_tokens": prompt, "completion_tokens": generated,
            "total_tokens": prompt + generated, "estimated": True,
        }  # fmt: skip
        changed = True
    return Payload(obj=obj) if changed else Payload(dumps(obj), obj)


_NON_STREAM: Final[dict[bool, Callable[[Any, StreamSettings], Payload | None]]] = {
    True: _native_completion,
    False: _openai_completion,
}
