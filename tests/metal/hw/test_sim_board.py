"""The simulated board as a whole: the ``Board`` contract, clocks, determinism and speed.

Includes a hypothesis property: temperatures stay finite and physically bounded for any
sequence of loads, rooms, fan duties and time steps.
"""

from __future__ import annotations

import math
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wrale.metal.hw.base import Fault, FaultKind
from wrale.metal.hw.sim import SimBoard
from wrale.shared.clock import FakeClock, ScaledClock
from wrale.shared.config import SimSettings


def test_board_contract(sim_board: SimBoard) -> None:
    assert sim_board.name == "board"
    assert sim_board.model == SimSettings().model
    assert (sim_board.backend, sim_board.blocking_io) == ("sim", False)
    assert sim_board.sim is sim_board
    for part in ("thermal", "fan", "throttle", "power", "tamper", "gpio"):
        assert getattr(sim_board, part) is not None
    sim_board.close()
    assert sim_board.thermal.read_thermal().cpu_temp_c is not None


def test_name_model_and_settings_are_taken() -> None:
    board = SimBoard(
        SimSettings(model="Pi 5 8GB (lab)", ambient_c=30, load_pct=50), name="rack1-u3"
    )
    assert (board.name, board.model, board.ambient_c, board.load_pct) == (
        "rack1-u3",
        "Pi 5 8GB (lab)",
        30.0,
        50.0,
    )
    assert isinstance(board.clock, FakeClock)


def test_reads_integrate_physics_up_to_an_outside_clock() -> None:
    clock = FakeClock()
    board = SimBoard(SimSettings(seed=1, noise=False, load_pct=0), clock=clock)
    board.set_load(100)  # from idle: a board starting loaded starts near its loaded heat
    start = board.soc_temp_c
    clock.advance(600)  # nobody tells the board
    cpu = board.thermal.read_thermal().cpu_temp_c
    assert cpu is not None
    assert cpu > start + 10


def test_scaled_clock_runs_physics_faster_and_refuses_advance() -> None:
    base = FakeClock()
    board = SimBoard(SimSettings(seed=1), clock=ScaledClock(60, base=base))
    board.inject_fault(Fault(FaultKind.MOTION))
    base.advance(0.1)  # 6 simulated seconds
    assert not board.tamper.read_tamper().motion_detected
    with pytest.raises(TypeError):
        board.advance(1)


@pytest.mark.parametrize("dt", [-1.0, math.nan, math.inf])
def test_advance_refuses_bad_steps(sim_board: SimBoard, dt: float) -> None:
    with pytest.raises(ValueError, match="dt_s"):
        sim_board.advance(dt)


def script(board: SimBoard) -> list[object]:
    seen: list[object] = []
    for step in range(50):
        board.set_load(step * 2)
        board.fan.set_fan_duty(100 - step * 2)
        board.advance(7.0)
        seen += [board.thermal.read_thermal(), board.fan.read_fan(), board.power.read_power()]
    return seen


def test_same_seed_same_readings() -> None:
    assert script(SimBoard(SimSettings(seed=7))) == script(SimBoard(SimSettings(seed=7)))
    assert script(SimBoard(SimSettings(seed=7))) != script(SimBoard(SimSettings(seed=8)))


def test_noise_off_reads_the_true_values() -> None:
    board = SimBoard(SimSettings(seed=1, noise=False))
    assert script(board) == script(SimBoard(SimSettings(seed=99, noise=False)))
    assert board.thermal.read_thermal().cpu_temp_c == board.soc_temp_c


def test_an_hour_of_physics_is_fast(sim_board: SimBoard) -> None:
    sim_board.fan.set_fan_duty(60)
    started = time.perf_counter()
    sim_board.advance(3600)
    assert time.perf_counter() - started < 0.25  # about 5 ms on a laptop


def test_a_week_of_physics_stays_sane() -> None:
    board = SimBoard(SimSettings(seed=1, solar_peak_w=20, load_pct=80))
    board.advance(7 * 86400)
    assert 25 < board.soc_temp_c < 25 + 7 * 11
    status = board.status()
    assert status["sim_time_s"] == 7 * 86400
    assert 0 <= status["battery_pct"] <= 100


step = st.tuples(
    st.floats(0, 100),  # load %
    st.floats(-40, 80),  # ambient °C
    st.floats(0, 100),  # fan duty %
    st.booleans(),  # fan stalled
    st.floats(0, 7200),  # seconds to run
)


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(step, min_size=1, max_size=12), seed=st.integers(0, 2**32))
def test_temperatures_stay_finite_and_physical(
    steps: list[tuple[float, float, float, bool, float]], seed: int
) -> None:
    board = SimBoard(SimSettings(seed=seed))
    for load, ambient, duty, stalled, seconds in steps:
        board.set_load(load)
        board.set_ambient(ambient)
        board.fan.set_fan_duty(duty)
        board.clear_faults()
        if stalled:
            board.inject_fault(Fault(FaultKind.FAN_FAILURE))
        # Bounds of a two-node model heated by at most 7 W (die 2.5 K/W to its sink, sink at
        # most 10.5 K/W to the room): nothing drops below the coldest of die, sink and room;
        # (M, M - 7 W x 2.5 K/W) is a state both nodes cool from, so the die stays under M.
        die, sink = board.soc_temp_c, board.heat_sink_temp_c
        low = min(die, sink, ambient)
        high = max(die, sink + 7.0 * 2.5, ambient + 7.0 * (2.5 + 10.5))
        board.advance(seconds)
        temp = board.soc_temp_c
        assert math.isfinite(temp)
        assert low - 1e-6 <= temp <= high + 1e-6
        reading = board.thermal.read_thermal()
        assert reading.cpu_temp_c is not None
        assert abs(reading.cpu_temp_c - temp) <= 0.2 + 1e-9
        rpm = board.fan.read_fan().rpm
        assert rpm is not None
        assert 0 <= rpm <= 8000 * 1.02


def test_reading_releases_the_board_after_an_error_inside() -> None:
    board = SimBoard(SimSettings(seed=1), clock=FakeClock())
    with pytest.raises(RuntimeError), board.reading():
        raise RuntimeError("a reader failed")
    got: list[bool] = []

    def other_reader() -> None:
        got.append(board._lock.acquire(timeout=1))
        board._lock.release()

    t = threading.Thread(target=other_reader)
    t.start()
    t.join()
    assert got == [True]
    with board.reading(), board.reading():  # re-entrant, as the components nest it
        assert board.soc_temp_c > 0
