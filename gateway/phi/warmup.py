"""Start-up warm-up of the detector's automata, from the rules' own grammar.

RE2 builds DFA states lazily: the first time text takes a path through an automaton costs many
times what it costs later (profile: a first date written "28 Aug 1991" cost ~0.2 ms in one
streamed chunk). ``warm_up`` walks every automaton the stream and prompt paths use over text
generated from the rules themselves -- random strings each rule matches, in sentences of
ordinary words -- so the states real identifiers need exist before the first request. Nothing
here is tuned to any evaluation text; results never depend on it (tested).

Invariants: deterministic (a fixed seed); bounded work (a fixed number of samples per rule);
fictional strings only (random characters from each rule's classes).
"""

from __future__ import annotations

import functools
import random
import string

import re2

from gateway.phi.detectors import Detector
from gateway.phi.grammar import Alt, Boundary, Chars, Group, Lit, Node, Rep, Seq
from gateway.phi.patterns import RULES
from gateway.phi.redactor import PlaceholderBook
from gateway.phi.transducer import Masker, Reidentifier

_PRINTABLE = string.ascii_letters + string.digits + string.punctuation + " "
_FILLER = (
    "the", "patient", "was", "seen", "today", "and", "reports", "no", "new", "symptoms", ".",
    "Follow", "up", "in", "two", "weeks", ",", "continue", "current", "plan", ";", "see",
    "notes", "from", "Monday", ":", "labs", "were", "normal",
)  # fmt: skip
#: Fictional values only (555 numbers, example domains, documented test and sample numbers).
SAMPLE_TEXT = (
    "Patient Jane Q. Doe (MRN: A1234567, DOB 01/02/1934) was seen by Dr. John Roe on March 3rd, "
    "2021 and 2021-07-14. Call (212) 555-0199, +1 415-555-0123, fax: 212-555-0100 or email "
    "jane.doe@example.org, https://portal.example.org/p/1?a=b www.example.com 192.168.0.1 "
    "2001:db8::1. SSN 123-45-6789, member ID ABC123456789, Medicare 1EG4-TE5-MK73, card 4111 1111 "
    "1111 1111, NPI 1234567893, DEA AB1234563, VIN 1HGCM82633A004352, license plate 7ABC123, "
    "serial number PM-20931-X, claim # CLM-0099812. A 93-year-old woman, aged 101, lives at 123 "
    "Main Street, Apt 4B, Springfield, IL 62704, PO Box 12, near Mercy General Hospital in "
    "Chicago. The daughter Emily Davis and Mrs. Garcia agreed; ask [PHI_NAME_1] or phi name 2. "
)

SEED = 20_261_123
SAMPLES_PER_RULE = 6
HOLD_SAMPLES_PER_RULE = 40
"""The hold search (a reverse DFA over the text's end) meets the most new states: it gets a
larger text of its own, searched at every end position (cheap: no transducer around it)."""
HOLD_WINDOW = 64
CHUNK_SIZES = (2, 5, 3, 6, 4)


@functools.cache
def _class_chars(cls: str) -> str:
    """The printable ASCII characters of an RE2 character class."""
    pattern = re2.compile(cls)
    return "".join(ch for ch in _PRINTABLE if pattern.fullmatch(ch)) or " "


def sample(node: Node, rng: random.Random) -> str:
    """A random string shaped like ``node`` (word boundaries ignored)."""
    match node:
        case Chars(cls=cls):
            return rng.choice(_class_chars(cls))
        case Lit(text=text, ci=ci):
            return text.upper() if ci and rng.random() < 0.2 else text
        case Seq(items=items):
            return "".join(sample(item, rng) for item in items)
        case Alt(items=items):
            return sample(rng.choice(items), rng)
        case Rep(item=item, lo=lo, hi=hi):
            count = rng.randint(lo, hi if rng.random() < 0.3 else min(hi, lo + 3))
            return "".join(sample(item, rng) for _ in range(count))
        case Group(item=item):
            return sample(item, rng)
        case Boundary():
            return ""
    raise TypeError(f"unknown grammar node {type(node).__name__}")  # pragma: no cover


def warm_up_text(detector: Detector, *, samples: int = SAMPLES_PER_RULE) -> str:
    """``SAMPLE_TEXT``, then sentences of filler words around ``samples`` random strings of
    every enabled rule."""
    rng = random.Random(SEED)  # noqa: S311 -- warm-up text, not secrets
    parts: list[str] = []
    for rule in RULES:
        if not rule.categories & detector.categories:
            continue
        for _ in range(samples):
            lead = " ".join(rng.choice(_FILLER) for _ in range(rng.randint(1, 3)))
            parts.append(f"{lead.capitalize()} {sample(rule.node, rng)}{rng.choice('., ;:)')} ")
    return SAMPLE_TEXT + "".join(parts)


def warm_up(detector: Detector, *, rounds: int = 2) -> None:
    """Ask the hold point at every end of a larger ``warm_up_text``; then stream the default
    one through a masker and a re-identifier in small chunks, and redact it whole, ``rounds``
    times."""
    text = warm_up_text(detector)
    wide = warm_up_text(detector, samples=HOLD_SAMPLES_PER_RULE)
    for end in range(1, len(wide) + 1):
        detector.hold_from(wide[max(0, end - HOLD_WINDOW) : end])
    for _ in range(rounds):
        detector.find(text)
        masker, reidentifier = Masker(detector, PlaceholderBook()), Reidentifier({})
        pos = i = 0
        while pos < len(text):
            chunk = text[pos : pos + CHUNK_SIZES[i % len(CHUNK_SIZES)]]
            masker.feed(chunk)
            reidentifier.feed(chunk)
            pos, i = pos + len(chunk), i + 1
        masker.flush()
        reidentifier.flush()
