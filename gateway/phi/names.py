"""Name and place dictionaries, and the validators that find names in runs of capitalised words.

The dictionaries are committed data files (``gateway/phi/data``; provenance in their headers),
read once on first use -- never at import, never from the network. Lookups are exact set
membership on tokens the RE2 candidate pattern already delimited, so matching stays linear.
Invariant: words in ``stop_words()`` (common English words, eponyms, months) are never names on
their own.
"""

from __future__ import annotations

import functools
from importlib import resources

from gateway.phi.categories import Category


def _read(name: str) -> frozenset[str]:
    text = resources.files("gateway.phi").joinpath("data", name).read_text(encoding="utf-8")
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


@functools.cache
def stop_words() -> frozenset[str]:
    """Capitalised words that are never names on their own (hand-written)."""
    return _read("stopwords.txt")


@functools.cache
def first_names() -> frozenset[str]:
    """Given names (Faker en_US), without stop words."""
    return _read("first_names.txt") - stop_words()


@functools.cache
def surnames() -> frozenset[str]:
    """Family names (Faker en_US), without stop words."""
    return _read("surnames.txt") - stop_words()


@functools.cache
def cities() -> frozenset[str]:
    """Large US cities (hand-written list)."""
    return _read("cities.txt")


def load() -> None:
    """Read every dictionary now (detectors call this at construction, not per request)."""
    first_names()
    surnames()
    cities()


def _tokens(text: str) -> list[tuple[int, int, str]]:
    out: list[tuple[int, int, str]] = []
    pos = 0
    for word in text.split(" "):
        out.append((pos, pos + len(word), word))
        pos += len(word) + 1
    return out


def _base(word: str) -> str:
    return word.removesuffix("'s")


def _is_initial(word: str) -> bool:
    return len(word) == 2 and word[1] == "." and word[0].isupper()


def _city_at(toks: list[tuple[int, int, str]], i: int) -> int:
    """Number of tokens from ``i`` that spell a known city (0 if none); longest first."""
    known = cities()
    for k in (3, 2, 1):
        if i + k <= len(toks) and " ".join(t[2] for t in toks[i : i + k]) in known:
            return k
    return 0


def _name_at(toks: list[tuple[int, int, str]], i: int) -> int:
    """Number of tokens from ``i`` that form a name (0 if none): a dictionary first name with up
    to two following capitalised tokens or initials, or a lone dictionary surname."""
    word = _base(toks[i][2])
    if word in first_names():
        j = i + 1
        while (
            j < len(toks)
            and j < i + 3
            and (_is_initial(toks[j][2]) or _base(toks[j][2]) not in stop_words())
        ):
            j += 1
        return j - i
    if word in surnames():
        return 1
    return 0


def classify_run(text: str) -> list[tuple[int, int, Category]]:
    """Names and cities inside a run of capitalised words (offsets relative to ``text``)."""
    toks = _tokens(text)
    out: list[tuple[int, int, Category]] = []
    i = 0
    while i < len(toks):
        if k := _city_at(toks, i):
            out.append((toks[i][0], toks[i + k - 1][1], Category.LOCATION))
            i += k
        elif k := _name_at(toks, i):
            end = toks[i + k - 1]
            out.append((toks[i][0], end[1] - (2 if end[2].endswith("'s") else 0), Category.NAME))
            i += k
        else:
            i += 1
    return out


def classify_cued(text: str) -> list[tuple[int, int, Category]]:
    """A run after a cue such as ``patient`` or ``daughter``: a name unless it starts with a stop
    word (``patient Hospital``), up to the first stop word."""
    toks = _tokens(text)
    end = 0
    for start, stop, word in toks:
        if _base(word) in stop_words() and not _is_initial(word):
            break
        end = stop - (2 if word.endswith("'s") else 0)
        del start
    return [(0, end, Category.NAME)] if end else []
