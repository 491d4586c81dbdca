"""The ASCII fast path over the RE2 binding gives exactly the public API's spans."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from gateway.phi.engine import Pattern

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
