"""Streaming transducers: split invariance, no leaks in any emitted prefix, re-identification of
mutated and split placeholders, bounded hold-back, fail closed."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from gateway.errors import RedactionFailed
from gateway.phi.detectors import Detector
from gateway.phi.redactor import PlaceholderBook
from gateway.phi.transducer import (
    Masker,
    Reidentifier,
    Transducer,
    mask_text,
    reidentify_text,
)
from gateway.privacy.output import Chain

DETECTOR = Detector()
ORIGINALS = {
    "[PHI_NAME_1]": "Zork Quxley",
    "[PHI_SSN_1]": "123-45-6789",
    "[PHI_EMAIL_1]": "zq@example.org",
    "[PHI_MEDICAL_RECORD_1]": "A-77123",
    "[PHI_NAME_2]": "Mary Johnson",
}
PROPS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Fragments: PHI the detectors know, vault originals in other cases, near-misses and filler.
FRAGMENTS = [
    "Patient ", "John Smith", " was seen by ", "Dr. James ", "Brown", " on ", "03/04/2021",
    ", MRN: ", "00123456", " call ", "(212) 555-0199", " or ", "zq@exa", "mple.org", "ZORK QUXLEY",
    "zork quxley", " SSN ", "123-45-", "6789", " aged 95", " aged 45", " in 2019 ", "metformin ",
    "https://x.example.org/p?q=1", " 192.168.", "1.20 ", "a-77123", ". ", "\n", "Mary ", "Johnson",
    "[PHI_NAME_1]", " ok", "é", "日本", " 62704", "IL ", "Springfield, ",
]  # fmt: skip
TEXTS = st.lists(st.sampled_from(FRAGMENTS), max_size=14).map("".join)
NOISE = st.text(alphabet="0123456789-(). @:/abcMRNSDr[]_PHIé ", max_size=60)


def _chunks(text: str, cuts: list[int]) -> list[str]:
    points = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


def _stream(t: Transducer, parts: list[str]) -> tuple[str, list[str]]:
    emitted = [t.feed(p) for p in parts]
    return "".join(emitted) + t.flush(), emitted


def _masker() -> Masker:
    return Masker(DETECTOR, PlaceholderBook(ORIGINALS))


@PROPS
@given(text=st.one_of(TEXTS, NOISE), cuts=st.lists(st.integers(0, 500), max_size=12))
def test_masking_streamed_equals_whole_text(text: str, cuts: list[int]) -> None:
    whole = mask_text(text, DETECTOR, PlaceholderBook(ORIGINALS))
    assert _stream(_masker(), _chunks(text, cuts))[0] == whole


@PROPS
@given(text=TEXTS, cuts=st.lists(st.integers(0, 500), max_size=12))
def test_no_emitted_prefix_contains_an_original(text: str, cuts: list[int]) -> None:
    t = _masker()
    emitted = ""
    for part in _chunks(text, cuts):
        emitted += t.feed(part)
        assert t.held <= t.max_hold
        for original in ORIGINALS.values():
            assert original.lower() not in emitted.lower()
    emitted += t.flush()
    for original in ORIGINALS.values():
        assert original.lower() not in emitted.lower()


@PROPS
@given(text=st.one_of(TEXTS, NOISE), cuts=st.lists(st.integers(0, 500), max_size=12))
def test_revealing_masker_equals_masker_then_reidentifier(text: str, cuts: list[int]) -> None:
    """The masker's shortcut for callers allowed to see PHI (emit the original of a known
    placeholder at once) changes nothing in what the chain emits, whole or streamed."""
    parts = _chunks(text, cuts)
    plain = Chain(_masker(), Reidentifier(ORIGINALS))
    revealing = Chain(Masker(DETECTOR, PlaceholderBook(ORIGINALS), ORIGINALS),
                      Reidentifier(ORIGINALS))  # fmt: skip
    expected = _stream(plain, parts)[0]
    assert _stream(revealing, parts)[0] == expected
    whole = Masker(DETECTOR, PlaceholderBook(ORIGINALS), ORIGINALS)
    assert reidentify_text(whole.feed(text) + whole.flush(), ORIGINALS) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Patient John Smith (MRN: 00123456) was seen by Dr. James Brown on 03/04/2021; "
        "call (212) 555-0199, email zq@example.org, SSN 123-45-6789, aged 95.",
        "ZORK QUXLEY said 123-45-6789 to [PHI_NAME_1] at https://x.example.org/p?q=1.",
    ],
)
def test_masking_every_two_way_split_and_char_by_char(text: str) -> None:
    whole = mask_text(text, DETECTOR, PlaceholderBook(ORIGINALS))
    for i in range(len(text) + 1):
        assert _stream(_masker(), [text[:i], text[i:]])[0] == whole
    assert _stream(_masker(), list(text))[0] == whole
    for original in ORIGINALS.values():
        assert original.lower() not in whole.lower()


def test_masking_keeps_placeholders_and_masks_generated_phi() -> None:
    out = mask_text(
        "[PHI_NAME_1] lives with Mary Johnson, SSN 212-45-6789.",
        DETECTOR,
        PlaceholderBook(ORIGINALS),
    )
    assert out == "[PHI_NAME_1] lives with [PHI_NAME_2], SSN [PHI_SSN_2]."


def test_masking_holds_a_titled_name_until_the_surname_is_settled() -> None:
    t = _masker()
    assert t.feed("Seen by Dr. James ") == "Seen by "
    assert t.feed("Brown today") == "Dr. [PHI_NAME_3] "
    assert t.flush() == "today"


# --- re-identification ----------------------------------------------------------------------

MUTATIONS = [
    ("[PHI_NAME_1]", "Zork Quxley"),
    ("[phi_name_1]", "Zork Quxley"),
    ("PHI_NAME_1", "Zork Quxley"),
    ("[PHI NAME 1]", "Zork Quxley"),
    ("[ PHI-NAME-1 ]", "Zork Quxley"),
    ("**[PHI_NAME_1]**", "**Zork Quxley**"),
    ("[**PHI_SSN_1**]", "123-45-6789"),
    ("[PHI_MEDICAL RECORD_1]", "A-77123"),
    ("phi_medical_record_1", "A-77123"),
    ("[PHI_EMAIL_1]", "zq@example.org"),
    ("[PHI_NAME_7]", "[PHI_NAME_7]"),  # never issued: unchanged
    ("[PHI_NAME_12]", "[PHI_NAME_12]"),
    ("Philip", "Philip"),
    ("[note]", "[note]"),
    ("the", "the"),
    ("ph", "ph"),
    (" ", " "),
    ("é", "é"),
]


@PROPS
@given(
    picks=st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=10),
    cuts=st.lists(st.integers(0, 400), max_size=12),
)
def test_reidentified_output_equals_the_original_at_any_split(
    picks: list[tuple[str, str]], cuts: list[int]
) -> None:
    model = " ".join(m for m, _ in picks)
    expected = " ".join(e for _, e in picks)
    t = Reidentifier(ORIGINALS)
    out = ""
    for part in _chunks(model, cuts):
        out += t.feed(part)
        assert t.held <= Reidentifier.max_hold
    assert out + t.flush() == expected
    assert reidentify_text(model, ORIGINALS) == expected


def test_reidentifier_holds_only_a_possible_placeholder_prefix() -> None:
    t = Reidentifier(ORIGINALS)
    assert t.feed("Hello there, ") == "Hello there, "
    assert t.feed("[PHI_NA") == ""
    assert t.held == len("[PHI_NA")
    assert t.feed("ME_1] and [x") == "Zork Quxley and [x"
    assert t.held == 0
    assert t.feed("[") == ""
    assert t.flush() == "["
    assert t.flush() == ""


def test_every_two_way_split_of_placeholders() -> None:
    model = "A [PHI_NAME_1], b phi ssn 1; c **[PHI_MEDICAL_RECORD_1]**."
    expected = "A Zork Quxley, b 123-45-6789; c **A-77123**."
    for i in range(len(model) + 1):
        t = Reidentifier(ORIGINALS)
        assert t.feed(model[:i]) + t.feed(model[i:]) + t.flush() == expected


# --- fail closed ------------------------------------------------------------------------------


class _Broken(Detector):
    def candidates(self, text: str, pos: int = 0) -> list[Any]:
        raise RuntimeError("engine failure")

    def scan(self, text: str, start: int, stop: int) -> tuple[list[Any], int]:
        raise RuntimeError("engine failure")


def test_a_detector_error_fails_closed() -> None:
    t = Masker(_Broken(), PlaceholderBook())
    with pytest.raises(RedactionFailed):
        t.feed("SSN 123-45-6789")
    with pytest.raises(RedactionFailed):
        t.flush()


def test_empty_chunks_are_free() -> None:
    t = _masker()
    assert t.feed("") == ""
    assert t.flush() == ""
    assert t.max_hold >= DETECTOR.max_hold


def test_categories_with_digits_and_several_words_reidentify() -> None:
    originals = {"[PHI_AGE_OVER_89_1]": "95", "[PHI_IP_ADDRESS_2]": "10.0.0.7"}
    model = "age [phi age over 89 1], host PHI-IP-ADDRESS-2 and [PHI_AGE_OVER_89_2]"
    expected = "age 95, host 10.0.0.7 and [PHI_AGE_OVER_89_2]"
    assert reidentify_text(model, originals) == expected
    t = Reidentifier(originals)
    assert "".join(t.feed(ch) for ch in model) + t.flush() == expected


def test_zip3_masking_streamed_equals_whole_text() -> None:
    text = "Moved from Springfield, IL 62704 to ZIP 03601-1234; zip: 94110."
    whole = mask_text(text, DETECTOR, PlaceholderBook(zip3=True))
    assert whole == "Moved from [PHI_LOCATION_1], IL 627XX to ZIP 000XX; zip: 941XX."
    for i in range(len(text) + 1):
        assert (
            _stream(Masker(DETECTOR, PlaceholderBook(zip3=True)), [text[:i], text[i:]])[0] == whole
        )
    assert _stream(Masker(DETECTOR, PlaceholderBook(zip3=True)), list(text))[0] == whole
