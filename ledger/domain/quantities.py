"""Quantities: which ones the ledger can record, and how they read back."""

from __future__ import annotations

from decimal import Decimal

from ledger.errors import RuleViolation
from ledger.events import quantity_scale_error

MAX_QUANTITY = Decimal(10) ** 15
QUANTITY_DECIMALS = 9


def check_quantity(value: Decimal, field: str) -> None:
    """A quantity the ledger can record: positive, below 10^15, at most 9 decimal places
    (``ledger check`` asks it of a request too, so it refuses what ``apply`` would)."""
    # Every shipment asks this: a value written with at most 9 decimal places, positive
    # and below the bound passes on its exponent alone (it needs at most -exponent places,
    # and its exponent is far inside the scale checked below), without the digits joined.
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -QUANTITY_DECIMALS and 0 < value < MAX_QUANTITY:
        return
    # Echoed in plain decimal notation (1e3 reads back as 1000, not Decimal's 1E+3), but
    # only once the exponent says that is short: 1E+1000000000 would be a gigabyte.
    too_wide = quantity_scale_error(value, value)
    if too_wide:
        rule = "positive-quantity" if value <= 0 else "quantity-precision"
        raise RuleViolation(rule, too_wide, field=field)
    if not value.is_finite() or value <= 0:
        raise RuleViolation(
            "positive-quantity", f"must be greater than 0, got {value:f}", field=field
        )
    # Bounded so that caps and the sums of shipments stay exact in decimal arithmetic
    # (24 significant digits at most, within the default 28-digit context).
    if value >= MAX_QUANTITY or _decimal_places(value) > QUANTITY_DECIMALS:
        raise RuleViolation(
            "quantity-precision",
            f"{value:f} is out of range: quantities are below 10^15 with at most "
            f"{QUANTITY_DECIMALS} decimal places",
            field=field,
        )


def _decimal_places(value: Decimal) -> int:
    """The decimal places the value needs: 0.0000000010 needs 9, as 0.000000001 does
    (trailing zeros written out are no precision the value has).  Counted on the digits,
    not with ``normalize()``, which rounds to the context's 28 digits first."""
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite: checked before
    trailing = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -(exponent + trailing))


def quantity_text(value: Decimal) -> str:
    """A quantity as people read it: thousands separated, no trailing zeros."""
    text = f"{value:,f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
