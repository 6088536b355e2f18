"""``SteppedClock``: the simulated boards' physics clock in a ``SimFleet`` on real time. It
reads its base clock but moves on only in steps of at least ``step_s``, so the several
reads of one sampling step (thermal, fan, throttle, power, tamper, storage) see one
instant and the board integrates its physics once per step instead of once per read.
Physics only: timestamps and intervals stay on the fleet's own clock.
"""

from __future__ import annotations

from wrale.shared.clock import Clock

PHYSICS_STEP_S = 0.02  # real seconds: far below the boards' thermal time constants (~s)


class SteppedClock:
    """``base``'s time, held for ``step_s`` after each move (a ``Clock``)."""

    def __init__(self, base: Clock, step_s: float = PHYSICS_STEP_S) -> None:
        if step_s < 0:
            raise ValueError("step_s must be >= 0")
        self.step_s = step_s
        self._base = base
        self._mono = base.monotonic()
        self._wall = base.now()

    def monotonic(self) -> float:
        mono = self._base.monotonic()
        if mono - self._mono >= self.step_s:
            self._mono, self._wall = mono, self._base.now()
        return self._mono

    def now(self) -> float:
        self.monotonic()
        return self._wall

    async def sleep(self, seconds: float) -> None:
        await self._base.sleep(seconds)
