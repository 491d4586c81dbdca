"""The prefix language of every pattern node accepts exactly the prefixes of its matches."""

from __future__ import annotations

import re

import pytest
import re2
from hypothesis import given, settings, strategies as st

from gateway.phi.grammar import B, Chars, Lit, Node, Rep, alt, opt, rep, seq, words

NODES: list[Node] = [
    seq(B, rep(r"\d", 3, 3), opt(Chars("[- ]")), rep(r"\d", 2, 2)),
    seq(words("mrn", "record no"), rep("[ :]", 0, 2), rep("[A-Z0-9]", 2, 5)),
    alt(seq("(", rep(r"\d", 3, 3), ")"), seq(rep(r"\d", 3, 3), "-")),
    Rep(seq(Lit("ab"), opt("c")), 1, 3),
    seq(Lit("Dr", ci=False), opt("."), " ", Chars("[A-Z]"), rep("[a-z]", 1, 4)),
]


def _compiled(node: Node) -> tuple[re2._Regexp, re2._Regexp]:
    return re2.compile(node.full()), re2.compile(node.prefix())


@pytest.mark.parametrize("node", NODES, ids=range(len(NODES)))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_prefix_of_a_match_is_in_the_prefix_language(node: Node, data: st.DataObject) -> None:
    full, prefix = _compiled(node)
    text = data.draw(st.from_regex(re.compile(node.full(), re.ASCII), fullmatch=True))
    assert full.fullmatch(text)
    assert len(text) <= node.max_len()
    for i in range(len(text) + 1):
        assert prefix.fullmatch(text[:i]), (node.full(), text[:i])


@pytest.mark.parametrize(
    ("node", "text"),
    [
        (NODES[0], "12a"),
        (NODES[1], "mrn::: "),
        (NODES[2], "(12)"),
        (NODES[3], "abcabcab c"),
        (NODES[4], "Dr. jo"),
    ],
)
def test_non_prefixes_are_rejected(node: Node, text: str) -> None:
    _, prefix = _compiled(node)
    assert prefix.fullmatch(text) is None


def test_repetition_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="bounds"):
        Rep(Lit("a"), 2, 1)
    with pytest.raises(ValueError, match="bounds"):
        Rep(Lit("a"), 0, 0)
