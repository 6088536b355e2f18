"""Fixtures shared by the whole test suite.

``sim_board`` is the project's one shared simulated board: fresh, deterministic (seed 1)
and on a ``FakeClock``, so tests advance its physics instead of sleeping.
"""

from __future__ import annotations

import pytest

from wrale.metal.hw.sim import SimBoard
from wrale.shared.clock import FakeClock
from wrale.shared.config import SimSettings


@pytest.fixture
def sim_board() -> SimBoard:
    """A fresh simulated Pi 5 (seed 1, FakeClock, 10 % load, 25 °C, 20 Wh battery)."""
    return SimBoard(SimSettings(seed=1), clock=FakeClock())
