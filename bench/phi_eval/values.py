"""Generated identifier values with valid check digits (Faker lacks MRN, MBI, NPI, DEA, VIN)."""

from __future__ import annotations

import random
import string

from faker import Faker

from gateway.phi import validators as v

_MBI_LETTERS = "".join(ch for ch in string.ascii_uppercase if ch not in "SLOIBZ")
_VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"


def _luhn_complete(body: str) -> str:
    for d in "0123456789":
        if v.luhn_ok(body + d):
            return body + d
    raise AssertionError("unreachable: one digit always completes a Luhn number")


class Values:
    """One seeded source of fake PHI values."""

    def __init__(self, seed: int) -> None:
        self.fake = Faker("en_US")
        self.fake.seed_instance(seed)
        self.rng = random.Random(seed)

    def digits(self, n: int) -> str:
        return "".join(self.rng.choice(string.digits) for _ in range(n))

    def npi(self) -> str:
        body = self.rng.choice("12") + self.digits(8)
        for d in "0123456789":
            if v.npi_ok(body + d):
                return body + d
        raise AssertionError("unreachable")

    def dea(self) -> str:
        letters = self.rng.choice("ABFGMPR") + self.rng.choice(string.ascii_uppercase)
        d = [int(c) for c in self.digits(6)]
        check = (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10
        return letters + "".join(map(str, d)) + str(check)

    def mbi(self) -> str:
        r = self.rng
        chars = [
            r.choice("123456789"), r.choice(_MBI_LETTERS), r.choice(_MBI_LETTERS + string.digits),
            r.choice(string.digits), r.choice(_MBI_LETTERS), r.choice(_MBI_LETTERS + string.digits),
            r.choice(string.digits), r.choice(_MBI_LETTERS), r.choice(_MBI_LETTERS),
            r.choice(string.digits), r.choice(string.digits),
        ]  # fmt: skip
        raw = "".join(chars)
        return f"{raw[:4]}-{raw[4:7]}-{raw[7:]}" if r.random() < 0.5 else raw

    def vin(self) -> str:
        while True:
            body = "".join(self.rng.choice(_VIN_CHARS) for _ in range(17))
            for check in "0123456789X":
                cand = body[:8] + check + body[9:]
                if v.vin_ok(cand):
                    return cand

    def card(self) -> str:
        return _luhn_complete(self.rng.choice(["4", "51", "37", "6011"]) + self.digits(11))

    def phone(self) -> str:
        area = self.rng.choice("23456789") + self.rng.choice("012345678") + self.digits(1)
        exchange = self.rng.choice("23456789") + self.digits(2)
        line = self.digits(4)
        fmt = self.rng.choice(["({a}) {e}-{l}", "{a}-{e}-{l}", "{a}.{e}.{l}", "+1 {a}-{e}-{l}"])
        return fmt.format(a=area, e=exchange, l=line)

    def ssn(self) -> str:
        while True:
            value = self.fake.ssn()
            if v.ssn_ok(value):
                return value

    def mrn(self) -> str:
        return self.rng.choice(["", "MR", "A"]) + self.digits(self.rng.randint(6, 9))

    def member_id(self) -> str:
        return "".join(self.rng.choice(string.ascii_uppercase) for _ in range(3)) + self.digits(9)

    def age_over_89(self) -> str:
        return str(self.rng.randint(90, 104))

    def date(self) -> str:
        d = self.fake.date_between(start_date="-80y", end_date="today")
        fmt = self.rng.choice(
            ["%m/%d/%Y", "%Y-%m-%d", "%B %d, %Y", "%d %b %Y", "%b %d", "%m/%d/%y"]
        )
        return d.strftime(fmt)

    def facility(self) -> str:
        kind = self.rng.choice(["General Hospital", "Medical Center", "Clinic", "Hospital"])
        return f"{self.fake.last_name()} {kind}"

    def street(self) -> str:
        return self.fake.street_address()

    def serial(self) -> str:
        return self.rng.choice(["SN", "PM", "DX"]) + "-" + self.digits(6)
