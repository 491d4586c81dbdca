"""Cost and billed amount of a request, as the platform computes them.

    cost   = input_tokens x input_per_million / 10^6 + output_tokens x output_per_million / 10^6
    billed = cost x (1 + markup)

Exact ``Decimal`` arithmetic (the context's 28 significant digits, far more than any price needs);
nothing is rounded here: reports round when they present an amount.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from gateway.config import PricingConfig

_MILLION: Final = Decimal(1_000_000)


def cost_of(input_tokens: int, output_tokens: int, pricing: PricingConfig) -> Decimal:
    """What the tokens cost the platform."""
    return (
        Decimal(input_tokens) * pricing.input_per_million
        + Decimal(output_tokens) * pricing.output_per_million
    ) / _MILLION


def billed_of(cost: Decimal, pricing: PricingConfig) -> Decimal:
    """What the tenant is billed for ``cost``."""
    return cost * (1 + pricing.markup)


def present(amount: Decimal, places: int = 6) -> str:
    """An amount rounded half-even to ``places`` decimals, for reports."""
    return str(amount.quantize(Decimal(1).scaleb(-places)))
