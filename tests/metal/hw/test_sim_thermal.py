"""Calibration of the simulated board's thermal model against a Raspberry Pi 5.

A test-local stand-in for the fan-curve control law (Pi 5 curve, 5 °C hysteresis, hard
throttle at 85 °C) drives the board at 1 s steps, as metald's safety loop would.
"""

from __future__ import annotations

import statistics

import pytest

from wrale.metal.hw.base import Fault, FaultKind
from wrale.metal.hw.sim import SimBoard
from wrale.shared.config import SimSettings
from wrale.shared.policy import PI5_FAN_CURVE, CurvePoint


class CurveLoop:
    """Fan curve with hysteresis and a hard throttle: the minimum a safety loop does."""

    def __init__(self, curve: tuple[CurvePoint, ...] = PI5_FAN_CURVE, hysteresis_c: float = 5.0):
        self.curve = curve
        self.hysteresis_c = hysteresis_c
        self.steps = 0  # how many curve points are engaged
        self.throttled = False

    def duty_pct(self, temp_c: float) -> float:
        while self.steps < len(self.curve) and temp_c >= self.curve[self.steps].temp_c:
            self.steps += 1
        while self.steps and temp_c < self.curve[self.steps - 1].temp_c - self.hysteresis_c:
            self.steps -= 1
        return self.curve[self.steps - 1].pwm * 100 / 255 if self.steps else 0.0

    def run(self, board: SimBoard, seconds: int) -> list[float]:
        """Run the loop for ``seconds`` at 1 s steps; returns the CPU readings."""
        temps = []
        for _ in range(seconds):
            temp = board.thermal.read_thermal().cpu_temp_c
            assert temp is not None
            temps.append(temp)
            board.fan.set_fan_duty(self.duty_pct(temp))
            if temp > 85.0:
                self.throttled = True
            elif temp < 80.0:
                self.throttled = False
            board.throttle.set_max_freq(50.0 if self.throttled else 100.0)
            board.advance(1.0)
        return temps


def settled_idle(board: SimBoard, loop: CurveLoop) -> float:
    loop.run(board, 900)
    return statistics.fmean(loop.run(board, 300))


def test_idle_settles_near_45_to_50_c_under_the_fan_curve(sim_board: SimBoard) -> None:
    idle_c = settled_idle(sim_board, CurveLoop())
    assert 43.0 <= idle_c <= 52.0
    assert sim_board.fan.read_fan().rpm == pytest.approx(75 / 255 * 8000, rel=0.02)


def test_full_load_with_a_stalled_fan_reaches_80_c_within_minutes(sim_board: SimBoard) -> None:
    loop = CurveLoop()
    settled_idle(sim_board, loop)
    sim_board.set_load(100)
    sim_board.inject_fault(Fault(FaultKind.FAN_FAILURE, {"mode": "stalled"}))
    temps = loop.run(sim_board, 600)
    seconds_to_80 = next(i for i, t in enumerate(temps) if t >= 80.0)
    assert 60 <= seconds_to_80 <= 360
    assert sim_board.fan.read_fan().rpm == 0.0
    flags = sim_board.throttle.read_throttle()
    assert flags.soft_temp_limit_occurred


def test_stalled_fan_and_hard_throttle_hold_the_soc_near_the_limit(sim_board: SimBoard) -> None:
    loop = CurveLoop()
    sim_board.set_load(100)
    sim_board.inject_fault(Fault(FaultKind.FAN_FAILURE, {"mode": "stalled"}))
    temps = loop.run(sim_board, 1800)
    assert max(temps) < 90.0  # throttling to 50 % takes away enough heat
    assert sim_board.throttle.read_throttle().throttled_occurred


def test_full_load_with_a_working_fan_stays_under_75_c(sim_board: SimBoard) -> None:
    loop = CurveLoop()
    settled_idle(sim_board, loop)
    sim_board.set_load(100)
    temps = loop.run(sim_board, 1800)
    assert max(temps) < 75.0  # Active Cooler: 72 °C peak (test_sim_reference.py)
    assert statistics.fmean(temps[-300:]) > 55.0  # it does get warm
    assert not sim_board.throttle.read_throttle().soft_temp_limit_occurred


def test_warmer_room_warms_the_board() -> None:
    sim_board = SimBoard(SimSettings(seed=1, ambient_sensor=True))  # the HAT reads the room
    loop = CurveLoop()
    cool_c = settled_idle(sim_board, loop)
    ambient_before = sim_board.thermal.read_thermal().ambient_temp_c
    sim_board.set_ambient(35.0)
    warm_c = settled_idle(sim_board, loop)
    ambient_after = sim_board.thermal.read_thermal().ambient_temp_c
    assert warm_c > cool_c + 4.0  # the fan takes away part of it
    assert ambient_before is not None
    assert ambient_after is not None
    assert ambient_after - ambient_before == pytest.approx(10.0, abs=0.6)


def test_without_fan_the_soc_rises_one_for_one_with_ambient() -> None:
    board = SimBoard(SimSettings(seed=1, noise=False))
    board.advance(7200)
    before = board.soc_temp_c
    board.set_ambient(15.0)
    board.advance(7200)
    assert board.soc_temp_c == pytest.approx(before - 10.0, abs=0.01)


