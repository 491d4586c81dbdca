"""The rule table: one pattern tree per candidate shape, each with the validator that labels it.

Rules are tried as one leftmost-first RE2 alternation, in this order, so at the same start position
an earlier rule wins (keyword-anchored rules first: their cue makes them start earlier anyway).
A rule's value group ``<rule>_v`` marks the part that is PHI (the cue stays readable); without one
the whole match is the value. Invariant: every rule has a finite maximum length (``grammar``), and
a validator is a pure function of the value text.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from gateway.phi import names, validators as v
from gateway.phi.categories import Category as C
from gateway.phi.grammar import (
    DIGIT,
    B,
    Chars,
    Group,
    Lit,
    Node,
    alt,
    opt,
    rep,
    seq,
    words,
)

#: A validator maps the value text to (start, end, category) spans relative to it; [] rejects.
Validator = Callable[[str], list[tuple[int, int, C]]]


@dataclass(frozen=True, slots=True)
class Rule:
    """One candidate shape."""

    name: str
    node: Node
    validate: Validator
    categories: frozenset[C]
    """Every category the validator may return (the rule is dropped when none is enabled)."""


def _always(cat: C) -> Validator:
    return lambda text: [(0, len(text), cat)]


def _when(check: Callable[[str], bool], cat: C) -> Validator:
    return lambda text: [(0, len(text), cat)] if check(text) else []


def _has_digit(text: str) -> bool:
    return any(ch.isdigit() for ch in text)


def _numeric_date(text: str) -> bool:
    parts = [int(p) for p in text.replace("-", "/").replace(".", "/").split("/") if p.isdigit()]
    if len(parts) == 2:  # m/yyyy
        return 1 <= parts[0] <= 12
    if parts[0] > 31:  # y/m/d
        return v.date_ok(parts[1], parts[2])
    return v.date_ok(parts[0], parts[1]) or v.date_ok(parts[1], parts[0])


def _ten_digits(text: str) -> list[tuple[int, int, C]]:
    if v.npi_ok(text):
        return [(0, len(text), C.LICENSE)]
    return [(0, len(text), C.PHONE)] if _nanp_ok(text) else []


def _nanp_ok(text: str) -> bool:
    ds = v.digits(text)  # exactly ten: the rule's shape
    area, exchange = ds[:3], ds[3:6]
    return (
        area[0] in "23456789"
        and area[1] != "9"
        and exchange[0] in "23456789"
        and exchange[1:] != "11"
    )


def _ip_ok(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


_STATES: frozenset[str] = frozenset((
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN",
    "IA", "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH",
    "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "PR", "RI", "SC", "SD", "TN", "TX",
    "UT", "VT", "VA", "WA", "WV", "WI", "WY",
))  # fmt: skip


def _state_zip(text: str) -> list[tuple[int, int, C]]:
    return [(3, len(text), C.LOCATION)] if text[:2] in _STATES else []


def _age(text: str) -> list[tuple[int, int, C]]:
    start = next((i for i, ch in enumerate(text) if ch.isdigit()), len(text))
    end = start
    while end < len(text) and text[end].isdigit():
        end += 1
    return [(start, end, C.AGE_OVER_89)] if v.age_over_89(text[start:end]) else []


_SEP = rep(r"[\s:#.=]", 0, 4)
_FILLER = opt(seq(words("is", "was", "number", "no", "of"), rep(r"[\s:#.]", 1, 3)))


def _cued(name: str, cue: Node, value: Node) -> Node:
    return seq(B, cue, _SEP, _FILLER, Group(f"{name}_v", value))


_CODE = seq(Chars("[A-Za-z0-9]"), rep("[A-Za-z0-9-]", 3, 24))
_SSN_SHAPE = alt(
    seq(rep(r"\d", 3, 3), "-", rep(r"\d", 2, 2), "-", rep(r"\d", 4, 4)),
    seq(rep(r"\d", 3, 3), " ", rep(r"\d", 2, 2), " ", rep(r"\d", 4, 4)),
    rep(r"\d", 9, 9),
)
_PHONE = seq(
    opt(seq(opt("+"), "1", Chars("[-. ]"))),
    alt(seq("(", rep(r"\d", 3, 3), ")", opt(" ")), seq(rep(r"\d", 3, 3), Chars("[-. ]"))),
    rep(r"\d", 3, 3),
    Chars("[-. ]"),
    rep(r"\d", 4, 4),
)
_INTL_PHONE = seq("+", rep(r"\d", 1, 3), rep(seq(Chars("[ .-]"), rep(r"\d", 2, 4)), 2, 5))
_MONTH = words(
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December", "Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug", "Sep",
    "Sept", "Oct", "Nov", "Dec", ci=False,
)  # fmt: skip
_DAY = seq(rep(r"\d", 1, 2), opt(words("st", "nd", "rd", "th", ci=False)))
_YEAR = seq(Chars("[12]"), rep(r"\d", 3, 3))
_NUMERIC_DATE = alt(
    seq(rep(r"\d", 4, 4), "-", rep(r"\d", 1, 2), "-", rep(r"\d", 1, 2)),
    seq(rep(r"\d", 1, 2), Chars("[/.-]"), rep(r"\d", 1, 2), Chars("[/.-]"),
        alt(rep(r"\d", 4, 4), rep(r"\d", 2, 2))),
    seq(rep(r"\d", 1, 2), "/", _YEAR),
)  # fmt: skip
_TEXT_DATE = alt(
    seq(_MONTH, opt("."), " ", _DAY, opt(seq(opt(","), " ", _YEAR))),
    seq(_DAY, " ", opt("of "), _MONTH, opt("."), opt(seq(opt(","), " ", _YEAR))),
    seq(_MONTH, opt("."), opt(","), " ", _YEAR),
    seq(rep(r"\d", 1, 2), "-", _MONTH, "-", _YEAR),
)
_DATE = alt(_NUMERIC_DATE, _TEXT_DATE)
_LOWER = rep("[a-z]", 1, 20)
_CAP = seq(
    Chars("[A-Z]"),
    alt(_LOWER, seq("'", Chars("[A-Z]"), _LOWER)),
    opt(alt(seq("-", Chars("[A-Z]"), _LOWER), "'s")),
)
_INITIAL = seq(Chars("[A-Z]"), ".")
_TITLE = alt(seq(words("Mr", "Mrs", "Ms", "Mx", "Dr", "Prof", ci=False), "."), Lit("Miss"))
_TOKEN = alt(_TITLE, _CAP, _INITIAL)
_RUN = seq(_TOKEN, rep(seq(" ", _TOKEN), 0, 4))
# USPS Publication 28 street suffixes (as in Faker en_US) and common abbreviations, longest first.
_STREET = words(
    "Expressway", "Extensions", "Throughway", "Trafficway", "Boulevard", "Crossroad", "Extension",
    "Junctions", "Mountains", "Stravenue", "Underpass", "Causeway", "Crescent", "Crossing",
    "Junction", "Motorway", "Mountain", "Overpass", "Parkways", "Turnpike", "Villages", "Centers",
    "Circles", "Corners", "Estates", "Freeway", "Gardens", "Gateway", "Harbors", "Heights",
    "Highway", "Islands", "Landing", "Meadows", "Mission", "Orchard", "Parkway", "Passage",
    "Prairie", "Springs", "Squares", "Station", "Streets", "Terrace", "Valleys", "Viaduct",
    "Village", "Avenue", "Branch", "Bridge", "Brooks", "Bypass", "Canyon", "Center", "Circle",
    "Cliffs", "Common", "Corner", "Course", "Courts", "Divide", "Drives", "Estate", "Fields",
    "Forest", "Forges", "Garden", "Greens", "Groves", "Harbor", "Hollow", "Island", "Knolls",
    "Lights", "Manors", "Meadow", "Plains", "Points", "Radial", "Rapids", "Ridges", "Shoals",
    "Shores", "Skyway", "Spring", "Square", "Stream", "Street", "Summit", "Tunnel", "Unions",
    "Valley", "Alley", "Brook", "Burgs", "Cliff", "Court", "Coves", "Creek", "Crest", "Curve",
    "Drive", "Falls", "Ferry", "Field", "Flats", "Fords", "Forge", "Forks", "Glens", "Green",
    "Grove", "Haven", "Hills", "Inlet", "Knoll", "Lakes", "Light", "Locks", "Lodge", "Manor",
    "Mills", "Mount", "Parks", "Pines", "Place", "Plain", "Plaza", "Point", "Ports", "Ranch",
    "Rapid", "Ridge", "River", "Roads", "Route", "Shoal", "Shore", "Spurs", "Trace", "Track",
    "Trail", "Union", "Views", "Ville", "Vista", "Walks", "Wells", "Blvd", "Burg", "Camp", "Cape",
    "Club", "Cove", "Dale", "Fall", "Flat", "Ford", "Fork", "Fort", "Glen", "Hill", "Isle",
    "Keys", "Lake", "Land", "Lane", "Loaf", "Lock", "Loop", "Mall", "Mews", "Mill", "Neck",
    "Oval", "Park", "Pass", "Path", "Pike", "Pine", "Pkwy", "Port", "Ramp", "Rest", "Road",
    "Spur", "View", "Walk", "Wall", "Ways", "Well", "Ave", "Cir", "Dam", "Hwy", "Key", "Row",
    "Rue", "Run", "Ter", "Trl", "Via", "Way", "Ct", "Dr", "Ln", "Pl", "Rd", "Sq", "St", ci=False,
)  # fmt: skip
_UNIT = seq(opt(","), " ", words("Apt", "Suite", "Ste", "Unit", "#", ci=False), opt("."), opt(" "),
            rep("[A-Za-z0-9-]", 1, 6))  # fmt: skip
_ORDINAL = seq(rep(r"\d", 1, 3), words("st", "nd", "rd", "th", ci=False))
_ADDRESS = seq(
    rep(r"\d", 1, 6), opt(Chars("[A-Z]")), " ",
    rep(seq(alt(_CAP, seq(Chars("[NSEW]"), opt(".")), _ORDINAL), " "), 1, 4),
    _STREET, opt("."), opt(_UNIT),
)  # fmt: skip
_FACILITY = seq(
    rep(seq(alt(_CAP, Lit("St.")), " "), 1, 4),
    words("Hospital", "Medical Center", "Clinic", "Health Center", "Healthcare", "Infirmary",
          "Nursing Home", "Rehabilitation Center", "Surgery Center", "Hospice", ci=False),
)  # fmt: skip
_URL_CHAR = r"[^\s<>\"'\[\]]"
_URL = seq(
    alt(Lit("https://", ci=True), Lit("http://", ci=True), Lit("www.", ci=True)),
    rep(_URL_CHAR, 0, 200),
    Chars(r"[^\s<>\"'\[\].,;:!?)]"),
)
_LOCAL = rep("[A-Za-z0-9._%+-]", 1, 64)
_LABEL = rep("[A-Za-z0-9-]", 1, 40)
_EMAIL = alt(
    seq(_LOCAL, "@", _LABEL, rep(seq(".", _LABEL), 1, 4)),
    seq(_LOCAL, words("[at]", "(at)"), _LABEL, rep(seq(words("[dot]", "(dot)"), _LABEL), 1, 3)),
)  # fmt: skip
_CARD = alt(
    rep(r"\d", 13, 19),
    seq(rep(r"\d", 4, 4), rep(seq("-", rep(r"\d", 4, 4)), 2, 2), "-", rep(r"\d", 1, 7)),
    seq(rep(r"\d", 4, 4), rep(seq(" ", rep(r"\d", 4, 4)), 2, 2), " ", rep(r"\d", 1, 7)),
    seq(rep(r"\d", 4, 4), " ", rep(r"\d", 6, 6), " ", rep(r"\d", 5, 5)),
)
_MBI = seq(
    Chars("[1-9]"), Chars("[A-Z]"), Chars("[A-Z0-9]"), DIGIT, opt("-"), Chars("[A-Z]"),
    Chars("[A-Z0-9]"), DIGIT, opt("-"), Chars("[A-Z]"), Chars("[A-Z]"), DIGIT, DIGIT,
)  # fmt: skip
_IPV6 = seq(rep("[0-9A-Fa-f]", 0, 4), rep(seq(":", rep("[0-9A-Fa-f]", 0, 4)), 2, 7))
_AGE_NUM = seq(Chars("[1-9]"), rep(r"\d", 1, 2))

_CLINICAL_DIAGNOSIS = words(
    "diabetes", "hypertension", "HIV", "AIDS", "hepatitis", "depression", "schizophrenia",
    "bipolar disorder", "cancer", "asthma", "COPD", "tuberculosis", "dementia", "epilepsy",
    "anxiety", "pneumonia", "stroke", "heart failure", "opioid use disorder",
    "alcohol use disorder",
)  # fmt: skip
_CLINICAL_TREATMENT = words(
    "metformin", "insulin", "lisinopril", "atorvastatin", "amlodipine", "levothyroxine",
    "sertraline", "buprenorphine", "methadone", "naloxone", "warfarin", "apixaban", "prednisone",
    "chemotherapy", "dialysis", "radiation therapy", "antiretroviral therapy", "lithium",
)  # fmt: skip

RULES: tuple[Rule, ...] = (
    Rule("ssn_cue", _cued("ssn_cue", words("SSN", "SS#", "social security number",
         "social security no", "social security"), _SSN_SHAPE), _always(C.SSN), frozenset({C.SSN})),
    Rule("mrn", _cued("mrn", words("MRN", "MR#", "medical record number", "medical record no",
         "medical record", "record number", "record no", "record #", "record", "chart number",
         "chart no", "chart #", "chart"),
         _CODE), _when(_has_digit, C.MEDICAL_RECORD), frozenset({C.MEDICAL_RECORD})),
    Rule("insurance", _cued("insurance", words("member ID", "member number", "member no",
         "member #", "policy number", "policy no", "policy #", "subscriber ID", "group number",
         "group #", "health plan ID", "plan ID", "insurance ID", "MBI", "Medicare ID",
         "Medicare number", "Medicaid ID", "HICN", "beneficiary ID"), _CODE),
         _when(_has_digit, C.INSURANCE_ID), frozenset({C.INSURANCE_ID})),
    Rule("account", _cued("account", words("account number", "account no", "account #",
         "account", "acct #", "acct", "routing number", "IBAN", "card number", "credit card"),
         seq(Chars("[A-Za-z0-9]"), rep(seq(opt(Chars("[ -]")), Chars("[A-Za-z0-9]")), 3, 33))),
         _when(_has_digit, C.ACCOUNT), frozenset({C.ACCOUNT})),
    Rule("plate", _cued("plate", words("license plate", "licence plate", "plate number",
         "plate #", "plate"), seq(Chars("[A-Z0-9]"), rep("[A-Z0-9 -]", 1, 7), Chars("[A-Z0-9]"))),
         _when(_has_digit, C.VEHICLE), frozenset({C.VEHICLE})),
    Rule("license", _cued("license", words("DEA number", "DEA #", "DEA", "NPI", "license number",
         "license no", "license #", "licence number", "lic #", "certificate number",
         "certificate #"), _CODE), _when(_has_digit, C.LICENSE), frozenset({C.LICENSE})),
    Rule("device", _cued("device", words("serial number", "serial no", "serial #", "serial",
         "S/N", "SN", "device ID", "UDI", "implant ID", "IMEI"), _CODE),
         _when(_has_digit, C.DEVICE), frozenset({C.DEVICE})),
    Rule("other_id", _cued("other_id", words("patient ID", "case number", "case no", "case #",
         "claim number", "claim no", "claim #", "claim ID", "encounter number", "encounter #",
         "accession number", "accession #", "reference number", "ref #", "visit #", "ID #",
         "ID", ci=True), _CODE), _when(_has_digit, C.ID), frozenset({C.ID})),
    Rule("fax", _cued("fax", alt(words("fax", "facsimile"), Lit("F:")), _PHONE),
         _always(C.FAX), frozenset({C.FAX})),
    Rule("dob", _cued("dob", words("DOB", "D.O.B.", "date of birth", "birth date", "birthdate",
         "born on", "born"), _DATE), _always(C.DOB), frozenset({C.DOB})),
    Rule("age", seq(B, alt(
         seq(words("aged", "age", "ages"), rep(r"[\s:]", 1, 3), _AGE_NUM, B),
         seq(_AGE_NUM, Chars("[- ]"), words("year", "yr"), opt("s"), Chars("[- ]"), words("old")),
         seq(_AGE_NUM, opt(" "), alt(seq(words("yo", "y/o"), B), Lit("y.o.", ci=True))))),
         _age, frozenset({C.AGE_OVER_89})),
    Rule("email", seq(B, _EMAIL), _always(C.EMAIL), frozenset({C.EMAIL})),
    Rule("url", _URL, _always(C.URL), frozenset({C.URL})),
    Rule("mbi", seq(B, _MBI, B), _when(v.mbi_ok, C.INSURANCE_ID), frozenset({C.INSURANCE_ID})),
    Rule("dea", seq(B, rep("[A-Z]", 2, 2), rep(r"\d", 7, 7), B), _when(v.dea_ok, C.LICENSE),
         frozenset({C.LICENSE})),
    Rule("vin", seq(B, rep("[A-HJ-NPR-Z0-9]", 17, 17), B), _when(v.vin_ok, C.VEHICLE),
         frozenset({C.VEHICLE})),
    Rule("ip4", seq(B, rep(r"\d", 1, 3), rep(seq(".", rep(r"\d", 1, 3)), 3, 3), B),
         _when(v.ipv4_ok, C.IP_ADDRESS), frozenset({C.IP_ADDRESS})),
    Rule("ip6", seq(B, _IPV6, B), _when(_ip_ok, C.IP_ADDRESS), frozenset({C.IP_ADDRESS})),
    Rule("date", seq(B, _DATE, B), lambda t: [(0, len(t), C.DATE)] if
         (not t[0].isdigit() or not t.replace("/", "").replace("-", "").replace(".", "").isdigit()
          or _numeric_date(t)) else [], frozenset({C.DATE})),
    Rule("phone", seq(_PHONE, B), _always(C.PHONE), frozenset({C.PHONE})),
    Rule("intl_phone", seq(_INTL_PHONE, B), _when(lambda t: len(v.digits(t)) >= 8, C.PHONE),
         frozenset({C.PHONE})),
    Rule("ssn", seq(B, _SSN_SHAPE, B), _when(v.ssn_ok, C.SSN), frozenset({C.SSN})),
    Rule("ten_digits", seq(B, rep(r"\d", 10, 10), B), _ten_digits,
         frozenset({C.PHONE, C.LICENSE})),
    Rule("card", seq(B, _CARD, B), _when(v.card_ok, C.ACCOUNT), frozenset({C.ACCOUNT})),
    Rule("po_box", seq(B, alt(Lit("P.O. Box", ci=True), Lit("PO Box", ci=True),
         Lit("P O Box", ci=True), Lit("Post Office Box", ci=True)), opt(" "), rep(r"\d", 1, 8)),
         _always(C.ADDRESS), frozenset({C.ADDRESS})),
    Rule("address", seq(B, _ADDRESS, B), _always(C.ADDRESS), frozenset({C.ADDRESS})),
    Rule("city_state_zip", seq(B, _RUN, ", ", rep("[A-Z]", 2, 2), " ", rep(r"\d", 5, 5),
         opt(seq("-", rep(r"\d", 4, 4))), B), _always(C.LOCATION), frozenset({C.LOCATION})),
    Rule("state_zip", seq(B, rep("[A-Z]", 2, 2), " ", rep(r"\d", 5, 5),
         opt(seq("-", rep(r"\d", 4, 4))), B), _state_zip, frozenset({C.LOCATION})),
    Rule("zip_cue", _cued("zip_cue", words("ZIP", "ZIP code", "zipcode", "postal code"),
         seq(rep(r"\d", 5, 5), opt(seq("-", rep(r"\d", 4, 4))))), _always(C.LOCATION),
         frozenset({C.LOCATION})),
    Rule("facility", seq(B, _FACILITY, B), _always(C.LOCATION), frozenset({C.LOCATION})),
    Rule("titled_name", seq(B, words("Dr", "Mr", "Mrs", "Ms", "Mx", "Miss", "Prof", "Doctor",
         ci=False), opt("."), " ", Group("titled_name_v", seq(_CAP, rep(seq(" ", alt(_CAP,
         _INITIAL)), 0, 2)))), _always(C.NAME), frozenset({C.NAME})),
    Rule("cued_name", _cued("cued_name", words("patient", "pt", "name", "named", "son",
         "daughter", "wife", "husband", "mother", "father", "spouse", "sister", "brother",
         "guardian", "caregiver", "signed", "contact", "call", "ask", "tell", "dear", "hi",
         "hello", "thank", "thanks"), _RUN), names.classify_cued,
         frozenset({C.NAME})),
    Rule("diagnosis", seq(B, _CLINICAL_DIAGNOSIS, B), _always(C.DIAGNOSIS),
         frozenset({C.DIAGNOSIS})),
    Rule("treatment", seq(B, _CLINICAL_TREATMENT, B), _always(C.TREATMENT),
         frozenset({C.TREATMENT})),
    Rule("run", seq(B, _RUN), names.classify_run, frozenset({C.NAME, C.LOCATION})),
)  # fmt: skip
