"""Clocks: the system clock, a fake clock tests advance by hand, and a scaled clock.

Code that needs the time or must wait takes a ``Clock``; it never calls ``time`` directly,
so tests advance time without sleeping and the simulator can run faster than real time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Wall time for timestamps, monotonic time for intervals, and a way to wait."""

    def now(self) -> float:
        """Seconds since the Unix epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; only differences mean anything."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FakeClock:
    """A clock that moves only when told to; ``sleep`` advances it at once."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._wall_start = start
        self._elapsed = 0.0

    def now(self) -> float:
        return self._wall_start + self._elapsed

    def monotonic(self) -> float:
        return self._elapsed

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock cannot go back")
        self._elapsed += seconds

    def step_wall(self, seconds: float) -> None:
        """The wall clock is set (NTP sync, an RTC-less board's saved time): it jumps by
        ``seconds``, forward or back; the monotonic clock does not move."""
        self._wall_start += seconds

    async def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)


class ScaledClock:
    """Real time multiplied by ``speed``: at 60, one real second is a simulated minute."""

    def __init__(self, speed: float, base: Clock | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._base = base or SystemClock()
        self._wall0 = self._base.now()
        self._mono0 = self._base.monotonic()

    def monotonic(self) -> float:
        return (self._base.monotonic() - self._mono0) * self.speed

    def now(self) -> float:
        return self._wall0 + self.monotonic()

    async def sleep(self, seconds: float) -> None:
        await self._base.sleep(seconds / self.speed)