def test_passive_steady_state_is_held_by_the_firmware_throttle() -> None:
    """7 W through 9.5 K/W (die to sink 2.5, cooler's sink to still air 7) would settle at
    91.5 °C; the firmware's soft throttle (80-85 °C, linear down to 62.5 %) holds it where
    T = 25 + 9.5 * (2.7 + 4.3 * f(T))."""
    board = SimBoard(SimSettings(seed=1, noise=False, load_pct=100))
    board.advance(4 * 3600)
    expected = 80.0 + (25.0 + 9.5 * 7.0 - 80.0) / (1 + 9.5 * 4.3 * 0.375 / 5)
    assert board.soc_temp_c == pytest.approx(expected, abs=0.05)
    flags = board.throttle.read_throttle()
    assert flags.soft_temp_limit_now
    assert flags.freq_capped_now
    assert board.throttle.read_throttle().max_freq_pct == 100.0  # the OS cap is untouched


def test_a_pi5_has_one_sensor_and_a_hat_brings_an_ambient_one_warmed_by_the_board() -> None:
    board = SimBoard(SimSettings(seed=1, noise=False))
    reading = board.thermal.read_thermal()
    assert reading.cpu_temp_c == board.soc_temp_c
    assert reading.gpu_temp_c is None  # one cpu-thermal zone on a Pi 5
    assert reading.ambient_temp_c is None  # no ambient sensor without a HAT
    hat = SimBoard(SimSettings(seed=1, noise=False, ambient_sensor=True))
    reading = hat.thermal.read_thermal()
    assert reading.gpu_temp_c is None
    assert reading.ambient_temp_c is not None
    assert 25.5 < reading.ambient_temp_c < 26.5


def test_sensor_noise_is_small_and_centred(sim_board: SimBoard) -> None:
    errors = []
    for _ in range(200):
        cpu = sim_board.thermal.read_thermal().cpu_temp_c
        assert cpu is not None
        errors.append(cpu - sim_board.soc_temp_c)
    assert max(abs(e) for e in errors) <= 0.2 + 1e-9
    assert statistics.pstdev(errors) > 0.02
    assert abs(statistics.fmean(errors)) < 0.03


def test_throttling_takes_away_heat() -> None:
    board = SimBoard(SimSettings(seed=1, noise=False, load_pct=100))
    full_w = board.power.read_power().power_w
    board.throttle.set_max_freq(50)  # below the Pi 5's floor: applied as 62.5 %
    assert board.throttle.read_throttle().max_freq_pct == 62.5
    assert board.throttle.read_throttle().min_freq_pct == 62.5
    half_w = board.power.read_power().power_w
    assert half_w is not None
    assert full_w == pytest.approx(7.0)
    assert half_w == pytest.approx(7.0 - 4.3 * (1 - 0.625))
    board.advance(4 * 3600)
    assert board.soc_temp_c == pytest.approx(25.0 + half_w * 9.5, abs=0.05)


def test_fan_spins_up_with_a_short_lag_and_degrades(sim_board: SimBoard) -> None:
    sim_board.fan.set_fan_duty(100)
    assert sim_board.fan.read_fan().rpm == 0.0
    sim_board.advance(0.5)
    rpm = sim_board.fan.read_fan().rpm
    assert rpm is not None
    assert 2000 < rpm < 5000
    sim_board.advance(10)
    assert sim_board.fan.read_fan().rpm == pytest.approx(8000, rel=0.02)
    sim_board.fan.set_fan_duty(5)  # below the minimum spinning duty
    sim_board.advance(20)
    assert sim_board.fan.read_fan().rpm == 0.0
    sim_board.fan.set_fan_duty(50)
    sim_board.inject_fault(Fault(FaultKind.FAN_FAILURE, {"mode": "degraded"}))
    sim_board.advance(20)
    assert sim_board.fan.read_fan().rpm == pytest.approx(0.3 * 4000, rel=0.02)


def test_an_os_cap_sets_no_firmware_flags_but_heat_does(sim_board: SimBoard) -> None:
    assert sim_board.throttle.read_throttle().max_freq_pct == 100.0
    sim_board.throttle.set_max_freq(70)
    now = sim_board.throttle.read_throttle()
    assert now.max_freq_pct == 70.0
    assert not now.freq_capped_now  # the firmware did not cap anything: the OS did
    assert not now.throttled_now
    sim_board.set_load(100)
    sim_board.fan.set_fan_duty(0)
    sim_board.throttle.set_max_freq(100)
    while sim_board.soc_temp_c < 81:
        sim_board.advance(5)
    hot = sim_board.throttle.read_throttle()
    assert hot.soft_temp_limit_now
    assert hot.throttled_now
    assert hot.freq_capped_now
    sim_board.set_load(0)
    sim_board.fan.set_fan_duty(100)
    sim_board.advance(600)
    after = sim_board.throttle.read_throttle()
    assert not after.soft_temp_limit_now
    assert after.soft_temp_limit_occurred
    assert after.throttled_occurred
    assert not after.under_voltage_occurred


@pytest.mark.parametrize("bad", [0, 5, 101, float("nan"), "fast", True])
def test_bad_fan_and_throttle_values_are_refused(sim_board: SimBoard, bad: object) -> None:
    from wrale.shared.errors import InvalidRequestError

    with pytest.raises(InvalidRequestError):
        sim_board.throttle.set_max_freq(bad)  # type: ignore[arg-type]
    if bad not in (0, 5):
        with pytest.raises(InvalidRequestError):
            sim_board.fan.set_fan_duty(bad)  # type: ignore[arg-type]
