"""Loads the configuration: one TOML file plus environment overrides, into ``GatewayConfig``.

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
from dataclasses import MISSING, fields, is_dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from gateway.config.schema import GatewayConfig
from gateway.config.secret import Secret
from gateway.errors import ConfigError

ENV_PREFIX = "GATEWAY__"
ENV_CONFIG_PATH = "GATEWAY_CONFIG"


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
    check = getattr(built, "check", None)
    if check is not None:
        problems.extend(check(path))
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
    Decimal: (lambda v: _decimal(v) is not None, lambda v: _decimal(v), "a number"),
}  # fmt: skip


def _decimal(value: object) -> Decimal | None:
    """A TOML number (through its shortest text, so 0.15 is exactly 0.15) or numeric string."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


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
