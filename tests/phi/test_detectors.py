"""Table tests per category: positives, near-misses and hard negatives (generated data only)."""

from __future__ import annotations

import pytest

from gateway.phi.categories import CLINICAL, DEFAULT_CATEGORIES, Category as C
from gateway.phi.detectors import Detector

DETECTOR = Detector()
CLINICAL_DETECTOR = Detector(DEFAULT_CATEGORIES | CLINICAL)

# (text, [(category, exact value), ...]) -- the complete list of what must be found.
POSITIVES: list[tuple[str, list[tuple[C, str]]]] = [
    ("Patient John Smith was admitted.", [(C.NAME, "John Smith")]),
    ("Seen by Dr. Alice Wong today.", [(C.NAME, "Alice Wong")]),
    ("Mrs. Garcia called back.", [(C.NAME, "Garcia")]),
    ("Mary Johnson reports chest pain.", [(C.NAME, "Mary Johnson")]),
    ("daughter: Emily R. Davis will visit", [(C.NAME, "Emily R. Davis")]),
    ("He moved to Chicago last year.", [(C.LOCATION, "Chicago")]),
    ("Transferred from Mercy General Hospital.", [(C.LOCATION, "Mercy General Hospital")]),
    ("Lives at 123 Main Street, Apt 4B.", [(C.ADDRESS, "123 Main Street, Apt 4B")]),
    ("Mail to PO Box 4411 please", [(C.ADDRESS, "PO Box 4411")]),
    ("Springfield, IL 62704 is home", [(C.LOCATION, "Springfield, IL 62704")]),
    ("zip code 10001", [(C.LOCATION, "10001")]),
    ("in NY 10001-1234 area", [(C.LOCATION, "10001-1234")]),
    ("DOB: 03/04/1950", [(C.DOB, "03/04/1950")]),
    ("born on March 3rd, 1948", [(C.DOB, "March 3rd, 1948")]),
    ("Admitted 2021-07-14 and discharged 7/20/21.", [(C.DATE, "2021-07-14"), (C.DATE, "7/20/21")]),
    ("Surgery on 3 Mar 2020.", [(C.DATE, "3 Mar 2020")]),
    ("Follow-up in June 2024.", [(C.DATE, "June 2024")]),
    ("Seen 14-Feb-2023 in clinic", [(C.DATE, "14-Feb-2023")]),
    ("A 93-year-old woman", [(C.AGE_OVER_89, "93")]),
    ("aged 101, frail", [(C.AGE_OVER_89, "101")]),
    ("pt is 95 yo", [(C.AGE_OVER_89, "95")]),
    ("Call (212) 555-0199 or 646.555.0142.",
     [(C.PHONE, "(212) 555-0199"), (C.PHONE, "646.555.0142")]),
    ("phone +1 415-555-0123", [(C.PHONE, "+1 415-555-0123")]),
    ("intl +44 20 7946 0958", [(C.PHONE, "+44 20 7946 0958")]),
    ("fax: 212-555-0100", [(C.FAX, "212-555-0100")]),
    ("mail jane.doe+x@example.org now", [(C.EMAIL, "jane.doe+x@example.org")]),
    ("write jane[at]example[dot]com", [(C.EMAIL, "jane[at]example[dot]com")]),
    ("SSN 123-45-6789", [(C.SSN, "123-45-6789")]),
    ("SSN: 000-12-3456 (invalid but anchored)", [(C.SSN, "000-12-3456")]),
    ("id 123 45 6789 on file", [(C.SSN, "123 45 6789")]),
    ("MRN: 00123456", [(C.MEDICAL_RECORD, "00123456")]),
    ("medical record number A-77123", [(C.MEDICAL_RECORD, "A-77123")]),
    ("member ID XJH4452190", [(C.INSURANCE_ID, "XJH4452190")]),
    ("Medicare card 1EG4-TE5-MK73 on file", [(C.INSURANCE_ID, "1EG4-TE5-MK73")]),
    ("card 4111 1111 1111 1111", [(C.ACCOUNT, "4111 1111 1111 1111")]),
    ("acct # 000123456789", [(C.ACCOUNT, "000123456789")]),
    ("NPI 1234567893 signed", [(C.LICENSE, "1234567893")]),
    ("prescriber AB1234563", [(C.LICENSE, "AB1234563")]),
    ("license number MD-445120", [(C.LICENSE, "MD-445120")]),
    ("VIN 1HGCM82633A004352", [(C.VEHICLE, "1HGCM82633A004352")]),
    ("license plate 7ABC123", [(C.VEHICLE, "7ABC123")]),
    ("pacemaker serial number PM-20931-X", [(C.DEVICE, "PM-20931-X")]),
    ("see https://portal.example.org/p/8812 now", [(C.URL, "https://portal.example.org/p/8812")]),
    ("host www.example.com.", [(C.URL, "www.example.com")]),
    ("from 192.168.10.24 and 2001:db8::8a2e:370:7334",
     [(C.IP_ADDRESS, "192.168.10.24"), (C.IP_ADDRESS, "2001:db8::8a2e:370:7334")]),
    ("claim # CLM-0099812", [(C.ID, "CLM-0099812")]),
    ("Call 2125550199 now", [(C.PHONE, "2125550199")]),
    ("Seen 7/2021 and 2020-02-29", [(C.DATE, "7/2021"), (C.DATE, "2020-02-29")]),
    ("Record A434777 filed", [(C.MEDICAL_RECORD, "A434777")]),
]  # fmt: skip

