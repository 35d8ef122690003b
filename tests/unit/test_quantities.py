"""Which quantities the ledger records, and how they read back
(``ledger.domain.quantities``).  Pure: no services."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ledger.domain.quantities import check_quantity, quantity_text
from ledger.errors import RuleViolation

RANGE = "is out of range: quantities are below 10^15 with at most 9 decimal places"


@pytest.mark.parametrize(
    ("text", "rule", "message"),
    [
        # Exponents too wide to write out: the rule still says which limit is broken.
        ("0E+1000000000", "positive-quantity", f"'0E+1000000000' {RANGE}"),
        ("1E-1000000000", "quantity-precision", f"'1E-1000000000' {RANGE}"),
        ("0", "positive-quantity", "must be greater than 0, got 0"),
        ("0.0000000001", "quantity-precision", f"0.0000000001 {RANGE}"),
        ("0.00000000010", "quantity-precision", f"0.00000000010 {RANGE}"),
        # 28 decimal places, which normalize() in a 28-digit context would round away.
        ("1.0000000000000000000000000001", "quantity-precision", None),
        ("1000000000000000", "quantity-precision", f"1000000000000000 {RANGE}"),
    ],
)
def test_quantities_refused(text: str, rule: str, message: str | None) -> None:
    with pytest.raises(RuleViolation) as caught:
        check_quantity(Decimal(text), "items[0].cap")
    error = caught.value
    assert (error.rule, error.field) == (rule, "items[0].cap")
    assert message is None or error.message == message


@pytest.mark.parametrize(
    "text",
    [
        "0.000000001",
        "1",
        "999999999999999.999999999",
        # Trailing zeros are not precision: these are 1e-9, 1.5 and 10 exactly.
        "0.0000000010",
        "1.500000000000",
        "10.000000000000000000000000000000",
        "1E+1",
    ],
)
def test_quantities_at_the_limits_are_recorded(text: str) -> None:
    check_quantity(Decimal(text), "quantity")


@pytest.mark.parametrize(
    ("text", "shown"),
    [("1000.50", "1,000.5"), ("100.0", "100"), ("1234", "1,234"), ("0.25", "0.25")],
)
def test_quantity_text(text: str, shown: str) -> None:
    """Thousands separated, no trailing zeros, no dangling decimal point."""
    assert quantity_text(Decimal(text)) == shown


def _recordable(value: Decimal) -> bool:
    """Whether the ledger records ``value``, from the rule's words: finite, positive,
    below 10^15, exact in 9 decimal places, and written with an exponent a message can
    echo (within +-30, as ``quantity_scale_error`` says)."""
    if not value.is_finite() or value <= 0 or value >= Decimal(10) ** 15:
        return False
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    if exponent < -30 or value.adjusted() > 30:
        return False
    return (Fraction(value) * 10**9).denominator == 1


@given(
    digits=st.integers(min_value=0, max_value=10**40),
    exponent=st.integers(min_value=-45, max_value=20),
    negative=st.booleans(),
)
@example(digits=1, exponent=15, negative=False)  # 10^15: the bound itself
@example(digits=10**24, exponent=-9, negative=False)  # 10^15 written with 9 places
@example(digits=10**24 - 1, exponent=-9, negative=False)  # just below it
@example(digits=10, exponent=-10, negative=False)  # 1e-9 written with 10 places
def test_check_quantity_refuses_exactly_what_the_rule_says(
    digits: int, exponent: int, negative: bool
) -> None:
    """Every shipment's quantity takes a shortcut on its exponent (at most 9 places as
    written, positive, below the bound): it must accept nothing the full check refuses,
    trailing zeros, long digit strings and tiny exponents included."""
    value = Decimal((int(negative), tuple(map(int, str(digits))), exponent))
    try:
        check_quantity(value, "quantity")
    except RuleViolation:
        assert not _recordable(value)
    else:
        assert _recordable(value)


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "-0", "0E-5", "-12.5"])
def test_check_quantity_refuses_what_is_not_a_positive_number(text: str) -> None:
    with pytest.raises(RuleViolation):
        check_quantity(Decimal(text), "quantity")
