"""Pattern grammar: one tree renders both an RE2 pattern and its prefix language.

RE2 matches in linear time but has no partial matching, which the streaming masker needs to know
where a match could still start or grow (``phi.md`` §2.2 failures 4 and 11). Patterns are therefore
written as small trees; each node renders

* ``full()``: the regular expression itself, and
* ``prefix()``: a regular expression for every prefix of every string ``full()`` matches, the empty
  string included (a hard partial match, not the soft one of ``regex``/PCRE2).

Invariants: every node has a finite ``max_len`` (all repetitions are bounded), so a held possible
prefix is never longer than the longest pattern; ``prefix()`` never contains capturing groups.
Zero-width word boundaries render as nothing in the prefix language (a liberal choice: holding a
little more is safe, emitting too early is not).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class Node:
    """A pattern tree node."""

    __slots__ = ()

    def full(self) -> str:
        """The regular expression (RE2 syntax)."""
        raise NotImplementedError

    def prefix(self, *, loose: bool = False) -> str:
        """A regular expression matching exactly the prefixes of the strings ``full()`` matches;
        with ``loose``, the prefixes of ``loose()`` (a superset, far smaller automaton)."""
        raise NotImplementedError

    def loose(self) -> str:
        """``full()`` with every repetition unbounded above (``{lo,}``): a superset whose program
        does not copy the repeated item ``hi`` times."""
        return self.full()

    def max_len(self) -> int:
        """The longest string ``full()`` can match."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Chars(Node):
    """One character from a class, written in RE2 syntax (``r"\\d"``, ``"[A-Z]"``)."""

    cls: str

    def full(self) -> str:
        return self.cls

    def prefix(self, *, loose: bool = False) -> str:
        return f"(?:{self.cls})?"

    def max_len(self) -> int:
        return 1


@dataclass(frozen=True, slots=True)
class Lit(Node):
    """A literal string, optionally case-insensitive."""

    text: str
    ci: bool = False

    def full(self) -> str:
        body = re.escape(self.text)
        return f"(?i:{body})" if self.ci else f"(?:{body})"

    def prefix(self, *, loose: bool = False) -> str:
        body = ""
        for ch in reversed(self.text):
            body = f"(?:{re.escape(ch)}{body})?"
        return f"(?i:{body})" if self.ci else body

    def max_len(self) -> int:
        return len(self.text)


@dataclass(frozen=True, slots=True)
class Boundary(Node):
    """A word boundary (``\\b``); zero-width, so it adds nothing to the prefix language."""

    def full(self) -> str:
        return r"\b"

    def prefix(self, *, loose: bool = False) -> str:
        return ""

    def max_len(self) -> int:
        return 0


@dataclass(frozen=True, slots=True)
class Seq(Node):
    """Concatenation."""

    items: tuple[Node, ...]

    def full(self) -> str:
        return "(?:" + "".join(item.full() for item in self.items) + ")"

    def prefix(self, *, loose: bool = False) -> str:
        # P(i) = items[i] P(i+1) | prefix(items[i]); nested so the size stays linear.
        out = self.items[-1].prefix(loose=loose)
        for item in reversed(self.items[:-1]):
            whole = item.loose() if loose else item.full()
            out = f"(?:{whole}{out}|{item.prefix(loose=loose)})"
        return out

    def loose(self) -> str:
        return "(?:" + "".join(item.loose() for item in self.items) + ")"

    def max_len(self) -> int:
        return sum(item.max_len() for item in self.items)


@dataclass(frozen=True, slots=True)
class Alt(Node):
    """Alternation (leftmost-first: earlier branches win at the same start)."""

    items: tuple[Node, ...]

    def full(self) -> str:
        return "(?:" + "|".join(item.full() for item in self.items) + ")"

    def prefix(self, *, loose: bool = False) -> str:
        return "(?:" + "|".join(item.prefix(loose=loose) for item in self.items) + ")"

    def loose(self) -> str:
        return "(?:" + "|".join(item.loose() for item in self.items) + ")"

    def max_len(self) -> int:
        return max(item.max_len() for item in self.items)


@dataclass(frozen=True, slots=True)
class Rep(Node):
    """Bounded greedy repetition ``item{lo,hi}``."""

    item: Node
    lo: int
    hi: int

    def __post_init__(self) -> None:
        if not 0 <= self.lo <= self.hi or self.hi < 1:
            raise ValueError(f"bad repetition bounds {{{self.lo},{self.hi}}}")

    def full(self) -> str:
        return f"(?:{self.item.full()}){{{self.lo},{self.hi}}}"

    def prefix(self, *, loose: bool = False) -> str:
        # A prefix of item^k (k <= hi) is item^j followed by a prefix of one more item, j < hi.
        if loose:
            return f"(?:(?:{self.item.loose()})*{self.item.prefix(loose=True)})"
        head = f"(?:{self.item.full()}){{0,{self.hi - 1}}}" if self.hi > 1 else ""
        return f"(?:{head}{self.item.prefix()})"

    def loose(self) -> str:
        return f"(?:{self.item.loose()}){{{self.lo},}}"

    def max_len(self) -> int:
        return self.item.max_len() * self.hi


@dataclass(frozen=True, slots=True)
class Group(Node):
    """A named capture in ``full()``; transparent in the prefix language."""

    name: str
    item: Node

    def full(self) -> str:
        return f"(?P<{self.name}>{self.item.full()})"

    def prefix(self, *, loose: bool = False) -> str:
        return self.item.prefix(loose=loose)

    def loose(self) -> str:
        return self.item.loose()

    def max_len(self) -> int:
        return self.item.max_len()


def seq(*items: Node | str) -> Seq:
    """Concatenation; plain strings are literals."""
    return Seq(tuple(Lit(i) if isinstance(i, str) else i for i in items))


def alt(*items: Node | str) -> Alt:
    """Alternation; plain strings are literals."""
    return Alt(tuple(Lit(i) if isinstance(i, str) else i for i in items))


def words(*texts: str, ci: bool = True) -> Alt:
    """Alternation of literal words (case-insensitive by default)."""
    return Alt(tuple(Lit(t, ci=ci) for t in texts))


def opt(item: Node | str) -> Rep:
    """Zero or one."""
    return Rep(Lit(item) if isinstance(item, str) else item, 0, 1)


def rep(item: Node | str, lo: int, hi: int) -> Rep:
    """``item{lo,hi}``; a string is a character class."""
    return Rep(Chars(item) if isinstance(item, str) else item, lo, hi)


B = Boundary()
DIGIT = Chars(r"\d")