# Near-misses and hard negatives: nothing may be found.
NEGATIVES: list[str] = [
    "She is 45 years old.",
    "A 89-year-old man",
    "aged 89",
    "In 2019 she started dialysis.",
    "The 1990s were different.",
    "Take metformin 500 mg twice daily.",
    "Diagnosed with diabetes and hypertension.",
    "History of Parkinson's disease and Crohn's disease.",
    "BP 120/80, HR 72, temp 98.6.",
    "Dose 1/2 tablet; ratio 3/4.",
    "Hemoglobin 13.5 g/dL, platelets 250000.",
    "Version 1.2.3 of the app.",
    "Room 12, bed 3.",
    "000-12-3456 is not a valid SSN shape.",
    "card 4111 1111 1111 1112 fails Luhn",
    "number 1234567890 is no NPI and no phone",
    "code AB1234567 has a bad DEA check digit",
    "VIN 1HGCM82633A004353 has a bad check digit",
    "999.1.1.1 is not an address",
    "13/45/2020 is no date",
    "The patient was seen. The Emergency Room was busy.",
    "May we continue? Will she improve?",
    "score 9 of 10, 3 times a day, 2 weeks",
    "Meeting at 12:30:45 today.",
    "Mark said no.",
    "code 0123456789 is neither NPI nor phone",
    "Seen 13/2021 and 2021-02-30",
    # near-misses, one or more per category
    "write to admin@localhost",  # EMAIL: no domain suffix
    "the scheme http:/ alone",  # URL
    "subnet 10.0.0 only",  # IP_ADDRESS: three octets
    "code 1EG4-TE5-MK7 truncated",  # INSURANCE_ID: MBI one short
    "ext. 555-0199 internal",  # PHONE: seven digits
    "zip 1234 is short",  # LOCATION
    "in the year 2019",  # DATE: a year alone
    "MRN: pending",  # MEDICAL_RECORD: no digits
    "serial number unknown",  # DEVICE
    "DEA registration pending",  # LICENSE
    "plate ABC",  # VEHICLE: no digits
    "account overdue",  # ACCOUNT
    "claim # pending",  # ID
    "Crohn's disease flare, Apgar 9",  # NAME: eponyms
    "10 Downing",  # ADDRESS: no street suffix
    "fax machine broken",  # FAX
    "SSN not on file",  # SSN
    "aged 89 and 45-year-old",  # AGE_OVER_89
    "DOB unknown",  # DOB
]


@pytest.mark.parametrize(("text", "expected"), POSITIVES, ids=[p[0][:30] for p in POSITIVES])
def test_positives_are_found_exactly(text: str, expected: list[tuple[C, str]]) -> None:
    found = [(s.category, text[s.start : s.end]) for s in DETECTOR.find(text)]
    assert found == expected


@pytest.mark.parametrize("text", NEGATIVES)
def test_hard_negatives_are_left_alone(text: str) -> None:
    assert [(s.category, text[s.start : s.end]) for s in DETECTOR.find(text)] == []


def test_every_default_category_has_a_positive() -> None:
    covered = {cat for _, expected in POSITIVES for cat, _ in expected}
    assert covered == DEFAULT_CATEGORIES


def test_clinical_categories_are_off_by_default_and_available() -> None:
    text = "Diagnosed with diabetes; started metformin."
    assert DETECTOR.find(text) == []
    found = [(s.category, text[s.start : s.end]) for s in CLINICAL_DETECTOR.find(text)]
    assert found == [(C.DIAGNOSIS, "diabetes"), (C.TREATMENT, "metformin")]
    assert C.DIAGNOSIS not in DEFAULT_CATEGORIES


def test_disabled_categories_are_not_reported() -> None:
    only_ssn = Detector({C.SSN})
    text = "SSN 123-45-6789, call 212-555-0199, John Smith"
    assert [s.category for s in only_ssn.find(text)] == [C.SSN]


def test_detector_needs_a_category() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Detector(())


def test_matching_is_linear_on_adversarial_input() -> None:
    # The stdlib email pattern needs ~1 s on this (phi.md §3); RE2 stays linear.
    import time

    text = "a." * 20000
    start = time.perf_counter()
    DETECTOR.find(text)
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize(
    ("text", "hold"),
    [
        ("see Dr. James ", 4),  # the surname may still follow (phi.md failure 11)
        ("call 212-55", 5),  # a phone in progress
        ("MRN: ", 0),  # the anchor waits for its value (failure 7)
        ("ok. ", 4),  # nothing can start: all emitted
        ("SSN 123-45-6789", 0),  # complete, but could still be followed by a word char
    ],
)
def test_hold_from_marks_where_a_match_could_start_or_grow(text: str, hold: int) -> None:
    assert DETECTOR.hold_from(text) == hold
    assert len(text) - DETECTOR.hold_from(text) <= DETECTOR.max_hold
