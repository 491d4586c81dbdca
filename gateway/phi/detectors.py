"""PHI detection over text: linear-time candidate matching (RE2), validation, hard partial matches.

``Detector.candidates`` runs one leftmost-first RE2 alternation of the rules in ``patterns`` and
validates each match into PHI spans. ``Detector.hold_from`` answers the streaming question no
backtracking engine answers without soft-partial pitfalls: the earliest position from which the
rest of the text is a prefix of some rule match, i.e. where a match could still start or grow.

Invariants: matching is linear in the text (RE2 automata, no backtracking); candidates do not
overlap and come in text order; spans lie inside their candidate; ``hold_from`` is never more than
``max_hold`` characters before the end of the text. Word boundaries look one character to the left
of ``pos``, so callers resuming a scan keep that character as context.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import re2

from gateway.phi import names
from gateway.phi.categories import DEFAULT_CATEGORIES, Category
from gateway.phi.grammar import Group
from gateway.phi.patterns import RULES, Rule


@dataclass(frozen=True, slots=True)
class Span:
    """PHI at ``text[start:end]``."""

    start: int
    end: int
    category: Category


@dataclass(frozen=True, slots=True)
class Candidate:
    """One rule match at ``text[start:end]`` and the PHI spans validated inside it (maybe none)."""

    start: int
    end: int
    spans: tuple[Span, ...]


def _options(*, capture: bool = True) -> re2.Options:
    options = re2.Options()
    options.max_mem = 64 << 20  # the prefix automaton of the bounded repetitions is large-ish
    options.never_capture = not capture
    return options


def earliest_prefix(prefix: re2._Regexp, text: str, pos: int, max_hold: int) -> int:
    """The smallest ``i >= pos`` (and ``>= len(text) - max_hold``) such that ``prefix`` matches
    all of ``text[i:]`` (non-empty), else ``len(text)``.

    One anchored match per position, left to right: unlike an unanchored search for a match
    ending at the end of the text (leftmost start = a reverse automaton over a large program,
    measured 115 us mean and 0.8 ms p99 per chunk), the anchored forward DFA stays cheap (9.5 us
    mean, 40 us p99). At most ``max_hold`` positions are tried.
    """
    for i in range(max(pos, len(text) - max_hold), len(text)):
        if prefix.fullmatch(text, i):
            return i
    return len(text)


class Detector:
    """Finds PHI of the enabled categories; immutable and shareable between streams."""

    __slots__ = ("_categories", "_full", "_groups", "_prefix", "_rules", "max_hold")

    def __init__(self, categories: Iterable[Category] = DEFAULT_CATEGORIES) -> None:
        self._categories = frozenset(categories)
        rules = [r for r in RULES if r.categories & self._categories]
        if not rules:
            raise ValueError("a detector needs at least one category")
        names.load()
        self._rules: dict[str, Rule] = {r.name: r for r in rules}
        self._full = re2.compile("|".join(Group(r.name, r.node).full() for r in rules), _options())
        self._prefix = re2.compile(
            "|".join(r.node.prefix() for r in rules), _options(capture=False)
        )
        self._groups: dict[str, tuple[int, int | None]] = {
            r.name: (
                self._full.groupindex[r.name],
                self._full.groupindex.get(f"{r.name}_v"),
            )
            for r in rules
        }
        self.max_hold = max(r.node.max_len() for r in rules)
        """Upper bound on ``len(text) - hold_from(text)``."""

    @property
    def categories(self) -> frozenset[Category]:
        """The categories this detector reports."""
        return self._categories

    def candidates(self, text: str, pos: int = 0) -> list[Candidate]:
        """Rule matches in ``text[pos:]`` (non-overlapping, in order) with their PHI spans."""
        out: list[Candidate] = []
        for m in self._full.finditer(text, pos):
            name = m.lastgroup
            if name is None:  # pragma: no cover - every alternative is a named group
                continue
            rule = self._rules[name]
            _, value_group = self._groups[name]
            vstart, vend = m.start(), m.end()
            if value_group is not None and m.start(value_group) >= 0:
                vstart, vend = m.start(value_group), m.end(value_group)
            spans = tuple(
                Span(vstart + s, vstart + e, cat)
                for s, e, cat in rule.validate(text[vstart:vend])
                if cat in self._categories and e > s
            )
            out.append(Candidate(m.start(), m.end(), spans))
        return out

    def find(self, text: str) -> list[Span]:
        """Every PHI span in ``text``, in order, non-overlapping."""
        return [span for cand in self.candidates(text) for span in cand.spans]

    def hold_from(self, text: str, pos: int = 0) -> int:
        """The earliest index ``i >= pos`` such that ``text[i:]`` is a non-empty prefix of some
        rule match starting at ``i`` (a match could still start there or grow), else
        ``len(text)``."""
        return earliest_prefix(self._prefix, text, pos, self.max_hold)
