"""Check-digit and format validators for identifier candidates (pure functions of the text).

Validators pick labels and reject bare look-alikes; they never veto a keyword-anchored candidate
(``phi.md`` §1: "validators raise confidence; they never veto"). Inputs may carry separators
(spaces, hyphens, dots); every function strips them itself.
"""

from __future__ import annotations

from typing import Final

#: ZIP3 prefixes with 20,000 people or fewer (2000 Census, HHS guidance): generalised to 000.
RESTRICTED_ZIP3: Final = frozenset(
    {"036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830", "831", "878",
     "879", "884", "890", "893"}
)  # fmt: skip

_MBI_EXCLUDED: Final = frozenset("SLOIBZ")
_VIN_VALUES: Final = dict(
    zip(
        "ABCDEFGHJKLMNPRSTUVWXYZ",
        (1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 7, 9, 2, 3, 4, 5, 6, 7, 8, 9),
        strict=True,
    )
)
_VIN_WEIGHTS: Final = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_SAMPLE_SSNS: Final = frozenset({"078051120", "219099999", "457555462"})


def digits(text: str) -> str:
    """The ASCII digits of ``text`` in order."""
    return "".join(ch for ch in text if "0" <= ch <= "9")


def luhn_ok(number: str) -> bool:
    """Luhn (mod 10) check over the digits of ``number``; False for fewer than two digits."""
    ds = digits(number)
    if len(ds) < 2:
        return False
    total = 0
    for i, ch in enumerate(reversed(ds)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_ok(number: str) -> bool:
    """A payment card number: 13-19 digits, Luhn-valid, not all one digit."""
    ds = digits(number)
    return 13 <= len(ds) <= 19 and len(set(ds)) > 1 and luhn_ok(ds)


def npi_ok(number: str) -> bool:
    """NPI: 10 digits starting 1 or 2, Luhn over ``80840`` + NPI."""
    ds = digits(number)
    return len(ds) == 10 and ds[0] in "12" and luhn_ok("80840" + ds)


def dea_ok(text: str) -> bool:
    """DEA registration: 2 letters + 7 digits, (d1+d3+d5) + 2(d2+d4+d6) = d7 (mod 10)."""
    t = text.strip().upper()
    if len(t) != 9 or not t[:2].isalpha() or not t[:2].isascii() or not t[2:].isdigit():
        return False
    d = [ord(c) - 48 for c in t[2:]]
    return (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10 == d[6]


def ssn_ok(text: str) -> bool:
    """SSN rules: area not 000/666/9xx, group not 00, serial not 0000, no known sample numbers,
    not one repeated digit, one consistent delimiter."""
    ds = digits(text)
    if len(ds) != 9 or ds in _SAMPLE_SSNS or len(set(ds)) == 1:
        return False
    delims = {ch for ch in text if not ch.isdigit()}
    if len(delims) > 1:
        return False
    area, group, serial = ds[:3], ds[3:5], ds[5:]
    return area not in {"000", "666"} and area[0] != "9" and group != "00" and serial != "0000"


def mbi_ok(text: str) -> bool:
    """Medicare Beneficiary Identifier: 11 characters by position class C A AN N A AN N A A N N,
    letters excluding S, L, O, I, B, Z (dashes allowed as printed on cards)."""
    t = text.replace("-", "").upper()
    if len(t) != 11 or not t.isascii() or any(ch in _MBI_EXCLUDED for ch in t):
        return False
    classes = "CAXNAXNAANN"  # C: 1-9, A: letter, X: letter or digit, N: digit
    for ch, cls in zip(t, classes, strict=True):
        ok = {
            "C": "1" <= ch <= "9",
            "A": ch.isalpha(),
            "X": ch.isalnum(),
            "N": ch.isdigit(),
        }[cls]
        if not ok:
            return False
    return True


def vin_ok(text: str) -> bool:
    """VIN: 17 characters without I, O, Q; check digit (weighted mod 11) in position 9."""
    t = text.upper()
    if len(t) != 17 or not t.isascii() or not t.isalnum() or set(t) & set("IOQ"):
        return False
    total = sum(
        (int(ch) if ch.isdigit() else _VIN_VALUES[ch]) * w
        for ch, w in zip(t, _VIN_WEIGHTS, strict=True)
    )
    check = total % 11
    return t[8] == ("X" if check == 10 else str(check))


def age_over_89(text: str) -> bool:
    """True when the number in ``text`` is an age of 90 or more (and plausible, < 130)."""
    ds = digits(text)
    return bool(ds) and 90 <= int(ds) < 130


def zip3(zip_code: str) -> str:
    """The Safe Harbor generalisation of a ZIP code: its first three digits, or ``000`` for the
    restricted prefixes."""
    prefix = digits(zip_code)[:3]
    return "000" if prefix in RESTRICTED_ZIP3 else prefix


def date_ok(month: int, day: int) -> bool:
    """A plausible calendar month and day (February 29 allowed)."""
    days = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    return 1 <= month <= 12 and 1 <= day <= days[month - 1]


def ipv4_ok(text: str) -> bool:
    """Four dot-separated decimal octets 0-255 without leading zeros."""
    parts = text.split(".")
    return len(parts) == 4 and all(
        p.isdigit() and int(p) <= 255 and (p == "0" or not p.startswith("0")) for p in parts
    )
