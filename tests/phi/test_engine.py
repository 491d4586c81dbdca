"""The ASCII fast path over the RE2 binding gives exactly the public API's spans."""

from __future__ import annotations

import functools

from hypothesis import given, settings, strategies as st

from gateway.phi.detectors import Detector
from gateway.phi.engine import Pattern, Starts, Tail
from gateway.phi.transducer import _PLACEHOLDER, Reidentifier

PATTERN = Pattern(r"(?P<w>\b[A-Z][a-z]+)|(?P<n>\d{3}-\d{2})|(?P<e>x*)")
PREFIX = Pattern(r"(?:\b\d(?:\d(?:-\d?)?)?|[A-Z][a-z]*)", capture=False)
ALPHABET = "Ab9-x é"


@settings(max_examples=150, deadline=None)
@given(text=st.text(alphabet=ALPHABET, max_size=30), pos=st.integers(0, 31))
def test_fast_and_public_paths_agree(text: str, pos: int) -> None:
    pos = min(pos, len(text))
    fast = list(PATTERN.finditer(text, pos))
    slow = list(PATTERN.finditer(text, pos, fast=False))
    assert fast == slow
    assert PREFIX.earliest_full(text, pos) == PREFIX.earliest_full(text, pos, fast=False)


def test_spans_and_groups() -> None:
    spans = list(PATTERN.finditer("Ab 123-45"))
    named = PATTERN.groupindex
    assert spans[0][0] == (0, 2)
    assert spans[0][named["w"]] == (0, 2)
    assert any(s[named["n"]] == (3, 9) for s in spans)
    assert PATTERN.programsize > 0
    assert PREFIX.earliest_full("see 12", 0) == 4
    assert PREFIX.earliest_full("see ", 0) == 4


_DETECTOR_TEXT = st.text(
    alphabet="Dr. JaneDoe (212) 555-0199 MRN: A12 [PHI_NAME_1] phi é\n", max_size=60
)


@functools.cache
def _detector() -> Detector:
    return Detector()


@functools.cache
def _languages() -> list[tuple[Tail, Pattern, int]]:
    """(one-search tail, the same language compiled plain, max hold) of both transducers."""
    d = _detector()
    rules = [c.rule for c in d._all]
    detector = "|".join(r.node.prefix(loose=True) for r in rules)
    placeholder = _PLACEHOLDER.prefix()
    return [
        (d._prefix, Pattern(detector, capture=False), d.max_hold),
        (Reidentifier._prefix, Pattern(placeholder, capture=False), Reidentifier.max_hold),
    ]


@settings(max_examples=200, deadline=None)
@given(text=_DETECTOR_TEXT, pos=st.integers(0, 61))
def test_one_tail_search_finds_the_earliest_full_match(text: str, pos: int) -> None:
    """The end-anchored search gives what trying every position in turn gives (detector and
    placeholders), word boundaries seen from before ``pos``."""
    pos = min(pos, len(text))
    for tail, plain, max_hold in _languages():
        start = max(pos, len(text) - max_hold)
        assert tail.earliest(text, start) == plain.earliest_full(text, start)


def test_start_positions_see_the_character_before_the_search() -> None:
    starts = Starts("ab", "b")
    assert list(starts.positions("xa a b xb", 1, 9)) == [3, 5, 8]
    assert list(starts.positions("xa a b xb", 4, 6)) == [5]
    assert list(Starts("", "").positions("abc", 0, 3)) == []


@settings(max_examples=200, deadline=None)
@given(text=_DETECTOR_TEXT, cut=st.integers(0, 61), split=st.integers(0, 61))
def test_scan_resumed_anywhere_equals_candidates(text: str, cut: int, split: int) -> None:
    """The anchored per-position chain (in two legs) finds exactly the unanchored matches."""
    split = min(split, len(text))
    first, resume = _detector().scan(text, 0, split)
    rest, end = _detector().scan(text, resume, len(text))
    assert first + rest == _detector().candidates(text)
    assert end >= len(text)


@settings(max_examples=200, deadline=None)
@given(text=_DETECTOR_TEXT, more=_DETECTOR_TEXT)
def test_appending_text_never_moves_the_hold_back(text: str, more: str) -> None:
    """What the masker's resumed hold search relies on: a position that is no match prefix
    stays none whatever follows."""
    d = _detector()
    before = d.hold_from(text)
    after = d.hold_from(text + more)
    assert after >= before


def test_a_match_starting_after_a_word_character_finds_its_rule() -> None:
    """Regression: ``H::1`` made ``candidates`` raise ("no rule matches where the alternation
    did"), because the first-character table was built without left context."""
    spans = _detector().find("H::1 and fe80::1")
    assert [s.category.value for s in spans] == ["IP_ADDRESS", "IP_ADDRESS"]
