"""Scores the detector on the corpus: binary (PHI vs not) entity recall per category, precision,
F2, leaks after redaction, over-redaction of hard negatives.

Match rule: a gold entity is *caught* when every character of it lies inside predicted spans (any
category) -- a partial hit is a miss, because the rest leaks. A predicted span is a true positive
when it overlaps a gold entity. A *leak* is a gold value surviving the redacted text verbatim, or
after normalisation (case-folded; digits only for values with 6+ digits).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from bench.phi_eval.corpus import Example
from gateway.phi.categories import Category
from gateway.phi.detectors import Detector
from gateway.phi.redactor import PLACEHOLDER_RE, PlaceholderBook, redact_text

#: Direct identifiers for the zero-leak gate (phi.md §0).
DIRECT = frozenset(
    {Category.SSN, Category.MEDICAL_RECORD, Category.PHONE, Category.FAX, Category.EMAIL,
     Category.INSURANCE_ID}
)  # fmt: skip


@dataclass
class Score:
    gold: Counter[str] = field(default_factory=Counter)
    caught: Counter[str] = field(default_factory=Counter)
    leaks: Counter[str] = field(default_factory=Counter)
    tp: int = 0
    fp: int = 0
    negatives: int = 0
    over_redacted: int = 0
    misses: list[str] = field(default_factory=list)
    false_positives: list[str] = field(default_factory=list)

    def recall(self, category: str | None = None) -> float:
        gold = self.gold[category] if category else sum(self.gold.values())
        caught = self.caught[category] if category else sum(self.caught.values())
        return caught / gold if gold else 1.0

    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    def f2(self) -> float:
        p, r = self.precision(), self.recall()
        return 5 * p * r / (4 * p + r) if p + r else 0.0


def _leaked(value: str, redacted: str) -> bool:
    text = PLACEHOLDER_RE.sub(" ", redacted)  # placeholders carry digits of their own
    if value.casefold() in text.casefold():
        return True
    digits = "".join(ch for ch in value if ch.isdigit())
    return len(digits) >= 6 and digits in "".join(ch for ch in text if ch.isdigit())


def score(examples: list[Example], detector: Detector) -> Score:
    """Score ``detector`` on ``examples``."""
    s = Score()
    for ex in examples:
        spans = detector.find(ex.text)
        covered = [False] * len(ex.text)
        for span in spans:
            for i in range(span.start, span.end):
                covered[i] = True
            if any(span.start < e.end and e.start < span.end for e in ex.entities):
                s.tp += 1
            else:
                s.fp += 1
                s.false_positives.append(f"{span.category}: {ex.text[span.start : span.end]!r}")
        if ex.negative:
            s.negatives += 1
            s.over_redacted += bool(spans)
        redacted = redact_text(ex.text, detector, PlaceholderBook())
        for e in ex.entities:
            s.gold[e.category] += 1
            if all(covered[e.start : e.end]):
                s.caught[e.category] += 1
            else:
                s.misses.append(f"{e.category}: {e.value!r} in {ex.text!r}")
            if _leaked(e.value, redacted):
                s.leaks[e.category] += 1
    return s
