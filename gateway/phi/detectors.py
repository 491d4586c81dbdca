"""PHI detection over text: linear-time candidate matching (RE2), validation, hard partial matches.

``Detector.candidates`` runs one leftmost-first RE2 alternation of the rules in ``patterns`` and
validates each match into PHI spans (whole texts: prompts). ``Detector.scan`` finds the same
matches by one anchored match per position that may begin one, resumable anywhere (streams).
``Detector.hold_from`` answers the streaming question no backtracking engine answers without
soft-partial pitfalls: the earliest position from which the rest of the text is a prefix of some
rule match (in a slightly looser language: holding more is safe), i.e. where a match could still
start or grow.

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
from gateway.phi.engine import Pattern, RuleSet, Spans, Starts, Tail
from gateway.phi.patterns import RULES, Rule

_CONTEXTS = ("", "a", " ")
"""Left contexts for the first-character table: start of text, after a word character, after a
non-word character."""


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


@dataclass(frozen=True, slots=True)
class _Compiled:
    rule: Rule
    pattern: Pattern
    value_group: int | None


class Detector:
    """Finds PHI of the enabled categories; immutable and shareable between streams and threads.

    Construction compiles every rule (about 80 ms): build one per category set at start-up, never
    per request.
    """

    __slots__ = (
        "_all",
        "_bounds",
        "_by_first",
        "_categories",
        "_prefix",
        "_set",
        "_starts",
        "max_hold",
    )

    def __init__(self, categories: Iterable[Category] = DEFAULT_CATEGORIES) -> None:
        self._categories = frozenset(categories)
        rules = [r for r in RULES if r.categories & self._categories]
        if not rules:
            raise ValueError("a detector needs at least one category")
        names.load()
        # Two steps per match: the whole alternation without captures finds where (a DFA), then
        # the first rule that matches there, anchored, gives the groups from its own small
        # program. Captures over the whole alternation ran RE2's NFA over a ~15k-instruction
        # program for every match (about 10 us each).
        self._bounds = Pattern("|".join(r.node.full() for r in rules), capture=False)
        self._prefix = Tail("|".join(r.node.prefix(loose=True) for r in rules))
        self._all: list[_Compiled] = []
        for r in rules:
            pattern = Pattern(r.node.full())
            self._all.append(_Compiled(r, pattern, pattern.groupindex.get(f"{r.name}_v")))
        self._set = RuleSet([r.node.full() for r in rules])
        # Rules that may start with each ASCII character, in rule order: the prefix language of
        # one character after a word character, after a space and at the start, so word
        # boundaries on either side count (a `\b` before ":" holds only after a word character).
        starts = [Pattern(r.node.prefix(loose=True), capture=False) for r in rules]
        self._by_first: dict[str, list[_Compiled]] = {
            chr(code): [
                c
                for c, p in zip(self._all, starts, strict=True)
                if any(p.matches_rest(ctx + chr(code), len(ctx)) for ctx in _CONTEXTS)
            ]
            for code in range(128)
        }
        # A superset of the positions where some rule may begin: with left context, so word
        # boundaries on either side count.
        in_word = (
            chr(c) for c in range(128) if any(p.matches_rest("a" + chr(c), 1) for p in starts)
        )
        self._starts = Starts((ch for ch, rules_at in self._by_first.items() if rules_at), in_word)
        self.max_hold = max(r.node.max_len() for r in rules)
        """Upper bound on ``len(text) - hold_from(text)``."""

    @property
    def categories(self) -> frozenset[Category]:
        """The categories this detector reports."""
        return self._categories

    def _winner(
        self, text: str, data: bytes | None, start: int, end: int
    ) -> tuple[_Compiled, Spans]:
        """The rule the leftmost-first alternation chose at ``start``: the first one, in rule
        order, that matches there at all."""
        if data is not None:
            # Fast: the rule set names every rule matching at ``start``; the first one wins.
            # Its answer is only a shortcut -- checked here, and the scan below decides.
            first = min(self._set.matching_at(data, start, self.max_hold), default=None)
            if first is not None:
                compiled = self._all[first]
                spans = compiled.pattern.match_at(text, start, data)
                if spans is not None and spans[0] == (start, end):
                    return compiled, spans
        for compiled in self._by_first.get(text[start], self._all):
            spans = compiled.pattern.match_at(text, start, data)
            if spans is not None:
                if spans[0] != (start, end):  # pragma: no cover - would be an RE2 semantics bug
                    raise RuntimeError("rule and alternation disagree on a match")
                return compiled, spans
        raise RuntimeError("no rule matches where the alternation did")  # pragma: no cover

    def candidates(self, text: str, pos: int = 0) -> list[Candidate]:
        """Rule matches in ``text[pos:]`` (non-overlapping, in order) with their PHI spans."""
        data = text.encode("ascii") if text.isascii() else None
        matches = self._bounds.finditer(text, pos)
        return [self._candidate(text, data, *bounds[0]) for bounds in matches]

    def _candidate(self, text: str, data: bytes | None, start: int, end: int) -> Candidate:
        compiled, spans = self._winner(text, data, start, end)
        vstart, vend = start, end
        value = compiled.value_group
        if value is not None and spans[value][0] >= 0:
            vstart, vend = spans[value]
        found = tuple(
            Span(vstart + s, vstart + e, cat)
            for s, e, cat in compiled.rule.validate(text[vstart:vend])
            if cat in self._categories and e > s
        )
        return Candidate(start, end, found)

    def scan(self, text: str, start: int, stop: int) -> tuple[list[Candidate], int]:
        """The leftmost-first chain of ``candidates`` resumed at ``start`` for matches starting
        before ``stop``, by one anchored match per position that may begin one: the matches and
        the position the chain continues from (``>= stop``).

        Streaming calls this only below ``hold_from``, where the rest of the text can no longer
        be a match prefix, so every match found is final. The anchored automaton is the union
        of the rules from one start, which stays small; the unanchored one ``candidates`` runs
        tracks every start at once and kept meeting new lazily built DFA states on new text.
        """
        out: list[Candidate] = []
        if start >= stop:
            return out, start
        data = text.encode("ascii") if text.isascii() else None
        positions = (
            range(start, stop) if data is None else self._starts.positions(text, start, stop)
        )
        pos = start  # where the chain continues
        for i in positions:
            if i < pos:
                continue  # inside the last match
            bounds = self._bounds.match_at(text, i, data)
            if bounds is not None:
                end = bounds[0][1]
                out.append(self._candidate(text, data, i, end))
                pos = end if end > i else i + 1
        return out, max(pos, stop)

    def find(self, text: str) -> list[Span]:
        """Every PHI span in ``text``, in order, non-overlapping."""
        return [span for cand in self.candidates(text) for span in cand.spans]

    def hold_from(self, text: str, pos: int = 0) -> int:
        """The earliest index ``i >= pos`` such that ``text[i:]`` is a non-empty prefix of some
        rule match starting at ``i`` (a match could still start there or grow), else
        ``len(text)``. Appending text never makes it smaller (a position that is no match
        prefix stays none), so a stream may resume from its last answer."""
        start = max(pos, len(text) - self.max_hold)
        return self._prefix.earliest(text, start)
