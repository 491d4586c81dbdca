"""Input redaction of an OpenAI chat body into numbered placeholders, fail-closed.

``redact_chat`` replaces PHI in every text the model will read -- message content (string or text
parts), ``name``, ``refusal``, tool-call and legacy function-call arguments, tool results -- with
``[PHI_<CATEGORY>_<n>]``. A ``PlaceholderBook`` gives the same value the same placeholder within a
conversation and keeps placeholder -> original for re-identification (the vault stores it later).

Invariants: the input body is never mutated; on any failure (detector error, a content part whose
text cannot be inspected such as an image, a malformed shape) ``RedactionFailed`` is raised and no
partial body escapes. Placeholders never contain PHI, and the book never forgets an issued one.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import re2

from gateway.errors import RedactionFailed
from gateway.phi.categories import Category
from gateway.phi.detectors import Detector
from gateway.phi.validators import zip3

PLACEHOLDER_RE = re.compile(r"\[PHI_([A-Z0-9_]+?)_(\d+)\]")
"""Canonical placeholder syntax (a fixed, linear pattern on gateway-issued text)."""

_ZIP_LOCATION = re2.compile(r"(?:(?P<city>.+), (?P<state>[A-Z]{2}) )?(?P<zip>\d{5})(?:-\d{4})?")
"""A LOCATION span ending in a ZIP code: ``62704``, ``62704-1234`` or ``City, ST 62704``."""


class PlaceholderBook:
    """Placeholders of one conversation: same value, same placeholder; numbered per category."""

    __slots__ = ("_by_value", "_counts", "_originals", "zip3")

    def __init__(self, originals: Mapping[str, str] | None = None, *, zip3: bool = False) -> None:
        self.zip3 = zip3
        """ZIP codes become their Safe Harbor three-digit form (``replacement``)."""
        self._originals: dict[str, str] = {}
        self._by_value: dict[str, str] = {}
        self._counts: Counter[str] = Counter()
        for placeholder, value in (originals or {}).items():
            m = PLACEHOLDER_RE.fullmatch(placeholder)
            if m is None:
                raise ValueError("not a placeholder")
            self._remember(placeholder, value, m.group(1), int(m.group(2)))

    def _remember(self, placeholder: str, value: str, category: str, number: int) -> None:
        self._originals[placeholder] = value
        self._by_value.setdefault(value, placeholder)
        self._counts[category] = max(self._counts[category], number)

    def placeholder(self, category: Category, value: str) -> str:
        """The placeholder for ``value`` (issued now if new)."""
        known = self._by_value.get(value)
        if known is not None:
            return known
        number = self._counts[category.value] + 1
        placeholder = f"[PHI_{category.value}_{number}]"
        self._remember(placeholder, value, category.value, number)
        return placeholder

    def replacement(self, category: Category, value: str) -> str:
        """What replaces the PHI ``value``: its placeholder; with ``zip3``, a ZIP code becomes
        its first three digits and ``XX`` (``000XX`` for the restricted prefixes), which Safe
        Harbor allows to keep and which is never re-identified, and in ``City, ST 12345`` only
        the city gets a placeholder (a state is not PHI)."""
        if self.zip3 and category is Category.LOCATION:
            m = _ZIP_LOCATION.fullmatch(value)
            if m is not None:
                generalised = zip3(m.group("zip")) + "XX"
                city = m.group("city")
                if city is None:
                    return generalised
                return f"{self.placeholder(category, city)}, {m.group('state')} {generalised}"
        return self.placeholder(category, value)

    def copy(self) -> PlaceholderBook:
        """An independent copy."""
        twin = PlaceholderBook(zip3=self.zip3)
        twin.adopt(self)
        return twin

    def adopt(self, other: PlaceholderBook) -> None:
        """Take over ``other``'s state (``other`` extends this book, e.g. a successful trial)."""
        self._originals = dict(other._originals)
        self._by_value = dict(other._by_value)
        self._counts = Counter(other._counts)

    @property
    def originals(self) -> dict[str, str]:
        """placeholder -> original (a copy)."""
        return dict(self._originals)

    def __len__(self) -> int:
        return len(self._originals)


def redact_text(text: str, detector: Detector, book: PlaceholderBook) -> str:
    """``text`` with every detected PHI span replaced by its placeholder."""
    out: list[str] = []
    last = 0
    for span in detector.find(text):
        out.append(text[last : span.start])
        out.append(book.replacement(span.category, text[span.start : span.end]))
        last = span.end
    out.append(text[last:])
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Redaction:
    """A redacted body and the placeholders of its conversation."""

    body: dict[str, Any]
    originals: dict[str, str]
    """placeholder -> original value (PHI: goes to the vault, never to logs)."""


