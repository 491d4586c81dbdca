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

from gateway.phi import names
from gateway.phi.categories import DEFAULT_CATEGORIES, Category
from gateway.phi.engine import Pattern
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


class Detector:
    """Finds PHI of the enabled categories; immutable and shareable between streams."""

    __slots__ = ("_categories", "_full", "_groups", "_order", "_prefix", "_rules", "max_hold")

    def __init__(self, categories: Iterable[Category] = DEFAULT_CATEGORIES) -> None:
        self._categories = frozenset(categories)
        rules = [r for r in RULES if r.categories & self._categories]
        if not rules:
            raise ValueError("a detector needs at least one category")
        names.load()
        self._rules: dict[str, Rule] = {r.name: r for r in rules}
        self._full = Pattern("|".join(Group(r.name, r.node).full() for r in rules))
        self._prefix = Pattern("|".join(r.node.prefix() for r in rules), capture=False)
        self._groups: dict[str, tuple[int, int | None]] = {
            r.name: (
                self._full.groupindex[r.name],
                self._full.groupindex.get(f"{r.name}_v"),
            )
            for r in rules
        }
        self._order = sorted((g, name) for name, (g, _) in self._groups.items())
        self.max_hold = max(r.node.max_len() for r in rules)
        """Upper bound on ``len(text) - hold_from(text)``."""

    @property
    def categories(self) -> frozenset[Category]:
        """The categories this detector reports."""
        return self._categories

    def candidates(self, text: str, pos: int = 0) -> list[Candidate]:
        """Rule matches in ``text[pos:]`` (non-overlapping, in order) with their PHI spans."""
        out: list[Candidate] = []
        for spans in self._full.finditer(text, pos):
            name = next(n for g, n in self._order if spans[g][0] >= 0)
            rule = self._rules[name]
            vstart, vend = spans[0]
            value_group = self._groups[name][1]
            if value_group is not None and spans[value_group][0] >= 0:
                vstart, vend = spans[value_group]
            found = tuple(
                Span(vstart + s, vstart + e, cat)
                for s, e, cat in rule.validate(text[vstart:vend])
                if cat in self._categories and e > s
            )
            out.append(Candidate(spans[0][0], spans[0][1], found))
        return out

    def find(self, text: str) -> list[Span]:
        """Every PHI span in ``text``, in order, non-overlapping."""
        return [span for cand in self.candidates(text) for span in cand.spans]

    def hold_from(self, text: str, pos: int = 0) -> int:
        """The earliest index ``i >= pos`` such that ``text[i:]`` is a non-empty prefix of some
        rule match starting at ``i`` (a match could still start there or grow), else
        ``len(text)``."""
        return self._prefix.earliest_full(text, max(pos, len(text) - self.max_hold))
