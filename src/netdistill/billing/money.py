"""Money and quantities without floats: the currency, the units, and the one rounding rule.

Exactness, end to end:

* Every amount is an **integer number of minor units** of the currency (cents for EUR,
  ``minor_units: 2``; yen for JPY, ``minor_units: 0``). Python sees ``Decimal`` only at the
  edges — parsing the scheme, rendering an invoice — and DuckDB computes with ``BIGINT`` /
  ``HUGEINT`` (128-bit integers; an overflow is an error, never a wrap).
* A **rate** (price per unit, e.g. ``"0.05"`` EUR per GB) is a ``Decimal`` with at most
  ``RATE_DECIMALS`` (9) decimal places, kept in SQL as the integer ``rate × 10^9``.
* A **quantity** is an integer of base units: bytes, microseconds (the roll-up's
  ``<c>_seconds`` doubles are turned back into the integer microseconds they were summed
  from: ``round(seconds × 10^6)`` is exact below 2^52 µs, 142 years), records.
* The **rounding rule**: the amount of one invoice line is
  ``quantity_base × rate / unit_size`` rounded **half to even** to the minor unit, once,
  from the exact quotient (``half_even_sql``: integer division and remainder on
  non-negative 128-bit integers). Pro-rated allowances and tier bounds are rounded half to
  even to whole base units, pro-rated minimum charges to the minor unit. Totals are the
  sums of the rounded lines; a correction is the difference of two rounded sums, so
  nothing is rounded twice.

YAML numbers like ``0.05`` are binary floats by the time the scheme sees them, so money
and rates must be written as strings (``"0.05"``) or integers; a float is refused with
that advice, whatever its value.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

#: decimal places a rate may have; rates live in SQL as integers rate × 10^RATE_DECIMALS
RATE_DECIMALS = 9
RATE_SCALE = 10**RATE_DECIMALS

#: unit name → (metric, base units per unit); bytes are counted in bytes, seconds in µs
UNITS: dict[str, tuple[str, int]] = {
    "B": ("bytes", 1),
    "kB": ("bytes", 10**3),
    "MB": ("bytes", 10**6),
    "GB": ("bytes", 10**9),
    "TB": ("bytes", 10**12),
    "KiB": ("bytes", 2**10),
    "MiB": ("bytes", 2**20),
    "GiB": ("bytes", 2**30),
    "TiB": ("bytes", 2**40),
    "second": ("seconds", 10**6),
    "minute": ("seconds", 60 * 10**6),
    "hour": ("seconds", 3600 * 10**6),
    "record": ("records", 1),
    "session": ("records", 1),
    "message": ("records", 1),
    "call": ("records", 1),
    "thousand": ("records", 1000),
}


def exact_decimal(value: Any, what: str) -> Decimal:
    """``value`` (a string or an int) as a finite ``Decimal``; floats are refused."""
    if isinstance(value, (bool, float)):
        raise ValueError(
            f'{what} {value!r}: write it as a string, e.g. "0.05" — a YAML number with a '
            "fraction is a binary float and money must be exact"
        )
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | str):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError(f"{what} {value!r}: not a decimal number") from None
    else:
        raise ValueError(f"{what} {value!r}: expected a decimal number as a string")
    if not result.is_finite():
        raise ValueError(f"{what} {value!r}: not a finite number")
    return result


def decimals(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -int(exponent))


def rate_scaled(rate: Decimal) -> int:
    """The integer rate × 10^9 (the rate must have at most 9 decimals)."""
    if decimals(rate) > RATE_DECIMALS:
        raise ValueError(f"rate {rate}: at most {RATE_DECIMALS} decimal places")
    return int(rate * RATE_SCALE)


def to_minor(amount: Decimal, minor_units: int) -> int:
    """An amount given in the scheme as integer minor units (it must be exact)."""
    if decimals(amount) > minor_units:
        raise ValueError(f"amount {amount}: more than {minor_units} decimal places")
    return int(amount.scaleb(minor_units))


def from_minor(minor: int, minor_units: int) -> Decimal:
    """Integer minor units → the ``Decimal`` amount (exact), e.g. 1234 → Decimal('12.34')."""
    return Decimal(int(minor)).scaleb(-minor_units).quantize(Decimal(1).scaleb(-minor_units))


def minor_text(minor: int, minor_units: int) -> str:
    """``str(from_minor(minor, minor_units))`` by integer arithmetic (rendering speed)."""
    if minor_units == 0:
        return str(minor)
    whole, part = divmod(abs(minor), 10**minor_units)
    return f"{'-' if minor < 0 else ''}{whole}.{part:0{minor_units}d}"


def quantity_text(base: int, unit_size: int, places: int = 9) -> str:
    """``quantity_in_unit`` as plain text (``"1.5"``, ``"20"``); exact integer formatting
    when the unit is a power of ten of base units, else through ``Decimal``."""
    text = str(unit_size)
    if text == "1" + "0" * (len(text) - 1) and len(text) - 1 <= places:
        whole, part = divmod(base, unit_size)
        if not part:
            return str(whole)
        digits = f"{part:0{len(text) - 1}d}".rstrip("0")
        return f"{whole}.{digits}"
    return format(quantity_in_unit(base, unit_size, places), "f")


def quantity_in_unit(base: int, unit_size: int, places: int = 9) -> Decimal:
    """A base quantity shown in its unit, rounded half to even to ``places`` decimals (for
    display only: amounts are computed from the exact base quantity)."""
    value = Decimal(int(base)) / Decimal(unit_size)
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN).normalize()


def half_even(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half to even, for non-negative integers (the
    Python twin of ``half_even_sql``, used for scheme-sized values)."""
    q, r = divmod(numerator, denominator)
    if 2 * r > denominator or (2 * r == denominator and q % 2 == 1):
        q += 1
    return q


def half_even_sql(numerator: str, denominator: str) -> str:
    """SQL for ``numerator / denominator`` rounded half to even, both non-negative
    ``HUGEINT`` expressions (DuckDB's ``//`` and ``%`` truncate; for non-negative
    operands that is floor)."""
    n, d = f"CAST(({numerator}) AS HUGEINT)", f"CAST(({denominator}) AS HUGEINT)"
    return (
        f"({n} // {d} + CASE WHEN 2 * ({n} % {d}) > {d}"
        f" OR (2 * ({n} % {d}) = {d} AND ({n} // {d}) % 2 = 1) THEN 1 ELSE 0 END)"
    )
