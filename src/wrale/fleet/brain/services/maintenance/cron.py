"""A small strict parser of five-field cron expressions (minute hour day-of-month month
day-of-week) and the start times they give in a time zone. Pure: no IO, no clock.

Accepted in each field: ``*``, a number, a range ``a-b``, a step ``*/n`` or ``a-b/n``, and
comma-separated lists of those. Day of week is 0-7 (0 and 7 are Sunday). No names, no
``?``, ``L``, ``W`` or ``#``. As in classic cron, when both day of month and day of week
are restricted a day matches either of them.

Local times are wall-clock times in the zone: a start that falls in a spring-forward gap
(02:30 on the night the clocks go from 02:00 to 03:00) happens at the same distance after
the jump (03:30); a start in a fall-back hour happens at its first occurrence.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

MAX_LEN = 100
SEARCH_DAYS = 4 * 366 + 1  # a start on 29 February is found within four years
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12))


class CronError(ValueError):
    """The expression is not valid; the message names the field and what is wrong."""


def _number(text: str, name: str, lo: int, hi: int) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 2:
        raise CronError(f"{name}: {text!r} is not a number")
    value = int(text)
    if not lo <= value <= hi:
        raise CronError(f"{name}: {value} is outside {lo}-{hi}")
    return value


def _field(text: str, name: str, lo: int, hi: int) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{name}: empty list item")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text or part.endswith("/"):
            step = _number(step_text, name, 1, hi - lo + 1)
        if base == "*":
            first, last = lo, hi
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = _number(a, name, lo, hi), _number(b, name, lo, hi)
            if first > last:
                raise CronError(f"{name}: range {base} goes backwards")
        else:
            first = _number(base, name, lo, hi)
            last = hi if step_text else first
        out.update(range(first, last + 1, step))
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Monday … 6 = Sunday (Python's weekday())
    any_day: bool  # day of month is "*"
    any_weekday: bool  # day of week is "*"

    def day_matches(self, d: date) -> bool:
        if d.month not in self.months:
            return False
        dom, dow = d.day in self.days, d.weekday() in self.weekdays
        if self.any_day or self.any_weekday:
            return dom and dow
        return dom or dow


def parse(expr: str) -> Cron:
    """The parsed expression; ``CronError`` says what is wrong."""
    if not isinstance(expr, str) or len(expr) > MAX_LEN:
        raise CronError(f"at most {MAX_LEN} characters")
    parts = expr.split()
    if len(parts) != 5:
        raise CronError("five fields: minute hour day-of-month month day-of-week")
    minute, hour, dom, month = (
        _field(p, n, lo, hi) for p, (n, lo, hi) in zip(parts, _FIELDS, strict=False)
    )
    cron_dow = _field(parts[4], "day of week", 0, 7)
    weekdays = frozenset((d - 1) % 7 for d in cron_dow)  # cron 0/7 = Sunday = Python 6
    return Cron(minute, hour, dom, month, weekdays, parts[2] == "*", parts[4] == "*")


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ``CronError`` when there is none by that name."""
    try:
        if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ValueError, OSError, KeyError):
        raise CronError(f"unknown time zone {name!r} (an IANA name, e.g. Europe/Berlin)") from None


def _starts_on(cron: Cron, d: date, tz: ZoneInfo) -> Iterator[float]:
    if not cron.day_matches(d):
        return
    for h in sorted(cron.hours):
        for m in sorted(cron.minutes):
            yield datetime(d.year, d.month, d.day, h, m, tzinfo=tz).timestamp()


def _local_date(ts: float, tz: ZoneInfo) -> date:
    return datetime.fromtimestamp(ts, UTC).astimezone(tz).date()


def last_start(cron: Cron, tz: ZoneInfo, at: float, lookback_s: float) -> float | None:
    """The latest start in ``[at - lookback_s, at]``, or None."""
    first = _local_date(at - lookback_s, tz) - timedelta(days=1)
    last = _local_date(at, tz) + timedelta(days=1)
    best: float | None = None
    d = first
    while d <= last:
        for ts in _starts_on(cron, d, tz):
            if at - lookback_s <= ts <= at and (best is None or ts > best):
                best = ts
        d += timedelta(days=1)
    return best


def next_start(cron: Cron, tz: ZoneInfo, after: float) -> float | None:
    """The first start strictly after ``after``, or None when none comes in four years
    (e.g. ``0 0 31 2 *``)."""
    d = _local_date(after, tz) - timedelta(days=1)
    for _ in range(SEARCH_DAYS):
        found = [ts for ts in _starts_on(cron, d, tz) if ts > after]
        if found:
            return min(found)
        d += timedelta(days=1)
    return None


def local_text(ts: float, tz: ZoneInfo) -> str:
    """``2026-12-07 02:00 Europe/Berlin``."""
    return f"{datetime.fromtimestamp(ts, tz):%Y-%m-%d %H:%M} {tz.key}"
