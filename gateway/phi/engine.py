"""A thin fast path over google-re2: group spans of successive matches, anchored matches, the
rules matching at a position (``RuleSet``), where a text's end is in a language (``Tail``) and
where a match may begin (``Starts``).

The binding's ``str`` API re-encodes the text and decodes every group offset of every match in
Python; with the detector's ~50 groups that was most of the per-chunk cost (cProfile: 233k decode
calls for 10k chunks). For ASCII text, byte and character offsets coincide, so this module calls
the compiled ``RE2`` object on the bytes directly; any other text -- or a binding without that
object -- takes the public API. Both paths give identical spans (tested).

Invariants: offsets are character offsets into the given ``str``; word boundaries see the
character before ``pos``; no state between calls; every engine is linear in the text (RE2, and
``Starts``' one-class, one-character-lookbehind ``re`` pattern).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Final

import re2

Spans = list[tuple[int, int]]
"""Span of group 0 (the match) then of every capturing group; ``(-1, -1)`` when unset."""

_ANCHOR = getattr(re2, "_Anchor", None)
#: A named group's opening (not after an escaping backslash); the grammar writes groups only so.
_NAMED_GROUP = re.compile(r"(?<!\\)((?:\\\\)*)\(\?P<\w+>")


class Pattern:
    """One compiled RE2 pattern."""

    __slots__ = ("_ngroups", "_raw", "_re", "groupindex", "programsize")

    def __init__(self, pattern: str, *, capture: bool = True, max_mem: int = 64 << 20) -> None:
        options = re2.Options()
        options.max_mem = max_mem
        options.never_capture = not capture
        if not capture:
            # ``never_capture`` alone still reports the groups, so the binding asks RE2 for
            # every group's span and RE2 runs its submatch engines over the whole program
            # (measured: anchored match 4.7 us instead of 1.5 us on the detector alternation).
            pattern = _NAMED_GROUP.sub(r"\1(?:", pattern)
        self._re = re2.compile(pattern, options)
        self._raw = getattr(self._re, "_regexp", None) if _ANCHOR is not None else None
        self._ngroups: int = self._re.groups
        self.groupindex: dict[str, int] = dict(self._re.groupindex)
        self.programsize: int = self._re.programsize

    def finditer(self, text: str, pos: int = 0, *, fast: bool = True) -> Iterator[Spans]:
        """Group spans of every non-overlapping match in ``text[pos:]``, leftmost-first."""
        if fast and self._raw is not None and text.isascii():
            yield from self._finditer_ascii(text.encode("ascii"), pos)
            return
        for m in self._re.finditer(text, pos):
            yield [m.span(i) for i in range(self._ngroups + 1)]

    def _finditer_ascii(self, data: bytes, pos: int) -> Iterator[Spans]:
        end = len(data)
        while pos <= end:
            spans: Spans = self._raw.Match(_ANCHOR.UNANCHORED, data, pos, end)  # type: ignore[union-attr]
            start, stop = spans[0]
            if start < 0:
                return
            yield spans
            pos = stop + 1 if stop == pos else stop

    def match_at(self, text: str, pos: int, data: bytes | None = None) -> Spans | None:
        """Group spans of the match starting exactly at ``pos`` (context before it seen), or
        None. ``data`` is ``text`` encoded as ASCII when the caller already has it."""
        if data is not None and self._raw is not None:
            spans: Spans = self._raw.Match(_ANCHOR.ANCHOR_START, data, pos, len(data))  # type: ignore[union-attr]
            return spans if spans[0][0] >= 0 else None
        m = self._re.match(text, pos)
        return None if m is None else [m.span(i) for i in range(self._ngroups + 1)]

    def matches_rest(self, text: str, pos: int) -> bool:
        """Whether the pattern matches all of ``text[pos:]`` (context before ``pos`` seen)."""
        if self._raw is not None and text.isascii():
            data = text.encode("ascii")
            both = _ANCHOR.ANCHOR_BOTH  # type: ignore[union-attr]
            return bool(self._raw.Match(both, data, pos, len(data))[0][0] >= 0)
        return self._re.fullmatch(text, pos) is not None

    def fullmatch(self, text: str) -> bool:
        """Whether the pattern matches all of ``text``."""
        return self._re.fullmatch(text) is not None

    def earliest_full(self, text: str, first: int, *, fast: bool = True) -> int:
        """The smallest ``i >= first`` such that the pattern matches all of ``text[i:]`` and
        ``i < len(text)``, else ``len(text)``: one anchored match per position (the reference
        ``Tail`` is tested against)."""
        if fast and self._raw is not None and text.isascii():
            data = text.encode("ascii")
            end = len(data)
            both = _ANCHOR.ANCHOR_BOTH  # type: ignore[union-attr]
            for i in range(first, end):
                if self._raw.Match(both, data, i, end)[0][0] >= 0:
                    return i
            return end
        for i in range(first, len(text)):
            if self._re.fullmatch(text, i):
                return i
        return len(text)


class Tail:
    """Where the rest of a text, to its end, is in a language: the earliest ``i`` such that
    ``pattern`` matches all of ``text[i:]``.

    Streams ask this after every chunk, usually from a position that answered yes last time
    (the word being written): that position is tried first with one anchored match. Otherwise
    one search for ``(?:pattern)$`` answers, which RE2 runs backwards from the end of the text
    with its reverse DFA: one automaton pass instead of one anchored match per position.
    """

    __slots__ = ("_anchored", "_tail")

    def __init__(self, pattern: str, *, max_mem: int = 64 << 20) -> None:
        self._anchored = Pattern(pattern, capture=False, max_mem=max_mem)
        self._tail = Pattern(f"(?:{pattern})$", capture=False, max_mem=max_mem)

    def earliest(self, text: str, first: int) -> int:
        """The smallest ``i >= first``, ``i < len(text)``, with ``text[i:]`` in the language,
        else ``len(text)`` (the text before ``first`` is context for word boundaries)."""
        if first >= len(text):
            return len(text)
        if self._anchored.matches_rest(text, first):
            return first
        for spans in self._tail.finditer(text, first + 1):
            return spans[0][0]
        return len(text)


_WORD: Final = "A-Za-z0-9_"


class Starts:
    """The positions of ASCII text where a match may begin: a character of ``starts`` after a
    non-word character (or at the start), or one of ``in_word`` right after an ASCII word
    character (RE2's ``\\b`` sees the same classes).

    It runs Python's backtracking ``re``, which is safe here: one character class and a
    one-character lookbehind per position, so the search is linear whatever the text holds.
    """

    __slots__ = ("_finder",)

    def __init__(self, starts: Iterable[str], in_word: Iterable[str]) -> None:
        def cls(chars: Iterable[str]) -> str:
            body = "".join(re.escape(c) for c in sorted(set(chars)))
            return f"[{body}]" if body else "(?!)"

        self._finder = re.compile(f"(?<![{_WORD}]){cls(starts)}|(?<=[{_WORD}]){cls(in_word)}")

    def positions(self, text: str, first: int, stop: int) -> Iterator[int]:
        """Candidate positions in ``[first, stop)``, in order (ASCII ``text``)."""
        return (m.start() for m in self._finder.finditer(text, first, stop))


class RuleSet:
    """Which of several patterns match starting exactly at a position (RE2's ``Set``): one
    automaton pass instead of one anchored match per pattern.

    ASCII bytes only. The binding drops ``RE2::Set::Match``'s failure flag, so an empty answer
    may also mean the automaton gave up: callers treat it as "unknown", never as "no match".
    """

    __slots__ = ("_after", "_at_start")

    def __init__(self, patterns: list[str], *, max_mem: int = 64 << 20) -> None:
        options = re2.Options()
        options.max_mem = max_mem
        # Left context: a pattern preceded by one any-byte step sees the character before the
        # position for its word boundaries, as an anchored match with ``pos`` does.
        self._after = re2.Set.MatchSet(options)
        self._at_start = re2.Set.MatchSet(options)
        for pattern in patterns:
            self._after.Add(f"(?s:.)(?:{pattern})")
            self._at_start.Add(pattern)
        self._after.Compile()
        self._at_start.Compile()

    def matching_at(self, data: bytes, pos: int, longest: int) -> list[int]:
        """Indexes of the patterns with a match starting at ``data[pos]`` (unordered; maybe
        empty when the automaton failed). ``longest``: no pattern matches more bytes, so the
        search sees only that much text plus one byte of right context (exact for word
        boundaries, and no copy of the rest of a long text)."""
        stop = pos + longest + 1
        found = (
            self._after.Match(data[pos - 1 : stop]) if pos else self._at_start.Match(data[:stop])
        )
        return found or []
