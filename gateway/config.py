"""Typed, frozen gateway configuration: one TOML file plus environment overrides.

Invariants:
- this is the only module that reads the process environment (callers pass ``environ``);
- ``load_config`` validates the whole file and reports every problem at once in one
  ``ConfigError``; nothing is validated lazily at request time;
- secrets are ``Secret`` values whose ``repr`` is ``'***'``, so a config object is safe to log.

Environment overrides: ``GATEWAY__<SECTION>__<KEY>[__<KEY>...]=value`` sets the TOML value at that
path (case-insensitive, e.g. ``GATEWAY__SERVER__PORT=9000``,
``GATEWAY__UPSTREAMS__LITELLM__API_KEY=sk-...``). ``GATEWAY_CONFIG`` names the TOML file.
"""

from __future__ import annotations

import os
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from gateway.errors import ConfigError

ENV_PREFIX = "GATEWAY__"
ENV_CONFIG_PATH = "GATEWAY_CONFIG"

UpstreamKind = Literal["litellm", "openai"]
ModelKind = Literal["chat", "embedding"]
ModelStatus = Literal["active", "disabled"]
LogLevel = Literal["debug", "info", "warning", "error"]


class Secret:
    """A secret string that never prints itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret; call only where it is sent on the wire."""
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:
        return (Secret, (self._value,))


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """Listener, worker processes and HTTP-level limits."""

    host: str = "127.0.0.1"
    """Address to bind; use 0.0.0.0 in a container."""
    port: int = 8080
    """TCP port; 0 picks a free port (tests)."""
    workers: int = 0
    """Worker processes sharing the port (SO_REUSEPORT); 0 means one per CPU."""
    max_body_bytes: int = 20 * 1024 * 1024
    """Largest accepted request body; larger bodies get 413."""
    sse_keepalive_s: float = 15.0
    """Interval of `: keep-alive` comments until the upstream sends its first chunk."""
    client_write_timeout_s: float = 60.0
    """A stream whose client does not read for this long is aborted (slow-reader guard)."""
    drain_timeout_s: float = 25.0
    """On SIGTERM, open requests get this long to finish before streams end with a final event."""
    cors_origins: tuple[str, ...] = ()
    """Browser origins allowed by CORS (exact match, e.g. https://chat.example.com)."""
    log_level: LogLevel = "info"
    """Log level of the gateway's JSON logs."""
    access_log: bool = False
    """Per-request access log lines (method, path, status, duration; never bodies or tokens)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamConfig:
    """An OpenAI-compatible upstream (a LiteLLM proxy or any OpenAI-wire server)."""

    kind: UpstreamKind = "litellm"
    """`litellm` (LiteLLM proxy) or `openai` (any OpenAI-compatible server)."""
    base_url: str
    """Base URL without `/v1`, e.g. http://litellm.internal:4000."""
    api_key: Secret | None = None
    """The gateway's own credential for this upstream (set it via the environment)."""
    connect_timeout_s: float = 5.0
    """Deadline for opening a TCP connection."""
    first_byte_timeout_s: float = 60.0
    """Deadline from sending a request to the upstream's response headers (504 before ours)."""
    idle_timeout_s: float = 30.0
    """Longest gap between two stream chunks once streaming (SSE error event after ours started)."""
    total_timeout_s: float = 600.0
    """Deadline for a whole request, streamed or not."""
    max_connections: int = 1000
    """Connection pool size of this worker's client session."""
    max_event_bytes: int = 1024 * 1024
    """Largest upstream SSE event accepted; larger is a protocol error."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelConfig:
    """A model alias clients ask for, and where it is served."""

    upstream: str
    """Name of the upstream (a key of `[upstreams]`)."""
    target: str
    """Model name sent to the upstream."""
    kind: ModelKind = "chat"
    """`chat` or `embedding`."""
    owned_by: str = "gateway"
    """`owned_by` shown in /v1/models."""
    created: int = 0
    """`created` (Unix seconds) shown in /v1/models."""
    status: ModelStatus = "active"
    """`disabled` models are hidden and answer 404."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayConfig:
    """The whole configuration, handed to factories (there is no config singleton)."""

    server: ServerConfig = field(default_factory=ServerConfig)
    upstreams: Mapping[str, UpstreamConfig] = field(default_factory=dict)
    models: Mapping[str, ModelConfig] = field(default_factory=dict)