_OPAQUE_PARTS = frozenset({"image_url", "input_audio", "file"})


class _Walker:
    def __init__(self, detector: Detector, book: PlaceholderBook) -> None:
        self.detector = detector
        self.book = book

    def text(self, value: object, where: str) -> str:
        if not isinstance(value, str):
            raise RedactionFailed(f"cannot redact {where}: expected a string")
        return redact_text(value, self.detector, self.book)

    def content(self, value: object, where: str) -> object:
        if value is None or isinstance(value, str):
            return None if value is None else self.text(value, where)
        if not isinstance(value, list):
            raise RedactionFailed(f"cannot redact {where}: unexpected content shape")
        return [self.part(part, f"{where}[{i}]") for i, part in enumerate(value)]

    def part(self, part: object, where: str) -> dict[str, Any]:
        if not isinstance(part, dict):
            raise RedactionFailed(f"cannot redact {where}: unexpected content part")
        kind = part.get("type")
        if kind in ("text", "refusal"):
            key = str(kind)
            return {**part, key: self.text(part.get(key), f"{where}.{key}")}
        if kind in _OPAQUE_PARTS:
            # PHI: an image or file cannot be inspected; forwarding it would be failing open.
            raise RedactionFailed(
                f"cannot redact {where}: content of type {kind} is not inspectable"
            )
        raise RedactionFailed(f"cannot redact {where}: unknown content part type")

    def arguments(self, value: object, where: str) -> str:
        if not isinstance(value, str):
            raise RedactionFailed(f"cannot redact {where}: expected a string")
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            return self.text(value, where)  # not JSON: redact as text
        return orjson.dumps(self.json_value(parsed)).decode()

    def json_value(self, value: object) -> object:
        if isinstance(value, str):
            return redact_text(value, self.detector, self.book)
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int | float):
            # PHI: a bare number may be an identifier (an SSN); redacted, it becomes a string.
            text = str(value)
            redacted = redact_text(text, self.detector, self.book)
            return value if redacted == text else redacted
        if isinstance(value, list):
            return [self.json_value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.json_value(v) for k, v in value.items()}
        raise RedactionFailed("cannot redact tool arguments: unexpected JSON value")

    def message(self, msg: object, where: str) -> dict[str, Any]:
        if not isinstance(msg, dict):
            raise RedactionFailed(f"cannot redact {where}: expected an object")
        out = dict(msg)
        if "content" in out:
            out["content"] = self.content(out["content"], f"{where}.content")
        for key in ("name", "refusal"):
            if out.get(key) is not None:
                out[key] = self.text(out[key], f"{where}.{key}")
        if out.get("tool_calls") is not None:
            out["tool_calls"] = [
                self.call(c, f"{where}.tool_calls[{i}]")
                for i, c in enumerate(_list(out["tool_calls"], where))
            ]
        if out.get("function_call") is not None:
            out["function_call"] = self.function(out["function_call"], f"{where}.function_call")
        return out

    def call(self, call: object, where: str) -> dict[str, Any]:
        if not isinstance(call, dict):
            raise RedactionFailed(f"cannot redact {where}: expected an object")
        out = dict(call)
        if out.get("function") is not None:
            out["function"] = self.function(out["function"], f"{where}.function")
        return out

    def function(self, fn: object, where: str) -> dict[str, Any]:
        if not isinstance(fn, dict):
            raise RedactionFailed(f"cannot redact {where}: expected an object")
        out = dict(fn)
        if out.get("arguments") is not None:
            out["arguments"] = self.arguments(out["arguments"], f"{where}.arguments")
        return out


def _list(value: object, where: str) -> list[object]:
    if not isinstance(value, list):
        raise RedactionFailed(f"cannot redact {where}: expected a list")
    return value


def redact_chat(
    body: Mapping[str, Any], detector: Detector, book: PlaceholderBook | None = None
) -> Redaction:
    """The chat completion ``body`` with PHI replaced by placeholders.

    Args:
        body: the parsed request (not changed).
        detector: which categories to look for.
        book: the conversation's placeholders so far (updated in place); a new one if omitted.

    Raises:
        RedactionFailed: anything could not be redacted; nothing partial is returned.
    """
    book = PlaceholderBook() if book is None else book
    trial = book.copy()  # issued only if the whole body is redacted
    walker = _Walker(detector, trial)
    try:
        messages = [
            walker.message(m, f"messages[{i}]")
            for i, m in enumerate(_list(body.get("messages"), "messages"))
        ]
    except RedactionFailed:
        raise
    except Exception as exc:  # PHI: any detector failure fails closed
        raise RedactionFailed("PHI redaction failed") from exc
    book.adopt(trial)
    return Redaction({**body, "messages": messages}, book.originals)
