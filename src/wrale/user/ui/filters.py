"""The dashboard's Jinja2 filters (``age``, ``when``, ``num``). Each one is total: any
value a board or the database may hand it (None, NaN, infinities, 1e300, a huge int, a
string, a value of another type) renders as text, "—" when it is not a usable number."""

from __future__ import annotations

import math
import time
from decimal import Decimal
from fractions import Fraction

DASH = "—"
HUNDRED_YEARS_S = 100 * 365.25 * 86_400
FUTURE_SLACK_S = 86_400.0  # a clock a little ahead reads "0 s ago"; further ahead is junk
BIG = 1e15  # beyond this a number is shown in scientific notation, not 300 digits
MAX_DIGITS = 6
MAX_UNIT = 16


def number(value: object) -> float | None:
    """``value`` as a finite float, or None (a bool, a string or NaN is not a reading)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | Fraction):
        return None
    try:
        f = float(value)
    except (OverflowError, ValueError, ArithmeticError):
        return None
    return f if math.isfinite(f) else None


def fmt_age(at: object, now: object = None) -> str:
    """'12 s ago', '5 min ago', '3 h ago', '2 d ago'; '—' for never or nonsense."""
    t = number(at)
    if t is None:
        return DASH
    ref = number(now)
    s = (ref if ref is not None else time.time()) - t
    if not -FUTURE_SLACK_S <= s <= HUNDRED_YEARS_S:
        return DASH
    s = max(0.0, s)
    if s < 60:
        return f"{int(s)} s ago"
    if s < 3600:
        return f"{int(s // 60)} min ago"
    if s < 86_400:
        return f"{int(s // 3600)} h ago"
    return f"{int(s // 86_400)} d ago"


def fmt_time(at: object) -> str:
    """UTC 'YYYY-MM-DD HH:MM:SSZ'; '—' for never or a time no calendar can show."""
    t = number(at)
    if t is None:
        return DASH
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + "Z"
    except (OverflowError, OSError, ValueError):
        return DASH


def fmt_num(value: object, digits: object = 1, unit: object = "") -> str:
    """``value`` with thousands separators and ``digits`` decimals, then ``unit``."""
    n = number(value)
    if n is None:
        return DASH
    d = digits if isinstance(digits, int) and not isinstance(digits, bool) else 1
    d = min(max(d, 0), MAX_DIGITS)
    text = f"{n:,.{d}f}" if abs(n) < BIG else f"{n:.3g}"
    suffix = unit[:MAX_UNIT] if isinstance(unit, str) else ""
    return f"{text} {suffix}".rstrip() if suffix else text
