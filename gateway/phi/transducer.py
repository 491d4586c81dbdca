"""Streaming transducers over one text stream: ``feed(chunk) -> str`` and ``flush() -> str``.

* ``Reidentifier`` (``phi.md`` §2.3) turns issued placeholders back into originals for callers
  allowed to see PHI, tolerating the mutations models make (case, spaces, underscores or hyphens,
  missing brackets, markdown emphasis); placeholders never issued pass through unchanged.
* ``Masker`` (§2.4) replaces PHI the model generated, and verbatim (case-insensitive) echoes of the
  conversation's originals, with placeholders, for everyone else.

Both share one safe-cut rule: text is emitted only up to a cut before which nothing can change --
no match could still start at or before the cut and reach past it, and no known match spans it.
"Could still start or grow" is a hard partial match (``grammar`` prefix languages for patterns,
trie prefix lookups for originals), so hold-back is bounded by the longest pattern or original and
is in practice the unfinished tail word.

Invariants: for every split of a text, ``"".join(feed(p) for p in parts) + flush()`` equals
``feed(text) + flush()``; the state is the unemitted tail plus one character of left context (for
word boundaries) and what is already known about the tail (where the last hold search stopped;
for the masker, its final matches and where its match chain resumes), so work per chunk follows
the new text, not the held text; no I/O. Any internal error raises ``RedactionFailed`` (fail
closed).
One instance per choice and content field; the caller routes deltas.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Protocol

import ahocorasick

from gateway.errors import GatewayError, RedactionFailed
from gateway.phi.categories import Category
from gateway.phi.detectors import Candidate, Detector, Span
from gateway.phi.engine import Pattern, Tail
from gateway.phi.grammar import B, Group, Lit, Node, Seq, alt, rep, seq
from gateway.phi.redactor import PlaceholderBook

#: (start, end, replacement) over the scanned text; the replacement is produced only when the edit
#: is emitted, so placeholders are issued in emission order, never for text still held.
Edit = tuple[int, int, Callable[[], str]]


class Transducer(Protocol):
    """A pure text stream transformer with bounded hold-back."""

    def feed(self, text: str) -> str:
        """Take the next chunk; return what may be emitted now."""
        ...

    def flush(self) -> str:
        """End of stream: return everything still held, transformed."""
        ...


class _SafeCut:
    """Buffering and the cut rule; subclasses say what matches and where a match may start."""

    __slots__ = ("_buf", "_ctx", "_failed", "_viable")

    def __init__(self) -> None:
        self._buf = ""
        self._ctx = ""
        self._failed = False
        self._viable = 0
        """The last hold point, relative to the buffer's start. Positions before it could not
        begin a match then and cannot now (no text appended makes a non-prefix a prefix), so
        the next hold search resumes there."""

    def _scan(self, text: str, pos: int) -> tuple[list[tuple[int, int]], list[Edit]]:
        """Match extents and the edits inside them, for matches in ``text[pos:]``."""
        raise NotImplementedError

    def _hold(self, text: str, first: int) -> int:
        """The earliest index ``>= first`` from which ``text`` may still become (part of) a
        match."""
        raise NotImplementedError

    def feed(self, text: str) -> str:
        """Take the next chunk; return what may be emitted now (possibly ``""``).

        Raises:
            RedactionFailed: detection failed; nothing more may be emitted.
        """
        if self._failed:
            raise RedactionFailed("PHI transformation of the stream failed earlier")
        if not text:
            return ""
        return self._step(self._ctx + self._buf + text, final=False)

    def flush(self) -> str:
        """Return everything still held, transformed; the transducer is then empty.

        Raises:
            RedactionFailed: detection failed.
        """
        if self._failed:
            raise RedactionFailed("PHI transformation of the stream failed earlier")
        if not self._buf:
            return ""
        return self._step(self._ctx + self._buf, final=True)

    def _resolve(
        self, text: str, pos: int, *, final: bool
    ) -> tuple[int, list[tuple[int, int]], list[Edit]]:
        """The cut before settling, the match extents and the edits for ``text[pos:]``."""
        extents, edits = self._scan(text, pos)
        return (len(text) if final else self._resumed_hold(text, pos)), extents, edits

    def _resumed_hold(self, text: str, pos: int) -> int:
        hold = self._hold(text, pos + self._viable)
        self._viable = hold - pos
        return hold

    def _advance(self, cut: int, pos: int) -> None:
        """The buffer now starts at ``text[cut]`` (``pos`` was its previous start)."""
        self._viable = max(self._viable - (cut - pos), 0)

    def _step(self, text: str, *, final: bool) -> str:
        pos = len(self._ctx)
        try:
            cut, extents, edits = self._resolve(text, pos, final=final)
            if extents:
                cut = _settle(cut, extents)
                out = _apply(text, pos, cut, edits)
            else:
                out = text[pos:cut]
            self._advance(cut, pos)
        except Exception as exc:  # PHI: any matcher failure fails closed, for good
            self._failed = True
            if isinstance(exc, GatewayError):
                raise
            raise RedactionFailed("PHI transformation of the stream failed") from exc
        self._ctx = text[max(cut - 1, 0) : cut]
        self._buf = text[cut:]
        return out

    @property
    def held(self) -> int:
        """Characters received but not yet emitted."""
        return len(self._buf)


def _settle(cut: int, extents: list[tuple[int, int]]) -> int:
    """Move ``cut`` back until no extent strictly contains it."""
    moved = True
    while moved:
        moved = False
        for start, end in extents:
            if start < cut < end:
                cut, moved = start, True
    return cut


def _apply(text: str, pos: int, cut: int, edits: list[Edit]) -> str:
    out: list[str] = []
    last = pos
    for start, end, replacement in sorted(edits, key=lambda e: (e[0], -e[1])):
        if start < last or end > cut:
            continue
        out.append(text[last:start])
        out.append(replacement())
        last = end
    out.append(text[last:cut])
    return "".join(out)


# --- re-identification ----------------------------------------------------------------------

_MARK = r"[\s*`_]"
_SEP = rep(r"[\s_*`\-\x{2010}\x{2011}]", 0, 3)


def _category_node(category: Category) -> Seq:
    parts = category.value.split("_")
    items: list[Node] = [Lit(parts[0], ci=True)]
    for part in parts[1:]:
        items += [rep(r"[\s_\-\x{2010}\x{2011}]", 0, 2), Lit(part, ci=True)]
    return seq(*items)


_PLACEHOLDER = seq(
    alt(seq("[", rep(_MARK, 0, 3)), B),
    Lit("PHI", ci=True),
    _SEP,
    Group("cat", alt(*(_category_node(c) for c in Category))),
    _SEP,
    Group("num", rep(r"\d", 1, 6)),
    alt(seq(rep(_MARK, 0, 3), "]"), B),
)
_CANONICAL = {c.value.replace("_", ""): c.value for c in Category}


class Reidentifier(_SafeCut):
    """Issued placeholders (also mutated) -> originals; holds only a possible placeholder prefix."""

    __slots__ = ("_originals",)

    _full = Pattern(_PLACEHOLDER.full(), max_mem=16 << 20)
    _prefix = Tail(_PLACEHOLDER.prefix(), max_mem=16 << 20)
    _cat = _full.groupindex["cat"]
    _num = _full.groupindex["num"]
    max_hold = _PLACEHOLDER.max_len()

    def __init__(self, originals: Mapping[str, str]) -> None:
        super().__init__()
        self._originals = dict(originals)

    def _scan(self, text: str, pos: int) -> tuple[list[tuple[int, int]], list[Edit]]:
        extents: list[tuple[int, int]] = []
        edits: list[Edit] = []
        if text.isascii() and "phi" not in text.lower():
            return extents, edits  # every placeholder form contains "phi" (ASCII case-insensitive)
        for spans in self._full.finditer(text, pos):
            start, end = spans[0]
            extents.append((start, end))
            cat_start, cat_end = spans[self._cat]
            num_start, num_end = spans[self._num]
            cat = "".join(ch for ch in text[cat_start:cat_end].upper() if ch.isalnum())
            canonical = f"[PHI_{_CANONICAL.get(cat, cat)}_{int(text[num_start:num_end])}]"
            original = self._originals.get(canonical)
            if original is not None:
                edits.append((start, end, functools.partial(str, original)))
        return extents, edits

    def _hold(self, text: str, first: int) -> int:
        start = max(first, len(text) - self.max_hold)
        return self._prefix.earliest(text, start)


# --- masking --------------------------------------------------------------------------------

_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
MIN_ECHO_CHARS = 3
"""Originals shorter than this are not matched as echoes (too many false hits)."""


def _fold(text: str) -> str:
    """ASCII case folding; keeps every index (unlike ``str.lower`` on some non-ASCII)."""
    return text.translate(_LOWER)


class Echoes:
    """The originals a masker catches verbatim (ASCII case-insensitively): one Aho-Corasick
    automaton, built once per answer and shared by its maskers (immutable once built)."""

    __slots__ = ("automaton", "first", "longest")

    def __init__(self, originals: Mapping[str, str]) -> None:
        self.automaton = ahocorasick.Automaton()
        self.longest = 0
        self.first: set[str] = set()
        for placeholder, original in originals.items():
            key = _fold(original)
            if len(key) >= MIN_ECHO_CHARS and key not in self.automaton:
                self.automaton.add_word(key, (len(key), placeholder))
                self.longest = max(self.longest, len(key))
                self.first.add(key[0])
        if self.longest:
            self.automaton.make_automaton()


class Masker(_SafeCut):
    """Generated PHI and echoes of originals -> placeholders (issued through ``book``).

    Detection resumes where the last feed stopped instead of rescanning what is held: rule
    matches are found by ``Detector.scan`` only below the detector's hold point, where they are
    final, and kept (relative to the buffer) until emitted; ``hold_from`` resumes from its last
    answer. Echoes of originals are rescanned (Aho-Corasick over the held text, cheap).
    """

    __slots__ = ("_book", "_chain", "_detector", "_echo", "_echo_first", "_echo_len",
                 "_echo_viable", "_found", "_reveal")  # fmt: skip

    def __init__(
        self,
        detector: Detector,
        book: PlaceholderBook,
        reveal: Mapping[str, str] | None = None,
        echoes: Echoes | None = None,
    ) -> None:
        """``reveal``: for a caller allowed to see PHI, placeholder -> original; a placeholder
        found there is emitted as its original at once (what the re-identifier after this
        masker would turn it back into), so the re-identifier never parses it. ``echoes``:
        built from ``book``'s originals (default: built here)."""
        super().__init__()
        self._detector = detector
        self._book = book
        self._reveal = dict(reveal) if reveal else {}
        self._found: list[Candidate] = []
        """Final rule matches not yet emitted, offsets relative to the buffer's start."""
        self._chain = 0
        """Where the match chain resumes, relative to the buffer's start."""
        self._echo_viable = 0
        """``_viable`` for echoes of originals."""
        echoes = Echoes(book.originals) if echoes is None else echoes
        self._echo = echoes.automaton
        self._echo_len = echoes.longest
        self._echo_first = echoes.first

    @property
    def max_hold(self) -> int:
        """Upper bound on the characters held back."""
        return max(self._detector.max_hold, self._echo_len)

    def _hold(self, text: str, first: int) -> int:
        return self._detector.hold_from(text, first)

    def _resolve(
        self, text: str, pos: int, *, final: bool
    ) -> tuple[int, list[tuple[int, int]], list[Edit]]:
        folded = _fold(text) if self._echo_len else ""
        cut = len(text)
        if not final:
            cut = self._resumed_hold(text, pos)
            if self._echo_len:
                cut = self._echo_hold(folded, pos, cut)
        found, chain = self._detector.scan(text, pos + self._chain, cut)
        self._chain = chain - pos
        cands = [_shift(c, pos) for c in self._found] + found
        self._found = cands
        extents = [(c.start, c.end) for c in cands]
        edits: list[Edit] = []
        for cand in cands:
            for span in cand.spans:
                issue = functools.partial(self._issue, span.category, text[span.start : span.end])
                edits.append((span.start, span.end, issue))
        if self._echo_len:
            self._echo_matches(folded, pos, extents, edits)
        return cut, extents, edits

    def _issue(self, category: Category, value: str) -> str:
        return self._revealed(self._book.replacement(category, value))

    def _revealed(self, placeholder: str) -> str:
        return self._reveal.get(placeholder, placeholder)

    def _advance(self, cut: int, pos: int) -> None:
        # Offsets become relative to the new buffer start ``cut``; emitted matches end <= cut.
        super()._advance(cut, pos)
        self._found = [_shift(c, -cut) for c in self._found if c.start >= cut]
        self._chain -= cut - pos
        self._echo_viable = max(self._echo_viable - (cut - pos), 0)

    def _echo_matches(
        self, folded: str, pos: int, extents: list[tuple[int, int]], edits: list[Edit]
    ) -> None:
        # PHI: echoes match anywhere, word boundaries or not: a leak costs more than masking
        # an original inside a longer word.
        for last, (length, placeholder) in self._echo.iter(folded, pos):
            start, end = last + 1 - length, last + 1
            if start < pos:  # pragma: no cover - began in emitted context; the hold rule forbids it
                continue
            extents.append((start, end))
            edits.append((start, end, functools.partial(self._revealed, placeholder)))

    def _echo_hold(self, folded: str, pos: int, hold: int) -> int:
        """The earliest index before ``hold`` where an original's echo may still begin."""
        first = max(pos + self._echo_viable, len(folded) - self._echo_len + 1)
        for start in range(first, hold):
            if folded[start] in self._echo_first and self._echo.match(folded[start:]):
                self._echo_viable = start - pos
                return start
        self._echo_viable = max(hold, first) - pos
        return hold


def _shift(cand: Candidate, delta: int) -> Candidate:
    """``cand`` with every offset moved by ``delta``."""
    if not delta:
        return cand
    spans = tuple(Span(s.start + delta, s.end + delta, s.category) for s in cand.spans)
    return Candidate(cand.start + delta, cand.end + delta, spans)


def reidentify_text(text: str, originals: Mapping[str, str]) -> str:
    """Whole-text re-identification (the reference for the streamed result)."""
    t = Reidentifier(originals)
    return t.feed(text) + t.flush()


def mask_text(text: str, detector: Detector, book: PlaceholderBook) -> str:
    """Whole-text masking (the reference for the streamed result)."""
    t = Masker(detector, book)
    return t.feed(text) + t.flush()
