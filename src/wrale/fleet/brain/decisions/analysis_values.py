"""The plain values the recommendations' analysis reads and returns: a board's fan days and
recent means, the ``Trends`` read beside the view, and a ``Recommendation``. Pure: no I/O,
no clock; ``analysis`` re-exports them, so this module never imports from it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class FanDay:
    """A board's fan over one day of its history: hours it was driven (duty at or above
    the failure threshold), and its mean duty and RPM over those hours."""

    day_start: float
    hours: int
    duty_pct: float
    rpm: float


@dataclass(frozen=True, slots=True)
class BoardMeans:
    """A board's mean CPU temperature and power over the last minutes (``None``: none)."""

    temp_c: float | None = None
    power_w: float | None = None


@dataclass(frozen=True)
class Trends:
    """What the analysis reads beside the view. ``fans``: each board's days, oldest first
    (``None``: not read this pass, so ``fan_wear`` is not decided); ``battery_drain``: the
    slope of a board's battery percentage, per minute (negative: draining); ``names``:
    display names of boards, racks and rooms by id."""

    means: Mapping[str, BoardMeans] = field(default_factory=dict)
    fans: Mapping[str, Sequence[FanDay]] | None = None
    battery_drain: Mapping[str, float] = field(default_factory=dict)
    names: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Recommendation:
    """``action``: what accepting it does (``None``: nothing automatic, accepting it
    acknowledges it); ``advice``: what a person should do."""

    kind: str
    subject: str
    title: str
    evidence: Mapping[str, Any]
    score: float
    advice: str
    action: Mapping[str, Any] | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.subject)
