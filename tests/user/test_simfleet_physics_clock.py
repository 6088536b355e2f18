"""The simulated fleet's physics clock: its base clock's time, moved on only in steps of
``step_s``, so the reads of one sampling step see one instant (one physics integration)."""

from __future__ import annotations

import asyncio

import pytest

from wrale.metal.hw.sim.board import SimBoard
from wrale.shared.clock import FakeClock
from wrale.shared.config import SimSettings
from wrale.user.simfleet.physics_clock import SteppedClock


def test_holds_the_time_within_a_step_and_moves_past_it() -> None:
    base = FakeClock(start=1_000.0)
    clock = SteppedClock(base, step_s=0.02)
    assert (clock.monotonic(), clock.now()) == (0.0, 1_000.0)
    base.advance(0.015)
    assert (clock.monotonic(), clock.now()) == (0.0, 1_000.0)  # held
    base.advance(0.01)
    assert clock.monotonic() == pytest.approx(0.025)
    assert clock.now() == pytest.approx(1_000.025)  # wall and monotonic move together
    base.advance(5.0)
    assert clock.now() == pytest.approx(1_005.025)


def test_never_runs_behind_its_base_by_a_step_or_more() -> None:
    base = FakeClock()
    clock = SteppedClock(base, step_s=0.02)
    for _ in range(500):
        base.advance(0.007)
        assert 0.0 <= base.monotonic() - clock.monotonic() < 0.02


def test_step_zero_is_the_base_clock() -> None:
    base = FakeClock()
    clock = SteppedClock(base, step_s=0.0)
    base.advance(1e-6)
    assert clock.monotonic() == base.monotonic()
    with pytest.raises(ValueError, match="step_s"):
        SteppedClock(base, step_s=-1.0)


def test_sleep_waits_on_the_base_clock() -> None:
    base = FakeClock()
    asyncio.run(SteppedClock(base).sleep(3.0))
    assert base.monotonic() == 3.0


def test_a_board_on_it_integrates_once_for_the_reads_of_one_step() -> None:
    """Six reads at one held instant: physics moves once; the readings are those of a
    board on the base clock read at that instant."""
    base = FakeClock()
    board = SimBoard(SimSettings(noise=False), clock=SteppedClock(base, step_s=0.02))
    twin = SimBoard(SimSettings(noise=False), clock=FakeClock())
    steps = 0
    step = board._step

    def counted(dt: float, t_end: float) -> None:
        nonlocal steps
        steps += 1
        step(dt, t_end)

    board._step = counted  # type: ignore[method-assign]
    base.advance(3.0)
    board.thermal.read_thermal()
    assert steps >= 1
    steps = 0
    for _ in range(5):
        base.advance(0.001)  # the other reads of the step, a little later
        board.fan.read_fan()
        board.power.read_power()
    assert steps == 0
    assert board.soc_temp_c == pytest.approx(twin_at(twin, 3.0))


def twin_at(board: SimBoard, t: float) -> float:
    board.advance(t)
    return board.soc_temp_c
