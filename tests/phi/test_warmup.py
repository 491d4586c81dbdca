"""The start-up warm-up: text generated from the rules' grammar, and no effect on results."""

from __future__ import annotations

import random

import re2

from gateway.phi.detectors import Detector
from gateway.phi.patterns import RULES
from gateway.phi.redactor import PlaceholderBook
from gateway.phi.transducer import mask_text
from gateway.phi.warmup import SAMPLE_TEXT, sample, warm_up, warm_up_text


def test_samples_are_shaped_like_their_rule() -> None:
    """Every rule's samples are strings its own pattern matches (at least most of them: word
    boundaries inside a rule are not generated), so warm-up walks every rule's automaton."""
    rng = random.Random(1)  # noqa: S311 -- test data
    for rule in RULES:
        pattern = re2.compile(rule.node.full())
        hits = sum(pattern.fullmatch(sample(rule.node, rng)) is not None for _ in range(20))
        assert hits >= 10, rule.name


def test_warm_up_text_is_deterministic_and_covers_only_enabled_rules() -> None:
    detector = Detector()
    text = warm_up_text(detector)
    assert text == warm_up_text(detector)
    assert text.startswith(SAMPLE_TEXT)
    assert len(text) > 4 * len(SAMPLE_TEXT)
    assert len(warm_up_text(detector, samples=1)) < len(text)


def test_warm_up_changes_no_result() -> None:
    detector = Detector()
    text = warm_up_text(detector)
    before = mask_text(text, detector, PlaceholderBook())
    warm_up(detector, rounds=1)
    assert mask_text(text, detector, PlaceholderBook()) == before
    assert "123-45-6789" not in before
    assert "jane.doe@example.org" not in before
