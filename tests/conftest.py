"""Fixtures shared by the whole test suite.

``sim_board`` is the project's one shared simulated board: fresh, deterministic (seed 1)
and on a ``FakeClock``, so tests advance its physics instead of sleeping.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from wrale.metal.hw.sim import SimBoard
from wrale.shared.clock import FakeClock
from wrale.shared.config import SimSettings

# CI runs the same examples every time (no flaky shrinking on a loaded machine);
# a developer's run explores new ones.
settings.register_profile(
    "ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
def sim_board() -> SimBoard:
    """A fresh simulated Pi 5 (seed 1, FakeClock, 10 % load, 25 °C, 20 Wh battery)."""
    return SimBoard(SimSettings(seed=1), clock=FakeClock())