_T = TypeVar("_T")


class _EnvValue(str):
    """A string that came from the environment and may be coerced to the field's type."""

    __slots__ = ()


def load_config_file(path: str | Path, environ: Mapping[str, str]) -> GatewayConfig:
    """Read the TOML file at ``path`` and apply overrides from ``environ``.

    Raises:
        ConfigError: the file is unreadable or any value is invalid (all problems listed).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from exc
    return load_config(text, environ, source=str(path))


def load_config(
    text: str, environ: Mapping[str, str], *, source: str = "<config>"
) -> GatewayConfig:
    """Parse TOML ``text``, apply ``GATEWAY__`` overrides from ``environ``, validate everything.

    Raises:
        ConfigError: listing every problem found.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source}: invalid TOML: {exc}"]) from exc
    problems: list[str] = []
    _apply_env_overrides(raw, environ, problems)
    config = _build(GatewayConfig, raw, "", problems)
    _check_references(raw, problems)
    if problems or config is None:
        raise ConfigError(problems)
    return config


def config_path_from_env(environ: Mapping[str, str]) -> str | None:
    """The config file named by ``GATEWAY_CONFIG``, if any."""
    return environ.get(ENV_CONFIG_PATH) or None


def process_environ() -> Mapping[str, str]:
    """The process environment (the one place it is read)."""
    return dict(os.environ)


def _apply_env_overrides(
    raw: dict[str, Any], environ: Mapping[str, str], problems: list[str]
) -> None:
    for name, value in sorted(environ.items()):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        if not all(path):
            problems.append(f"{name}: empty path segment")
            continue
        node = raw
        for part in path[:-1]:
            key = _match_key(node, part)
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                problems.append(f"{name}: {part} is not a table")
                break
            node = child
        else:
            node[_match_key(node, path[-1])] = _EnvValue(value)


def _match_key(node: dict[str, Any], part: str) -> str:
    """Find an existing key matching an env path segment (case-insensitive, `-` as `_`)."""
    for key in node:
        if key.lower().replace("-", "_") == part:
            return key
    return part


def _build(cls: type[_T], raw: object, path: str, problems: list[str]) -> _T | None:
    if not isinstance(raw, dict) or not is_dataclass(cls):
        problems.append(f"{path or '<root>'}: must be a table")
        return None
    known = {f.name for f in fields(cls)}
    problems.extend(f"{_join(path, key)}: unknown key" for key in raw if key not in known)
    kwargs = _field_values(cls, raw, path, problems)
    if kwargs is None:
        return None
    try:
        built = cls(**kwargs)
    except TypeError:  # a required field was missing; already reported
        return None
    check = _CHECKS.get(cls)
    if check is not None:
        check(built, path, problems)
    return built


def _field_values(
    cls: type[Any], raw: dict[str, Any], path: str, problems: list[str]
) -> dict[str, Any] | None:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    valid = True
    for f in fields(cls):
        where = _join(path, f.name)
        if f.name not in raw:
            if f.default is MISSING and f.default_factory is MISSING:
                problems.append(f"{where}: required")
                valid = False
            continue
        value = _convert(hints[f.name], raw[f.name], where, problems)
        if value is _INVALID:
            valid = False
        else:
            kwargs[f.name] = value
    return kwargs if valid else None


_INVALID: Any = object()


def _convert(tp: Any, value: object, where: str, problems: list[str]) -> Any:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(tp) if a is not type(None)]
        return _convert(options[0], value, where, problems)
    if origin is Literal:
        if value not in get_args(tp):
            allowed = ", ".join(repr(a) for a in get_args(tp))
            problems.append(f"{where}: must be one of {allowed}, got {value!r}")
            return _INVALID
        return str(value)
    if origin is tuple:
        if isinstance(value, _EnvValue):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(f"{where}: must be a list of strings")
            return _INVALID
        return tuple(value)
    if origin in (Mapping, dict):
        item_type = get_args(tp)[1]
        if not isinstance(value, dict):
            problems.append(f"{where}: must be a table")
            return _INVALID
        built = {k: _build(item_type, v, _join(where, k), problems) for k, v in value.items()}
        return _INVALID if any(v is None for v in built.values()) else built
    if is_dataclass(tp):
        built_dc = _build(tp, value, where, problems)  # type: ignore[arg-type]
        return _INVALID if built_dc is None else built_dc
    return _convert_scalar(tp, value, where, problems)


