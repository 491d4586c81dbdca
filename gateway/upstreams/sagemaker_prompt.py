"""Request bodies for SageMaker containers: OpenAI chat bodies as each dialect expects them.

Sans-io and pure. The native dialects (``tgi``, ``lmi``) take one prompt string, built here from the
chat messages with a built-in template chosen per model (never a user- or config-supplied Jinja
template: CVE-2024-2952 was an RCE through one); message text containing the template's control
markers is refused, so no caller can forge a system turn. What those containers cannot do is
refused with a 400 (``n > 1``, tools, structured output, non-text content) rather than silently
ignored. The OpenAI-wire dialects (``messages``, ``vllm``) get the allow-listed body as is, with
usage always requested on streams (the pipeline meters from it; the client sees it if it asked).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from gateway.config import ChatTemplate, SageMakerModelConfig
from gateway.errors import InvalidRequest
from gateway.wire import JSONObject, dumps

#: Body fields the native dialects cannot honour: refused, not ignored.
_NATIVE_UNSUPPORTED: Final = ("tools", "functions", "tool_choice", "function_call")

Turn = tuple[str, str]
"""(role, text) with role one of system, user, assistant."""


@dataclass(frozen=True, slots=True)
class ContainerRequest:
    """What is sent to the container, and the size of the prompt for usage estimates."""

    body: bytes
    prompt_chars: int
    """Characters of prompt text (the rendered prompt, or the messages' text)."""


def request_body(body: JSONObject, sm: SageMakerModelConfig, *, stream: bool) -> ContainerRequest:
    """The request to send to the container.

    Raises:
        InvalidRequest: the request uses something the dialect cannot serve.
    """
    if sm.dialect in ("messages", "vllm"):
        out = {**body, "stream": stream}
        if stream:
            out["stream_options"] = {"include_usage": True}
        else:
            out.pop("stream_options", None)
        messages = body.get("messages") or ()
        chars = sum(len(str(m.get("content") or "")) for m in messages if isinstance(m, dict))
        return ContainerRequest(dumps(out), chars)
    template = sm.chat_template
    if template is None:  # config.check refuses this
        raise InvalidRequest("the model has no chat template configured")
    prompt = render_prompt(template, chat_turns(body.get("messages")))
    native = {"inputs": prompt, "parameters": _parameters(body, sm), "stream": stream}
    return ContainerRequest(dumps(native), len(prompt))


def _refuse_unsupported(body: JSONObject) -> None:
    for name in _NATIVE_UNSUPPORTED:
        if body.get(name):
            raise InvalidRequest(f"'{name}' is not supported by this model", param=name)
    if (body.get("n") or 1) != 1:
        raise InvalidRequest("only n = 1 is supported by this model", param="n")
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") not in (None, "text"):
        raise InvalidRequest(
            "response_format is not supported by this model", param="response_format"
        )


def _parameters(body: JSONObject, sm: SageMakerModelConfig) -> JSONObject:
    _refuse_unsupported(body)
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or sm.max_new_tokens
    params: JSONObject = {"max_new_tokens": max_tokens, "details": True}
    if sm.dialect == "tgi":
        params["return_full_text"] = False
    temperature = body.get("temperature")
    if isinstance(temperature, int | float) and temperature > 0:
        # TGI refuses temperature 0 ("must be strictly positive"): 0 means greedy decoding.
        params["temperature"] = temperature
        params["do_sample"] = True
    elif temperature is not None:
        params["do_sample"] = False
    top_p = body.get("top_p")
    if isinstance(top_p, int | float) and 0 < top_p < 1:
        params["top_p"] = top_p
    stop = body.get("stop")
    if stop:
        params["stop" if sm.dialect == "tgi" else "stop_sequences"] = (
            [stop] if isinstance(stop, str) else list(stop)
        )
    if body.get("seed") is not None:
        params["seed"] = body["seed"]
    return params


def chat_turns(messages: object) -> list[Turn]:
    """The messages as (role, text) turns; ``developer`` counts as ``system``.

    Raises:
        InvalidRequest: a role or content part the native dialects cannot express.
    """
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array", param="messages")
    turns: list[Turn] = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role == "developer":
            role = "system"
        if role not in ("system", "user", "assistant"):
            raise InvalidRequest(
                f"messages[{i}]: role {role!r} is not supported by this model",
                param=f"messages[{i}].role",
            )
        turns.append((role, _text(message.get("content"), i)))
    return turns


def _text(content: object, i: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if not (isinstance(part, dict) and part.get("type") == "text"):
                raise InvalidRequest(
                    f"messages[{i}]: only text content is supported by this model",
                    param=f"messages[{i}].content",
                )
            parts.append(str(part.get("text", "")))
        return "".join(parts)
    raise InvalidRequest(f"messages[{i}].content: invalid", param=f"messages[{i}].content")


def render_prompt(template: ChatTemplate, turns: Sequence[Turn]) -> str:
    """The prompt for ``turns`` in ``template``'s format, ending where the assistant speaks.

    Raises:
        InvalidRequest: a message contains one of the template's control markers (containers
            tokenize them as special tokens, so a user could forge a system or assistant turn).
    """
    markers = _MARKERS[template]
    for i, (_, text) in enumerate(turns):
        if any(marker in text for marker in markers):
            raise InvalidRequest(
                f"messages[{i}]: contains a reserved chat-template marker",
                param=f"messages[{i}].content",
            )
    return _TEMPLATES[template](turns)


def _llama3(turns: Sequence[Turn]) -> str:
    parts = ["<|begin_of_text|>"]
    for role, text in turns:
        parts.append(f"<|start_header_id|>{role}<|end_header_id|>\n\n{text}<|eot_id|>")
    parts.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return "".join(parts)


def _chatml(turns: Sequence[Turn]) -> str:
    parts = [f"<|im_start|>{role}\n{text}<|im_end|>\n" for role, text in turns]
    parts.append("<|im_start|>assistant\n")
    return "".join(parts)


def _inst(turns: Sequence[Turn], system_format: str, close: str) -> str:
    """Mistral / Llama 2 ``[INST]`` format; system text joins the first user turn."""
    system = "\n\n".join(text for role, text in turns if role == "system")
    parts = ["<s>"]
    pending_system = system_format.format(system) if system else ""
    for role, text in turns:
        if role == "user":
            parts.append(f"[INST] {pending_system}{text} [/INST]")
            pending_system = ""
        elif role == "assistant":
            parts.append(f" {text}{close}")
    return "".join(parts)


def _mistral(turns: Sequence[Turn]) -> str:
    return _inst(turns, "{}\n\n", "</s>")


def _llama2(turns: Sequence[Turn]) -> str:
    return _inst(turns, "<<SYS>>\n{}\n<</SYS>>\n\n", " </s><s>")


_INST_MARKERS: Final = ("<s>", "</s>", "[INST]", "[/INST]")
_MARKERS: Final[dict[str, tuple[str, ...]]] = {
    "llama3": ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
    "chatml": ("<|im_start|>", "<|im_end|>"),
    "mistral": _INST_MARKERS,
    "llama2": (*_INST_MARKERS, "<<SYS>>", "<</SYS>>"),
}
_TEMPLATES: Final[dict[str, Callable[[Sequence[Turn]], str]]] = {
    "llama3": _llama3,
    "chatml": _chatml,
    "mistral": _mistral,
    "llama2": _llama2,
}
