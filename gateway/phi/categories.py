"""PHI categories (``phi.md`` §1.1) and the default set a detector looks for.

Invariant: DIAGNOSIS and TREATMENT exist but are never in ``DEFAULT_CATEGORIES``; they are clinical
content, not Safe Harbor identifiers, and redacting them strips what the model needs.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Category(StrEnum):
    """A kind of PHI; its value is the ``<CATEGORY>`` part of ``[PHI_<CATEGORY>_<n>]``."""

    NAME = "NAME"
    ADDRESS = "ADDRESS"
    LOCATION = "LOCATION"
    DOB = "DOB"
    DATE = "DATE"
    AGE_OVER_89 = "AGE_OVER_89"
    PHONE = "PHONE"
    FAX = "FAX"
    EMAIL = "EMAIL"
    SSN = "SSN"
    MEDICAL_RECORD = "MEDICAL_RECORD"
    INSURANCE_ID = "INSURANCE_ID"
    ACCOUNT = "ACCOUNT"
    LICENSE = "LICENSE"
    VEHICLE = "VEHICLE"
    DEVICE = "DEVICE"
    URL = "URL"
    IP_ADDRESS = "IP_ADDRESS"
    ID = "ID"
    DIAGNOSIS = "DIAGNOSIS"
    TREATMENT = "TREATMENT"


#: Opt-in only (stricter tenant policies).
CLINICAL: Final = frozenset({Category.DIAGNOSIS, Category.TREATMENT})

#: Every Safe Harbor category that occurs in text.
DEFAULT_CATEGORIES: Final = frozenset(Category) - CLINICAL
