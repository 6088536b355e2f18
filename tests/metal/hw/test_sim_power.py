"""Power supplies of the simulated board: failover, battery energy, charging, solar, faults.

Boards here run without sensor noise so that energies can be checked to the watt-hour.
"""

from __future__ import annotations

import pytest

from wrale.metal.hw.base import Fault, FaultKind, PowerSource
from wrale.metal.hw.sim import SimBoard
from wrale.shared.clock import FakeClock
from wrale.shared.config import SimSettings
from wrale.shared.errors import InvalidRequestError, UnsupportedError

MIDNIGHT = 1_700_006_400.0  # 2023-11-15 00:00:00 UTC
HOUR = 3600.0


def quiet_board(**settings: object) -> SimBoard:
    return SimBoard(SimSettings(seed=1, noise=False, **settings), clock=FakeClock(MIDNIGHT))


def sources(board: SimBoard) -> dict[PowerSource, bool]:
    return {s.source: s.available for s in board.power.read_power().sources}


def test_default_board_runs_on_main_with_a_full_battery(sim_board: SimBoard) -> None:
    reading = sim_board.power.read_power()
    assert reading.source is PowerSource.MAIN
    assert reading.voltage_v == pytest.approx(5.09, abs=0.05)
    assert reading.power_w == pytest.approx(2.7 + 0.43)
    assert reading.current_a == pytest.approx(reading.power_w / reading.voltage_v)
    assert reading.battery_pct == 100.0
    assert not reading.battery_charging
    assert reading.battery_healthy
    assert sources(sim_board) == {PowerSource.MAIN: True, PowerSource.BATTERY: True}


def test_rail_ripple_is_small(sim_board: SimBoard) -> None:
    volts = [sim_board.power.read_power().voltage_v or 0.0 for _ in range(100)]
    assert 0.0 < max(volts) - min(volts) < 0.1


def test_main_loss_falls_over_to_battery_and_back() -> None:
    board = quiet_board()
    board.inject_fault(Fault(FaultKind.MAIN_POWER_LOSS))
    on_battery = board.power.read_power()
    assert on_battery.source is PowerSource.BATTERY
    assert on_battery.voltage_v == pytest.approx(5.05)
    assert sources(board) == {PowerSource.MAIN: False, PowerSource.BATTERY: True}
    board.advance(600)
    assert board.clear_faults(FaultKind.MAIN_POWER_LOSS) == 1
    back = board.power.read_power()
    assert back.source is PowerSource.MAIN
    assert back.battery_charging


def test_battery_drains_at_board_power_over_converter_efficiency() -> None:
    board = quiet_board(battery_wh=20.0)
    draw_w = board.power.read_power().power_w
    assert draw_w is not None
    board.inject_fault(Fault(FaultKind.MAIN_POWER_LOSS))
    board.advance(HOUR)
    used_wh = 20.0 - board.status()["battery_wh"]
    assert used_wh == pytest.approx(draw_w / 0.9, rel=0.01)
    assert board.power.read_power().battery_pct == pytest.approx(100 * (20 - used_wh) / 20)


def test_full_load_drains_faster_and_an_empty_battery_leaves_the_board_dark() -> None:
    board = quiet_board(battery_wh=2.0, load_pct=100)
    board.fan.set_fan_duty(100)  # kept below 80 °C: the firmware does not throttle the 7 W
    board.inject_fault(Fault(FaultKind.MAIN_POWER_LOSS))
    runtime_s = 2.0 * 0.9 / 7.0 * HOUR  # about 17 minutes
    board.advance(runtime_s - 5)
    assert board.power.read_power().source is PowerSource.BATTERY
    board.advance(10)
    dark = board.power.read_power()
    assert dark.source is PowerSource.MAIN  # the selected one, unavailable
    assert (dark.voltage_v, dark.current_a, dark.power_w) == (0.0, 0.0, 0.0)
    assert dark.battery_pct == 0.0
    assert not any(sources(board).values())
    assert board.throttle.read_throttle().under_voltage_now
    assert board.tamper.read_tamper().voltage_normal is False
    board.advance(4 * HOUR)  # an unpowered board cools to the room
    assert board.soc_temp_c == pytest.approx(25.0, abs=0.1)
    assert board.fan.read_fan().rpm == 0.0
    board.clear_faults()
    assert board.power.read_power().source is PowerSource.MAIN


def test_battery_charges_at_5_w_while_main_is_present() -> None:
    board = quiet_board(battery_wh=20.0, battery_pct=50.0)
    reading = board.power.read_power()
    assert reading.battery_charging
    assert reading.source is PowerSource.MAIN
    board.advance(HOUR)
    assert board.power.read_power().battery_pct == pytest.approx(75.0, abs=0.1)
    board.advance(3 * HOUR)
    full = board.power.read_power()
    assert full.battery_pct == 100.0
    assert not full.battery_charging


def test_selecting_the_battery_runs_from_it_even_with_main_present() -> None:
    board = quiet_board()
    board.power.select_source(PowerSource.BATTERY)
    reading = board.power.read_power()
    assert reading.source is PowerSource.BATTERY
    assert not reading.battery_charging
    board.advance(HOUR)
    assert board.power.read_power().battery_pct < 100.0


