"""What a simulated component needs from the board that owns it: a lock and fresh physics.

Components never integrate physics themselves; they ask the board to bring it up to date
(``reading``) or to recompute what depends on a change they make (``changing``).
"""

from __future__ import annotations

import random
from contextlib import AbstractContextManager
from typing import Protocol


class Runtime(Protocol):
    def reading(self) -> AbstractContextManager[None]:
        """Hold the board's lock with physics integrated up to the clock's time."""
        ...

    def changing(self) -> AbstractContextManager[None]:
        """As ``reading``, and recompute the board's derived state when the block ends."""
        ...


class Noise:
    """Sensor noise from one seeded generator; silent when ``enabled`` is false."""

    def __init__(self, seed: int | None, *, enabled: bool) -> None:
        self._rng = random.Random(seed)
        self.enabled = enabled

    def gauss(self, sigma: float, limit: float | None = None) -> float:
        """A zero-mean normal sample, clipped to ±``limit`` (default 3 sigma)."""
        if not self.enabled or sigma <= 0:
            return 0.0
        bound = 3 * sigma if limit is None else limit
        return max(-bound, min(bound, self._rng.gauss(0.0, sigma)))
