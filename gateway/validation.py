"""Validation of OpenAI request bodies into typed requests; every failure names the bad ``param``.

Only allow-listed fields survive (``wire.CHAT_FIELDS``/``EMBEDDING_FIELDS``); the checks cover the
fields the gateway or its upstreams rely on, so a malformed request is answered here with a clear
400 instead of an opaque upstream error.
"""

from __future__ import annotations

import re
from typing import Any, Final

from gateway.context import ChatRequest, EmbeddingRequest, PhiOptions
from gateway.errors import InvalidRequest
from gateway.wire import CHAT_FIELDS, EMBEDDING_FIELDS, JSONObject, WireError, loads_object, pick

ROLES: Final = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_MAX_N: Final = 128
CONVERSATION_HEADER: Final = "X-Conversation-Id"
_CONVERSATION_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def parse_body(raw: bytes) -> JSONObject:
    """The request body as a JSON object.

    Raises:
        InvalidRequest: empty, not JSON or not an object.
    """
    if not raw:
        raise InvalidRequest("request body is empty; expected a JSON object")
    try:
        return loads_object(raw)
    except WireError as exc:
        raise InvalidRequest(f"request body is not valid: {exc}") from exc


def chat_request(body: JSONObject, *, conversation_header: str | None = None) -> ChatRequest:
    """Validate a chat completion body (``conversation_header``: ``X-Conversation-Id``).

    Raises:
        InvalidRequest: the first problem found, with ``param`` set.
    """
    model = _model(body)
    messages = body.get("messages")
    if messages is None:
        raise InvalidRequest("'messages' is a required property", param="messages")
    if not isinstance(messages, list):
        raise InvalidRequest("'messages' must be an array", param="messages")
    if not messages:
        raise InvalidRequest("'messages' must contain at least one message", param="messages")
    for i, message in enumerate(messages):
        _message(message, f"messages[{i}]")
    stream = _optional(body, "stream", bool, "a boolean")
    _int_range(body, "n", 1, _MAX_N)
    _int_range(body, "max_tokens", 1, None)
    _int_range(body, "max_completion_tokens", 1, None)
    _number_range(body, "temperature", 0.0, 2.0)
    _number_range(body, "top_p", 0.0, 1.0)
    _optional(body, "stream_options", dict, "an object")
    _optional(body, "user", str, "a string")
    tools = _optional(body, "tools", list, "an array")
    for i, tool in enumerate(tools or ()):
        if not isinstance(tool, dict):
            raise InvalidRequest("each tool must be an object", param=f"tools[{i}]")
    stop = body.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        raise InvalidRequest("'stop' must be a string or an array of strings", param="stop")
    return ChatRequest(
        model=model,
        stream=bool(stream),
        body=pick(body, CHAT_FIELDS),
        phi=phi_options(body, conversation_header),
    )


def phi_options(body: JSONObject, conversation_header: str | None) -> PhiOptions:
    """The gateway's PHI fields: ``enable_phi``, ``phi_categories``, ``conversation_id``.

    Raises:
        InvalidRequest: a field of the wrong type, or two different conversation ids.
    """
    enable = _optional(body, "enable_phi", bool, "a boolean")
    categories = body.get("phi_categories")
    if categories is not None and not (
        isinstance(categories, list) and all(isinstance(c, str) for c in categories)
    ):
        raise InvalidRequest("'phi_categories' must be an array of strings", param="phi_categories")
    conversation = _optional(body, "conversation_id", str, "a string")
    if conversation_header is not None:
        if conversation is not None and conversation != conversation_header:
            raise InvalidRequest(
                f"'conversation_id' and the {CONVERSATION_HEADER} header differ",
                param="conversation_id",
            )
        conversation = conversation_header
    if conversation is not None and not _CONVERSATION_ID.fullmatch(conversation):
        raise InvalidRequest(
            "'conversation_id' must be 1-128 characters of letters, digits and . _ : - "
            "(starting with a letter or digit)",
            param="conversation_id",
        )
    return PhiOptions(
        enable=enable,
        categories=tuple(dict.fromkeys(c.upper() for c in categories or ())),
        conversation_id=conversation,
    )


def embedding_request(body: JSONObject) -> EmbeddingRequest:
    """Validate an embeddings body.

    Raises:
        InvalidRequest: the first problem found, with ``param`` set.
    """
    model = _model(body)
    data = body.get("input")
    if data is None:
        raise InvalidRequest("'input' is a required property", param="input")
    if not _valid_embedding_input(data):
        raise InvalidRequest(
            "'input' must be a non-empty string, array of strings, or array of token arrays",
            param="input",
        )
    fmt = body.get("encoding_format")
    if fmt is None:
        fmt = "float"
    elif fmt not in ("float", "base64"):
        raise InvalidRequest(
            "'encoding_format' must be 'float' or 'base64'", param="encoding_format"
        )
    _int_range(body, "dimensions", 1, None)
    _optional(body, "user", str, "a string")
    return EmbeddingRequest(model=model, encoding_format=fmt, body=pick(body, EMBEDDING_FIELDS))


def _model(body: JSONObject) -> str:
    model = body.get("model")
    if model is None:
        raise InvalidRequest("'model' is a required property", param="model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' must be a non-empty string", param="model")
    return model


def _message(message: object, where: str) -> None:
    if not isinstance(message, dict):
        raise InvalidRequest(f"'{where}' must be an object", param=where)
    role = message.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise InvalidRequest(
            f"'{where}.role' must be one of {', '.join(sorted(ROLES))}", param=f"{where}.role"
        )
    content = message.get("content")
    if content is not None and not isinstance(content, str | list):
        raise InvalidRequest(
            f"'{where}.content' must be a string or an array of content parts",
            param=f"{where}.content",
        )
    if isinstance(content, list):
        for j, part in enumerate(content):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise InvalidRequest(
                    f"'{where}.content[{j}]' must be an object with a 'type'",
                    param=f"{where}.content[{j}]",
                )
    if content is None and role in ("user", "system", "developer"):
        raise InvalidRequest(f"'{where}.content' is required", param=f"{where}.content")


def _optional(body: JSONObject, key: str, tp: type, what: str) -> Any:
    value = body.get(key)
    if value is not None and (not isinstance(value, tp) or (tp is not bool and value is True)):
        raise InvalidRequest(f"'{key}' must be {what}", param=key)
    return value


def _int_range(body: JSONObject, key: str, low: int, high: int | None) -> None:
    value = body.get(key)
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidRequest(f"'{key}' must be an integer", param=key)
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise InvalidRequest(f"'{key}' must be {bound}", param=key)


def _number_range(body: JSONObject, key: str, low: float, high: float) -> None:
    value = body.get(key)
    if value is None:
        return
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise InvalidRequest(f"'{key}' must be a number", param=key)
    if not low <= value <= high:
        raise InvalidRequest(f"'{key}' must be between {low:g} and {high:g}", param=key)


def _valid_embedding_input(data: object) -> bool:
    if isinstance(data, str):
        return bool(data)
    if not isinstance(data, list) or not data:
        return False
    if all(isinstance(s, str) and s for s in data):
        return True
    if all(isinstance(t, int) and not isinstance(t, bool) for t in data):
        return True
    return all(
        isinstance(seq, list) and seq and all(isinstance(t, int) for t in seq) for seq in data
    )