def test_board_without_battery() -> None:
    board = quiet_board(battery_wh=0.0)
    reading = board.power.read_power()
    assert reading.battery_pct is None
    assert sources(board) == {PowerSource.MAIN: True}
    with pytest.raises(UnsupportedError):
        board.power.select_source(PowerSource.BATTERY)
    with pytest.raises(InvalidRequestError, match="no battery"):
        board.inject_fault(Fault(FaultKind.BATTERY_FAILURE))
    board.inject_fault(Fault(FaultKind.MAIN_POWER_LOSS))
    assert board.power.read_power().voltage_v == 0.0


def test_solar_output_follows_the_day() -> None:
    board = quiet_board(solar_peak_w=10.0)

    def solar_w() -> float:
        (solar,) = [s for s in board.power.read_power().sources if s.source is PowerSource.SOLAR]
        return solar.power_w or 0.0

    assert solar_w() == 0.0  # midnight
    board.advance(6.5 * HOUR)
    assert solar_w() == pytest.approx(10 * 0.1305, abs=0.01)
    assert not sources(board)[PowerSource.SOLAR]  # 1.3 W cannot run a 3.1 W board
    board.advance(2.5 * HOUR)  # 09:00
    assert solar_w() == pytest.approx(10 * 0.7071, abs=0.01)
    assert sources(board)[PowerSource.SOLAR]
    board.advance(3 * HOUR)  # noon
    assert solar_w() == pytest.approx(10.0, abs=0.01)
    board.advance(6.5 * HOUR)  # 18:30
    assert solar_w() == 0.0


def test_solar_source_falls_back_at_dusk_and_charges_the_battery() -> None:
    board = quiet_board(solar_peak_w=10.0, battery_pct=50.0)
    board.power.select_source(PowerSource.SOLAR)
    assert board.power.read_power().source is PowerSource.MAIN  # night: main takes over
    board.inject_fault(Fault(FaultKind.MAIN_POWER_LOSS))
    board.advance(12 * HOUR)
    noon = board.power.read_power()
    assert noon.source is PowerSource.SOLAR
    assert noon.voltage_v == pytest.approx(5.0)
    assert noon.battery_charging  # 10 W panel, 3.1 W board
    board.advance(6.5 * HOUR)
    assert board.power.read_power().source is PowerSource.BATTERY


def test_voltage_sag_lowers_the_rail_while_on_main() -> None:
    board = quiet_board()
    board.inject_fault(Fault(FaultKind.VOLTAGE_SAG))
    reading = board.power.read_power()
    assert reading.voltage_v == pytest.approx(4.6)
    assert board.throttle.read_throttle().under_voltage_now
    board.inject_fault(Fault(FaultKind.MAIN_POWER_LOSS))
    assert board.power.read_power().voltage_v == pytest.approx(5.05)  # the battery is fine
    board.clear_faults()
    flags = board.throttle.read_throttle()
    assert not flags.under_voltage_now
    assert flags.under_voltage_occurred


def test_mild_sag_is_not_an_under_voltage() -> None:
    board = quiet_board()
    board.inject_fault(Fault(FaultKind.VOLTAGE_SAG, {"voltage_v": 4.7}))
    assert not board.throttle.read_throttle().under_voltage_now
    assert board.tamper.read_tamper().voltage_normal is False  # below 4.75 V


def test_battery_failure() -> None:
    board = quiet_board()
    board.inject_fault(Fault(FaultKind.BATTERY_FAILURE))
    reading = board.power.read_power()
    assert reading.battery_pct is None
    assert not reading.battery_healthy
    assert sources(board) == {PowerSource.MAIN: True, PowerSource.BATTERY: False}
    board.inject_fault(Fault(FaultKind.MAIN_POWER_LOSS))
    assert board.power.read_power().voltage_v == 0.0
    assert board.clear_faults(FaultKind.BATTERY_FAILURE) == 1
    assert board.power.read_power().source is PowerSource.BATTERY


def test_select_source_checks_its_argument() -> None:
    board = quiet_board()
    with pytest.raises(UnsupportedError, match="solar"):
        board.power.select_source(PowerSource.SOLAR)
    with pytest.raises(InvalidRequestError):
        board.power.select_source("mains")  # type: ignore[arg-type]
    board.power.select_source("battery")  # type: ignore[arg-type]
    assert board.power.read_power().source is PowerSource.BATTERY


def test_shutdown_requests_are_recorded(sim_board: SimBoard) -> None:
    sim_board.power.request_shutdown("battery critical")
    assert sim_board.shutdown_requests == ["battery critical"]
    assert sim_board.status()["shutdown_requests"] == ["battery critical"]


def test_an_emptied_battery_restarts_only_after_some_charge() -> None:
    board = quiet_board(battery_wh=2.0)
    board.inject_fault(Fault(FaultKind.MAIN_POWER_LOSS))
    board.advance(HOUR)
    assert board.power.read_power().voltage_v == 0.0
    board.clear_faults()
    board.advance(30)  # 5 W for 30 s: 0.04 Wh, under the 5 % (0.1 Wh) restart level
    assert not sources(board)[PowerSource.BATTERY]
    board.advance(60)
    assert sources(board)[PowerSource.BATTERY]
