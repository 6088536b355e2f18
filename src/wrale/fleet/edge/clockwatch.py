"""Readings taken before a board's wall clock was set. A Pi without an RTC battery boots at
its last saved time (fake-hwclock) or in 1970 and jumps when NTP syncs: ``WallSteps``
notices the jump (wall minus monotonic time moves), ``retime`` moves the readings not yet
in the outbox by it, and ``plausible`` says whether the wall clock can be believed at all
(the central refuses readings before 2000; before 2020 a board's clock was never set).
Pure: no clock is read here."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from wrale.fleet.edge.telemetry import Point

PLAUSIBLE_FROM: Final = 1_577_836_800.0  # 2020-01-01T00:00Z: older than this software
STEP_S: Final = 2.0  # NTP slews smaller differences; a larger one is a step
HOLD_S: Final = 300.0  # readings held at most this long waiting for the clock to be set


def plausible(wall: float) -> bool:
    """The wall clock has been set at some point (not 1970, not before this software)."""
    return wall >= PLAUSIBLE_FROM


class WallSteps:
    """Notices the wall clock being set: between two looks, wall minus monotonic time moved
    by more than ``step_s`` (slow NTP slewing never does)."""

    def __init__(self, step_s: float = STEP_S) -> None:
        if step_s <= 0:
            raise ValueError("step_s must be positive")
        self.step_s = step_s
        self._offset: float | None = None

    def observe(self, wall: float, mono: float) -> float:
        """The step since the last look (seconds, + forward, - back), or 0.0."""
        offset = wall - mono
        prev, self._offset = self._offset, offset
        if prev is None or abs(offset - prev) <= self.step_s:
            return 0.0
        return offset - prev


def retime(
    pending: Iterable[Point], current: Iterable[Point], step: float, wall: float
) -> tuple[list[Point], list[Point]]:
    """Readings moved onto the new time after a ``step`` seen at ``wall``: every pending one
    (taken before the step), and of the current reading those whose time is nearer the old
    time than the new one (sampled just before the step)."""
    moved = [(m, ts + step, v) for m, ts, v in pending]
    now_before = wall - step
    cur = [
        (m, ts + step, v) if abs(ts - now_before) < abs(ts - wall) else (m, ts, v)
        for m, ts, v in current
    ]
    return moved, cur
