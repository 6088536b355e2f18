"""Validation of numbers arriving from tests, demos and ``/v1/sim`` requests.

Every bad value becomes an ``InvalidRequestError`` naming the value and its allowed range.
"""

from __future__ import annotations

import math
from typing import Any

from wrale.shared.errors import InvalidRequestError


def check_number(name: str, value: Any, lo: float, hi: float, **details: Any) -> float:
    """``value`` as a float in [lo, hi]; bools, non-numbers and NaN are refused."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequestError(f"{name} must be a number, got {value!r}", **details)
    number = float(value)
    if not math.isfinite(number) or not lo <= number <= hi:
        raise InvalidRequestError(
            f"{name} must be between {lo:g} and {hi:g}, got {value!r}", **details
        )
    return number