_SCALARS: dict[Any, tuple[Callable[[object], bool], Callable[[Any], Any], str]] = {
    Secret: (lambda v: isinstance(v, str) and bool(v), lambda v: Secret(str(v)),
             "a non-empty string"),
    bool: (lambda v: isinstance(v, bool), bool, "true or false"),
    int: (lambda v: isinstance(v, int) and not isinstance(v, bool), int, "an integer"),
    float: (lambda v: isinstance(v, int | float) and not isinstance(v, bool), float, "a number"),
    str: (lambda v: isinstance(v, str), str, "a string"),
}  # fmt: skip


def _convert_scalar(tp: Any, value: object, where: str, problems: list[str]) -> Any:
    if isinstance(value, _EnvValue):
        value = _coerce_env(tp, value)
    accepts, convert, what = _SCALARS[tp]  # KeyError: a field type the loader does not support
    if accepts(value):
        return convert(value)
    problems.append(f"{where}: must be {what}")
    return _INVALID


def _coerce_env(tp: Any, value: _EnvValue) -> object:
    text = value.strip()
    if tp is bool:
        lowered = text.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        return text
    for number in (int, float):
        if tp is number:
            try:
                return number(text)
            except ValueError:
                return text
    return str(value)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check_server(server: Any, where: str, problems: list[str]) -> None:
    if not 0 <= server.port <= 65535:
        problems.append(f"{where}.port: must be between 0 and 65535")
    if server.workers < 0:
        problems.append(f"{where}.workers: must be >= 0 (0 = one per CPU)")
    if server.max_body_bytes < 1024:
        problems.append(f"{where}.max_body_bytes: must be at least 1024")
    problems.extend(
        f"{where}.{name}: must be > 0"
        for name in ("sse_keepalive_s", "client_write_timeout_s", "drain_timeout_s")
        if getattr(server, name) <= 0
    )
    problems.extend(
        f"{where}.cors_origins: {origin!r} must be an exact http(s) origin"
        for origin in server.cors_origins
        if origin == "*" or not origin.startswith(("http://", "https://"))
    )


def _check_upstream(up: Any, where: str, problems: list[str]) -> None:
    if not up.base_url.startswith(("http://", "https://")):
        problems.append(f"{where}.base_url: must be an http(s) URL")
    problems.extend(
        f"{where}.{timeout}: must be > 0"
        for timeout in ("connect_timeout_s", "first_byte_timeout_s", "idle_timeout_s")
        if getattr(up, timeout) <= 0
    )
    if up.total_timeout_s < up.first_byte_timeout_s:
        problems.append(f"{where}.total_timeout_s: must be >= first_byte_timeout_s")
    if up.max_connections < 1:
        problems.append(f"{where}.max_connections: must be >= 1")
    if up.max_event_bytes < 1024:
        problems.append(f"{where}.max_event_bytes: must be at least 1024")


_CHECKS: dict[type, Callable[[Any, str, list[str]], None]] = {
    ServerConfig: _check_server,
    UpstreamConfig: _check_upstream,
}


def _check_references(raw: dict[str, Any], problems: list[str]) -> None:
    """Rules across sections, checked on the raw tables so they are reported with the rest."""
    models, upstreams = raw.get("models"), raw.get("upstreams")
    if not isinstance(models, dict) or not models:
        problems.append("models: at least one model must be configured")
        return
    names = set(upstreams) if isinstance(upstreams, dict) else set()
    problems.extend(
        f"models.{alias}.upstream: no upstream named {model['upstream']!r}"
        for alias, model in models.items()
        if isinstance(model, dict)
        and isinstance(model.get("upstream"), str)
        and model["upstream"] not in names
    )
