"""Check digits and format rules."""

from __future__ import annotations

import pytest

from gateway.phi import validators as v


def _luhn_digit(body: str) -> str:
    """The digit that makes ``body`` + digit Luhn-valid (independent implementation)."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10)


@pytest.mark.parametrize("body", ["411111111111111", "37828224631000", "601100099013942"])
def test_cards_pass_luhn_and_fail_when_changed(body: str) -> None:
    number = body + _luhn_digit(body)
    assert v.card_ok(number)
    assert not v.card_ok(number[:-1] + str((int(number[-1]) + 1) % 10))


def test_card_rejects_short_and_repeated_numbers() -> None:
    assert not v.card_ok("4111 1111 111")
    assert not v.card_ok("0000000000000000")
    assert not v.luhn_ok("7")


@pytest.mark.parametrize("body", ["123456789", "198765432", "222222222"])
def test_npi_check_digit(body: str) -> None:
    npi = body + _luhn_digit("80840" + body)
    assert v.npi_ok(npi)
    assert not v.npi_ok(npi[:-1] + str((int(npi[-1]) + 3) % 10))
    assert not v.npi_ok("3" + npi[1:])  # must start with 1 or 2


def test_dea_check_digit() -> None:
    # (1+3+5) + 2*(2+4+6) = 33 -> check digit 3
    assert v.dea_ok("AB1234563")
    assert not v.dea_ok("AB1234564")
    assert not v.dea_ok("A11234563")
    assert not v.dea_ok("AB123456")


@pytest.mark.parametrize(
    ("ssn", "ok"),
    [
        ("123-45-6789", True),
        ("123456789", True),
        ("000-45-6789", False),
        ("666-45-6789", False),
        ("912-45-6789", False),
        ("123-00-6789", False),
        ("123-45-0000", False),
        ("078-05-1120", False),  # the wallet sample number
        ("111-11-1111", False),
        ("123-45 6789", False),  # mixed delimiters
    ],
)
def test_ssn_rules(ssn: str, *, ok: bool) -> None:
    assert v.ssn_ok(ssn) is ok


@pytest.mark.parametrize(
    ("mbi", "ok"),
    [
        ("1EG4-TE5-MK73", True),
        ("1EG4TE5MK73", True),
        ("0EG4TE5MK73", False),  # first character 1-9
        ("1SG4TE5MK73", False),  # S is excluded
        ("1EG4TE5MK7", False),
        ("1E24TE5MK73", True),  # position 3 may be a digit
        ("1EGATE5MK73", False),  # position 4 must be a digit
    ],
)
def test_mbi_format(mbi: str, *, ok: bool) -> None:
    assert v.mbi_ok(mbi) is ok


def test_vin_check_digit() -> None:
    assert v.vin_ok("1HGCM82633A004352")
    assert v.vin_ok("11111111111111111")  # check digit 1 by the weights
    assert not v.vin_ok("1HGCM82633A004353")
    assert not v.vin_ok("1HGCM82633A00435")
    assert not v.vin_ok("1HGCM82633A00435O")  # O is not allowed


@pytest.mark.parametrize(
    ("zip_code", "generalised"),
    [("03601", "000"), ("10001", "100"), ("89301-1234", "000"), ("55601", "000"), ("55501", "555")],
)
def test_zip3_generalisation(zip_code: str, generalised: str) -> None:
    assert v.zip3(zip_code) == generalised


@pytest.mark.parametrize(
    ("age", "over"),
    [("89", False), ("90", True), ("104", True), ("45", False), ("130", False), ("", False)],
)
def test_ages_over_89(age: str, *, over: bool) -> None:
    assert v.age_over_89(age) is over


def test_dates_and_ips() -> None:
    assert v.date_ok(2, 29)
    assert not v.date_ok(2, 30)
    assert not v.date_ok(13, 1)
    assert v.ipv4_ok("10.0.0.255")
    assert not v.ipv4_ok("10.0.0.256")
    assert not v.ipv4_ok("10.00.0.1")
    assert not v.ipv4_ok("10.0.1")
