"""Cost and billed amount against hand-computed cases (Decimal, no rounding until presented)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateway.config import PricingConfig, load_config
from gateway.metering.cost import billed_of, cost_of, present


def _pricing(i: str, o: str, markup: str = "0") -> PricingConfig:
    return PricingConfig(
        input_per_million=Decimal(i), output_per_million=Decimal(o), markup=Decimal(markup)
    )


@pytest.mark.parametrize(
    ("tokens", "pricing", "cost", "billed"),
    [
        # 1,000 in x $2.50/M + 500 out x $10/M = 0.0025 + 0.005
        ((1000, 500), _pricing("2.5", "10"), "0.0075", "0.0075"),
        ((1000, 500), _pricing("2.5", "10", "0.2"), "0.0075", "0.009"),
        # zero prices: free whatever the markup
        ((123456, 654321), _pricing("0", "0", "0.5"), "0", "0"),
        # zero tokens
        ((0, 0), _pricing("3", "15", "0.1"), "0", "0"),
        # one token at $0.15/M: 1.5e-7, exactly
        ((1, 0), _pricing("0.15", "0.60"), "0.00000015", "0.00000015"),
        # 7 in, 3 out at 0.15/0.60 with 25 % markup: 1.05e-6 + 1.8e-6 = 2.85e-6; x 1.25
        ((7, 3), _pricing("0.15", "0.60", "0.25"), "0.00000285", "0.0000035625"),
        # a million of each at $1/M with 100 % markup
        ((10**6, 10**6), _pricing("1", "1", "1"), "2", "4"),
    ],
)
def test_hand_computed(
    tokens: tuple[int, int], pricing: PricingConfig, cost: str, billed: str
) -> None:
    computed = cost_of(*tokens, pricing)
    assert computed == Decimal(cost)
    assert billed_of(computed, pricing) == Decimal(billed)


def test_no_float_drift_over_many_requests() -> None:
    pricing = _pricing("0.1", "0.2", "0.1")
    total = sum((cost_of(1, 1, pricing) for _ in range(10_000)), Decimal(0))
    assert total == Decimal("0.003")  # 10,000 x 3e-7, exactly
    assert billed_of(total, pricing) == Decimal("0.0033")


def test_presentation_rounds_half_even() -> None:
    assert present(Decimal("0.0000025")) == "0.000002"
    assert present(Decimal("0.0000035")) == "0.000004"
    assert present(Decimal(0)) == "0.000000"


def test_toml_prices_are_read_exactly() -> None:
    config = load_config(
        """
[upstreams.u]
base_url = "http://127.0.0.1:1"
[models.m]
upstream = "u"
target = "t"
pricing = { input_per_million = 0.15, output_per_million = "0.6", markup = 0.1 }
[tenants.t]
models = ["*"]
[auth]
enabled = false
anonymous_tenant = "t"
""",
        {},
    )
    pricing = config.models["m"].pricing
    assert pricing == _pricing("0.15", "0.6", "0.1")
    assert cost_of(10**6, 10**6, pricing) == Decimal("0.75")


def test_negative_prices_are_refused() -> None:
    with pytest.raises(Exception, match="markup: must be a number >= 0"):
        load_config(
            """
[upstreams.u]
base_url = "http://127.0.0.1:1"
[models.m]
upstream = "u"
target = "t"
pricing = { markup = -0.5 }
[tenants.t]
models = ["*"]
[auth]
enabled = false
anonymous_tenant = "t"
""",
            {},
        )
