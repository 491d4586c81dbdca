"""A held-out evaluation set: templates written on 2026-11-23 (issue 6, part 2) after the detector
was frozen and committed *before* they were first scored, never used for tuning. Their phrasing
deliberately differs from ``corpus.TEMPLATES`` (note style, other cues, other word order), so they
measure how the rules generalise rather than how well they fit the corpus they were tuned on.

If the detector is ever tuned after looking at this set's misses, it stops being held out: write a
new one and say so in ``results.md``.
"""

from __future__ import annotations

from bench.phi_eval.corpus import Example, _fill
from bench.phi_eval.values import Values

HELD_OUT_TEMPLATES: tuple[str, ...] = (
    "Pt {name} presented to the ED c/o shortness of breath; DOB: {dob}.",
    "Spoke with {first} by phone ({phone}); she confirmed the appointment on {date}.",
    "Referral received from Dr. {last} for {name}, chart {mrn}.",
    "HPI: {age90} y/o male, lives alone at {street}, {citystzip}.",
    "Labs faxed to {fax} on {date} per patient {name}'s request.",
    "Insurance: Medicare {mbi}; secondary plan member ID {member}.",
    "Social security number on the intake form: {ssn}.",
    "Next of kin: {name} (son), cell {phone}, email {email}.",
    "Follow-up telehealth link {url} sent from {ip}.",
    "Implant device serial {serial} recorded at {facility} on {date}.",
    "{name}, MRN {mrn}, was discharged home on {date}.",
    "Prescriber {name}, DEA {dea}, NPI {npi}.",
    "Patient's car (VIN {vin}) was towed; plate {plate}.",
    "Payment declined for card ending in {card}; billed to {name}.",
    "Assessment: {first} {last} is a {age90} yo woman with CHF, admitted {date}.",
    "Mailing address updated: {street}, {citystzip}.",
    "Per {email}, the family of Mrs. {last} requests records.",
    "Born on {dob} in {citystzip}, {name} moved here last year.",
)

HELD_OUT_NEGATIVES: tuple[str, ...] = (
    "BP {age}/70, pulse {age}, temp 98.{d} F; no acute distress.",
    "Start lisinopril 10 mg daily; recheck BMP in {d} weeks.",
    "Since {year}, two admissions for COPD exacerbation.",
    "{age} yo with Graves' disease, TSH 0.0{d}, free T4 2.{d}.",
    "Dose: 0.5 mL IM once, lot not recorded, site left deltoid.",
    "Ejection fraction {age}% on echo; NYHA class {d}.",
)


def generate_heldout(per_template: int = 50, seed: int = 23) -> list[Example]:
    """``per_template`` examples of every held-out template (split ``heldout``), deterministic."""
    examples: list[Example] = []
    for negative, templates in ((False, HELD_OUT_TEMPLATES), (True, HELD_OUT_NEGATIVES)):
        for t, template in enumerate(templates):
            for i in range(per_template):
                values = Values(seed * 2_000_003 + t * 20_011 + i + (700_000 if negative else 0))
                text, entities = _fill(template, values)
                examples.append(Example(text, entities, 100 + t, negative, "test"))
    return examples
