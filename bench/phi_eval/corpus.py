"""The generated evaluation corpus: clinical sentence templates with typed slots filled from
Faker and ``values``, consistent per patient, split by template into tuning and test halves.

Every slot's value is recorded with its span and category; hard-negative templates carry
look-alikes (ages up to 89, bare years, doses, lab values, eponyms, drug names) and no PHI.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bench.phi_eval.values import Values
from gateway.phi.categories import Category as C

Split = Literal["tune", "test"]

# Templates alternate between the halves by position: even -> tune, odd -> test.
TEMPLATES: tuple[str, ...] = (
    "Patient {name} (DOB {dob}) was admitted on {date} with chest pain.",
    "{name} is a {age90}-year-old woman seen for follow-up; MRN {mrn}.",
    "Please call {first} at {phone} about the results from {date}.",
    "Discharge summary for {name}, MRN: {mrn}, SSN {ssn}.",
    "Mr. {last} lives at {street}, {citystzip}.",
    "Send the records to {email} or fax them to {fax}.",
    "Dr. {name} (NPI {npi}, DEA {dea}) signed the order on {date}.",
    "Medicare MBI {mbi}; member ID {member}.",
    "The patient, {name}, reports her phone number changed to {phone}.",
    "Pacemaker serial number {serial} was checked at {facility}.",
    "Billing: card {card} on file for {name}.",
    "Portal login from {ip} via {url} on {date}.",
    "Emergency contact: daughter {name}, {phone}.",
    "Vehicle VIN {vin}, license plate {plate}, registered to {name}.",
    "{name} was born {dob} and transferred from {facility} on {date}.",
    "Aged {age90}, {first} {last} remains independent at home in {citystzip}.",
    "Her SSN is {ssn} and her insurance member ID {member}.",
    "Appointment for {name} at {street} on {date}; reminder sent to {email}.",
    "Reach Mrs. {last} at {phone} or by email {email}.",
    "Record {mrn} belongs to {name}; last visit {date}.",
)

NEGATIVE_TEMPLATES: tuple[str, ...] = (
    "A {age} year old man with hypertension, BP 142/88, HR 76.",
    "In {year} she started metformin 500 mg twice daily.",
    "History of Parkinson's disease since {year}; on levodopa 100 mg.",
    "Hemoglobin 12.{d} g/dL, platelets 250000, WBC 7.{d}.",
    "Take 1/2 tablet every {d} hours for 3 days, then stop.",
    "She is {age} years old and walks 2 miles daily.",
    "Diagnosed with type 2 diabetes in {year}; A1c 7.{d}%.",
    "Score 9 of 10 on the PHQ-9 in {year}; follow up in 6 weeks.",
    "Room 12, bed 3: Crohn's disease flare, started prednisone 40 mg.",
    "The {age}-year-old patient had an Apgar score of 9 at birth.",
)


@dataclass(frozen=True, slots=True)
class Entity:
    start: int
    end: int
    category: C
    value: str


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    entities: tuple[Entity, ...]
    template: int
    negative: bool
    split: Split


def _slots(values: Values) -> dict[str, tuple[C | None, Callable[[], str]]]:
    first, last = values.fake.first_name(), values.fake.last_name()
    f = values.fake
    return {
        "name": (C.NAME, lambda: f"{first} {last}"),
        "first": (C.NAME, lambda: first),
        "last": (C.NAME, lambda: last),
        "dob": (C.DOB, values.date),
        "date": (C.DATE, values.date),
        "age90": (C.AGE_OVER_89, values.age_over_89),
        "phone": (C.PHONE, values.phone),
        "fax": (C.FAX, values.phone),
        "email": (C.EMAIL, f.email),
        "ssn": (C.SSN, values.ssn),
        "mrn": (C.MEDICAL_RECORD, values.mrn),
        "member": (C.INSURANCE_ID, values.member_id),
        "mbi": (C.INSURANCE_ID, values.mbi),
        "card": (C.ACCOUNT, values.card),
        "npi": (C.LICENSE, values.npi),
        "dea": (C.LICENSE, values.dea),
        "vin": (C.VEHICLE, values.vin),
        "plate": (C.VEHICLE, f.license_plate),
        "serial": (C.DEVICE, values.serial),
        "url": (C.URL, f.url),
        "ip": (C.IP_ADDRESS, f.ipv4_public),
        "street": (C.ADDRESS, values.street),
        "citystzip": (C.LOCATION, lambda: f"{f.city()}, {f.state_abbr()} {f.zipcode()}"),
        "facility": (C.LOCATION, values.facility),
        # hard-negative slots (no PHI)
        "age": (None, lambda: str(values.rng.randint(18, 89))),
        "year": (None, lambda: str(values.rng.randint(1960, 2025))),
        "d": (None, lambda: str(values.rng.randint(1, 9))),
    }


_SLOT = re.compile(r"\{(\w+)\}")


def _fill(template: str, values: Values) -> tuple[str, tuple[Entity, ...]]:
    slots = _slots(values)
    out: list[str] = []
    entities: list[Entity] = []
    pos = last = 0
    for m in _SLOT.finditer(template):
        literal = template[last : m.start()]
        out.append(literal)
        pos += len(literal)
        category, make = slots[m.group(1)]
        value = make()
        if category is not None:
            entities.append(Entity(pos, pos + len(value), category, value))
        out.append(value)
        pos += len(value)
        last = m.end()
    out.append(template[last:])
    return "".join(out), tuple(entities)


def generate(per_template: int = 50, seed: int = 6) -> list[Example]:
    """``per_template`` examples of every template, deterministic for a seed."""
    examples: list[Example] = []
    for negative, templates in ((False, TEMPLATES), (True, NEGATIVE_TEMPLATES)):
        for t, template in enumerate(templates):
            split: Split = "tune" if t % 2 == 0 else "test"
            for i in range(per_template):
                values = Values(seed * 1_000_003 + t * 10_007 + i + (500_000 if negative else 0))
                text, entities = _fill(template, values)
                examples.append(Example(text, entities, t, negative, split))
    return examples
