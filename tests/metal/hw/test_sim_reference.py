"""The simulated Pi 5 against published measurements of a real one, at 25 °C ambient.

References (bands: ±4 °C on temperatures, ±0.5 W on power):
- Phoronix, "Raspberry Pi 5 Benchmarks" (Oct 2023, phoronix.com/review/raspberry-pi-5-
  benchmarks/2): over its benchmark run, no heat sink: 81 °C average, 89 °C peak (firmware
  throttling); official Active Cooler: 56 °C average, 72 °C peak, 2.4 GHz throughout.
- Power: ~2.7 W idle, ~7 W with stress on all four cores (issue 10, DESIGN.md §5). Raspberry
  Pi's "Heating and cooling Raspberry Pi 5" post was found only as a summary without numbers.

Protocol. Phoronix's figures are an average over a benchmark session, not over sustained
stress: under constant load a fan curve cannot give a peak 16 °C above the average (the
die runs at sink + 7 W x R whenever loaded, and the sink is no cooler loaded than idle),
so the session is replayed: from settled idle, 8 tests of [3 min all-core, 1 min pause,
3 min single-thread (25 % load), 1 min pause] = 64 simulated minutes, the CPU sensor read
every second; average and peak over the whole session. A stock Raspberry Pi OS drives the
board: the kernel's cpu-thermal trips (bcm2712-rpi-5-b.dts: 50/60/67.5/75 °C, 5 °C
hysteresis, fan levels 75/125/175/250 of 255) step the fan each second, the firmware
throttles by itself from 80 °C; no OS cap. Sustained stress is checked for throttling.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator

import pytest

from wrale.metal.hw.sim import SimBoard
from wrale.shared.config import SimSettings
from wrale.shared.policy import PI5_FAN_CURVE

BAND_C = 4.0
BAND_W = 0.5
TEST_BLOCK = ((100.0, 180), (0.0, 60), (25.0, 180), (0.0, 60))  # (load %, seconds)
SESSION = TEST_BLOCK * 8


class StockPi5:
    """Raspberry Pi OS without metald: step_wise on the cpu-thermal trips, polled at 1 s."""

    def __init__(self, board: SimBoard) -> None:
        self.board = board
        self.level = 0  # trips passed

    def second(self) -> float:
        temp = self.board.thermal.read_thermal().cpu_temp_c
        assert temp is not None
        trips = PI5_FAN_CURVE
        while self.level < len(trips) and temp >= trips[self.level].temp_c:
            self.level += 1
        while self.level and temp < trips[self.level - 1].temp_c - 5.0:
            self.level -= 1
        pwm = trips[self.level - 1].pwm if self.level else 0
        self.board.fan.set_fan_duty(pwm * 100 / 255)
        self.board.advance(1.0)
        return temp

    def run(self, phases: tuple[tuple[float, int], ...]) -> Iterator[float]:
        for load_pct, seconds in phases:
            self.board.set_load(load_pct)
            for _ in range(seconds):
                yield self.second()


def settled_idle(active_cooler: bool) -> StockPi5:
    board = SimBoard(SimSettings(seed=1, load_pct=0, ambient_c=25.0, active_cooler=active_cooler))
    pi = StockPi5(board)
    for _ in pi.run(((0.0, 1200),)):
        pass
    return pi


@pytest.mark.parametrize(
    ("active_cooler", "avg_c", "peak_c"), [(False, 81.0, 89.0), (True, 56.0, 72.0)]
)
def test_benchmark_session_lands_on_the_published_average_and_peak(
    active_cooler: bool, avg_c: float, peak_c: float
) -> None:
    pi = settled_idle(active_cooler)
    temps = list(pi.run(SESSION))
    assert len(temps) == 64 * 60
    assert statistics.fmean(temps) == pytest.approx(avg_c, abs=BAND_C)
    assert max(temps) == pytest.approx(peak_c, abs=BAND_C)
    flags = pi.board.throttle.read_throttle()
    assert flags.throttled_occurred is not active_cooler  # bare: the firmware throttled


def test_idle_and_full_load_draw_the_published_power() -> None:
    pi = settled_idle(active_cooler=True)
    assert pi.board.power.read_power().power_w == pytest.approx(2.7, abs=BAND_W)
    pi.board.set_load(100)
    assert pi.board.power.read_power().power_w == pytest.approx(7.0, abs=BAND_W)


def test_sustained_stress_with_the_active_cooler_never_throttles() -> None:
    pi = settled_idle(active_cooler=True)
    temps = list(pi.run(((100.0, 1800),)))
    assert 60.0 < max(temps) < 80.0
    assert pi.board.fan.read_fan().rpm
    assert not pi.board.throttle.read_throttle().throttled_occurred
    assert pi.board.power.read_power().power_w == pytest.approx(7.0, abs=0.05)


def test_sustained_stress_on_a_bare_board_throttles_within_minutes_and_draws_less() -> None:
    pi = settled_idle(active_cooler=False)
    temps = list(pi.run(((100.0, 1800),)))
    seconds_to_80 = next(i for i, t in enumerate(temps) if t >= 80.0)
    assert 30 <= seconds_to_80 <= 300
    assert max(temps) < 96.0  # at the 1.5 GHz floor: 25 + 5.4 W x 13 K/W
    assert pi.board.throttle.read_throttle().throttled_now
    assert pi.board.fan.read_fan().rpm == 0.0  # no fan: the duty goes nowhere
    power_w = pi.board.power.read_power().power_w
    assert power_w is not None
    assert 2.7 + 4.3 * 0.625 - 0.05 <= power_w < 6.5  # throttled: less than 7 W
