"""The hardware contract every backend keeps, run against the simulator and the Linux backend.

The Linux board runs over a fake Pi 5 sysfs tree (with a UPS HAT) and a fake libgpiod chip.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from tests.metal.hw.fakechip import FakeChip
from tests.metal.hw.fakesys import FakeSys
from wrale.metal.hw.base import (
    Board,
    Direction,
    FanOwner,
    FanReading,
    LineConfig,
    PowerSource,
    Pull,
    SourceReading,
    TamperInput,
)
from wrale.metal.hw.sim import SimBoard
from wrale.shared.clock import FakeClock
from wrale.shared.config import SimSettings
from wrale.shared.errors import ConflictError, InvalidRequestError, NotFoundError


@pytest.fixture(params=["sim", "linux"])
def board(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Board]:
    if request.param == "sim":
        made: Board = SimBoard(SimSettings(seed=1), clock=FakeClock())
    else:
        fake = FakeSys(tmp_path)
        fake.add_power_supply("ups-ac", "Mains", online=1, voltage_now=5_080_000)
        fake.add_power_supply("ups-cell", "Battery", present=1, capacity=90, status="Full")
        made = fake.board(chip=FakeChip(), power_supplies={"main": "ups-ac", "battery": "ups-cell"})
    yield made
    made.close()


def test_board_attributes(board: Board) -> None:
    assert isinstance(board.name, str)
    assert board.name
    assert isinstance(board.model, str)
    assert board.model
    assert board.backend in {"sim", "linux"}
    assert isinstance(board.blocking_io, bool)
    assert (board.sim is None) == (board.backend == "linux")
    for part, method in [
        (board.thermal, "read_thermal"),
        (board.fan, "set_fan_duty"),
        (board.throttle, "set_max_freq"),
        (board.power, "request_shutdown"),
        (board.tamper, "read_tamper"),
        (board.gpio, "drain_edge_events"),
    ]:
        assert callable(getattr(part, method))


def test_thermal_types_and_plausible_ranges(board: Board) -> None:
    reading = board.thermal.read_thermal()
    assert isinstance(reading.cpu_temp_c, float)
    assert 0 < reading.cpu_temp_c < 110
    for other in (reading.gpu_temp_c, reading.ambient_temp_c):
        assert other is None or (isinstance(other, float) and -40 < other < 110)


def test_fan_duty_round_trip(board: Board) -> None:
    board.fan.set_fan_duty(40)
    reading = board.fan.read_fan()
    assert isinstance(reading, FanReading)
    assert reading.duty_pct == pytest.approx(40, abs=1)
    assert reading.rpm is None or reading.rpm >= 0


@pytest.mark.parametrize("duty", [-1, 100.1, math.nan])
def test_invalid_fan_duty_is_rejected(board: Board, duty: float) -> None:
    with pytest.raises(InvalidRequestError):
        board.fan.set_fan_duty(duty)


def test_throttle_cap_round_trip(board: Board) -> None:
    board.throttle.set_max_freq(70)
    assert board.throttle.read_throttle().max_freq_pct == pytest.approx(70, abs=1)
    board.throttle.set_max_freq(100)
    assert board.throttle.read_throttle().max_freq_pct == pytest.approx(100, abs=1)
    with pytest.raises(InvalidRequestError):
        board.throttle.set_max_freq(5)


def test_power_fields_and_units(board: Board) -> None:
    reading = board.power.read_power()
    assert isinstance(reading.source, PowerSource)
    assert reading.voltage_v is None or 4.0 < reading.voltage_v < 5.6  # the 5 V rail
    assert reading.current_a is None or 0 <= reading.current_a < 6
    assert reading.power_w is None or 0 <= reading.power_w < 30
    assert reading.battery_pct is None or 0 <= reading.battery_pct <= 100
    assert isinstance(reading.battery_charging, bool)
    assert isinstance(reading.battery_healthy, bool)
    assert all(isinstance(s, SourceReading) for s in reading.sources)
    assert reading.available(reading.source)
    board.power.select_source(PowerSource.MAIN)  # never an error


def test_tamper_reading_types(board: Board) -> None:
    reading = board.tamper.read_tamper()
    for value in (reading.case_open, reading.motion_detected, reading.voltage_normal):
        assert value is None or isinstance(value, bool)
    assert isinstance(reading.transitions, Mapping)
    for key, count in reading.transitions.items():
        assert isinstance(key, TamperInput)
        assert isinstance(count, int)
        assert count >= 0


def test_gpio_configure_read_write(board: Board) -> None:
    board.gpio.configure_line(17, LineConfig(direction=Direction.OUT))
    board.gpio.write_line(17, 1)
    assert board.gpio.read_line(17) == 1
    board.gpio.write_line(17, 0)
    assert board.gpio.read_line(17) == 0
    board.gpio.configure_line(27, LineConfig(direction=Direction.IN, pull=Pull.UP))
    assert board.gpio.read_line(27) == 1
    assert {s.line for s in board.gpio.lines()} >= {17, 27}
    assert isinstance(board.gpio.drain_edge_events(), list)


def test_gpio_errors(board: Board) -> None:
    with pytest.raises(NotFoundError):
        board.gpio.read_line(26)  # never configured
    with pytest.raises(NotFoundError):
        board.gpio.configure_line(999, LineConfig())
    board.gpio.configure_line(27, LineConfig(direction=Direction.IN))
    with pytest.raises(ConflictError):
        board.gpio.write_line(27, 1)
    board.gpio.configure_line(17, LineConfig(direction=Direction.OUT))
    with pytest.raises(InvalidRequestError):
        board.gpio.write_line(17, 2)


def test_close_is_idempotent(board: Board) -> None:
    board.close()
    board.close()


# ----------------------------------------------------------------- thermal on a Pi 5 (issue 10)


@pytest.fixture(params=["sim", "linux"])
def pi5(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Board, Callable[[], None]]]:
    """A Pi 5 board and ``later()``: a few seconds of the world going on (the sim's physics;
    on Linux the kernel's step_wise governor polling while the SoC warms through its trips)."""
    if request.param == "sim":
        sim = SimBoard(SimSettings(seed=1), clock=FakeClock())
        yield sim, lambda: sim.advance(5)
        sim.close()
        return
    fake = FakeSys(tmp_path, cpu_temp_c=45.0)
    governor = fake.governor()
    temps = iter([45.0, 49.0, 52.0, 58.0, 61.0, 68.0, 76.0, 70.0, 60.0, 52.0, 47.0] * 10)

    def later() -> None:
        for _ in range(5):
            fake.set_cpu_temp(next(temps))
            governor.poll()

    later()
    board = fake.board(chip=FakeChip())
    yield board, later
    board.close()


def test_a_cap_below_the_floor_is_the_floor(pi5: tuple[Board, Callable[[], None]]) -> None:
    board, _ = pi5
    board.throttle.set_max_freq(40)
    reading = board.throttle.read_throttle()
    assert reading.min_freq_pct == pytest.approx(62.5)
    assert reading.max_freq_pct == pytest.approx(62.5)
    board.throttle.set_max_freq(80)
    assert board.throttle.read_throttle().max_freq_pct == pytest.approx(80, abs=0.5)


def test_an_os_cap_sets_no_firmware_flag(pi5: tuple[Board, Callable[[], None]]) -> None:
    board, later = pi5
    board.throttle.set_max_freq(70)
    later()
    reading = board.throttle.read_throttle()
    assert not reading.freq_capped_now
    assert not reading.throttled_now
    assert not reading.soft_temp_limit_now
    assert not reading.throttled_occurred


def test_the_fan_metald_drives_stays_as_metald_set_it(
    pi5: tuple[Board, Callable[[], None]],
) -> None:
    board, later = pi5
    board.fan.set_fan_duty(100)
    for _ in range(4):
        later()
        reading = board.fan.read_fan()
        assert reading.owner is FanOwner.METALD
        assert reading.duty_pct == pytest.approx(100, abs=0.5)
