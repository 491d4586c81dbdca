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
def soft_words() -> frozenset[str]:
    """Names that are also common words, months, eponyms or places (hand-written): names only
    beside another name, after a title or after a cue."""
    return _read("softwords.txt")


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
    stop_words()
    soft_words()
    first_names()
    surnames()
    cities()


TITLES = frozenset({"Mr.", "Mrs.", "Ms.", "Mx.", "Dr.", "Prof.", "Miss"})
"""Tokens after which capitalised words are a name whatever the dictionaries say."""

Tokens = list[tuple[int, int, str]]


def _tokens(text: str) -> Tokens:
    out: Tokens = []
    pos = 0
    for word in text.split(" "):
        out.append((pos, pos + len(word), word))
        pos += len(word) + 1
    return out


def _base(word: str) -> str:
    return word.removesuffix("'s")


def _is_initial(word: str) -> bool:
    return len(word) == 2 and word[1] == "." and word[0].isupper()


def _nameish(word: str) -> bool:
    """May continue a name: an initial or any capitalised word that is not a stop word."""
    return _is_initial(word) or (_base(word) not in stop_words() and word not in TITLES)


def _city_at(toks: Tokens, i: int) -> int:
    """Number of tokens from ``i`` that spell a known city (0 if none); longest first."""
    known = cities()
    for k in (3, 2, 1):
        if i + k <= len(toks) and " ".join(t[2] for t in toks[i : i + k]) in known:
            return k
    return 0


def _known(word: str) -> bool:
    return word in first_names() or word in surnames()


def _name_at(toks: Tokens, i: int) -> int:
    """Number of tokens from ``i`` that form a name (0 if none): a dictionary first name with up
    to two following name-like tokens (a soft first name needs a known name next to it), or a
    lone dictionary surname that is not a soft word."""
    word = _base(toks[i][2])
    nxt = _base(toks[i + 1][2]) if i + 1 < len(toks) else ""
    if word in first_names():
        if word in soft_words() and not _known(nxt):
            return 0
        j = i + 1
        while j < len(toks) and j < i + 3 and _nameish(toks[j][2]):
            j += 1
        return j - i
    if word in soft_words() and _known(nxt):  # "Mark Lawrence", "Ewing" after a first name
        return 2
    return 1 if word in surnames() and word not in soft_words() else 0


def _full_name_at(toks: Tokens, i: int) -> bool:
    """A first name followed by a known name ("Austin Scott"): a person before a city."""
    nxt = _base(toks[i + 1][2]) if i + 1 < len(toks) else ""
    return _base(toks[i][2]) in first_names() and _known(nxt)


def _following(toks: Tokens, i: int, limit: int = 3) -> int:
    """Number of name-like tokens from ``i`` (at most ``limit``)."""
    j = i
    while j < len(toks) and j < i + limit and _nameish(toks[j][2]):
        j += 1
    return j - i


def _span(toks: Tokens, i: int, k: int, category: Category) -> tuple[int, int, Category]:
    end = toks[i + k - 1]
    return (toks[i][0], end[1] - (2 if end[2].endswith("'s") else 0), category)


def classify_run(text: str) -> list[tuple[int, int, Category]]:
    """Names and cities inside a run of capitalised words (offsets relative to ``text``)."""
    toks = _tokens(text)
    out: list[tuple[int, int, Category]] = []
    i = 0
    while i < len(toks):
        if toks[i][2] in TITLES and (k := _following(toks, i + 1)):
            out.append(_span(toks, i + 1, k, Category.NAME))
            i += 1 + k
        elif not _full_name_at(toks, i) and (k := _city_at(toks, i)):
            out.append(_span(toks, i, k, Category.LOCATION))
            i += k
        elif k := _name_at(toks, i):
            out.append(_span(toks, i, k, Category.NAME))
            i += k
        else:
            i += 1
    return out


def classify_cued(text: str) -> list[tuple[int, int, Category]]:
    """A run after a cue such as ``patient`` or ``daughter``: a name (soft words included) up to
    the first stop word; nothing if it starts with one (``patient Hospital``)."""
    toks = _tokens(text)
    k = _following(toks, 0)
    return [_span(toks, 0, k, Category.NAME)] if k else []
