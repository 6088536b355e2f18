"""Simulated UPS HATs: the Linux readers run on chips and a server driven by sim physics."""

from __future__ import annotations

import pytest

from wrale.metal.hw.base import Fault, FaultKind, PowerSource
from wrale.metal.hw.linux.ups import Ina219Config, Max17048Config, PiSugarConfig, UpsConfig
from wrale.metal.hw.sim import SimBoard
from wrale.metal.hw.sim.ups import SimUpsPower
from wrale.shared.clock import FakeClock
from wrale.shared.config import GpioLineSettings, SimSettings
from wrale.shared.errors import ConfigError
from wrale.shared.structs import FieldError

HOUR = 3600.0
HATS: list[UpsConfig] = [Max17048Config(), Ina219Config(), PiSugarConfig()]


def hat_board(hat: UpsConfig, **settings: object) -> SimBoard:
    return SimBoard(
        SimSettings(seed=1, noise=False, ups_hat=hat, **settings),  # type: ignore[arg-type]
        clock=FakeClock(1_700_006_400.0),
    )


@pytest.mark.parametrize("hat", HATS, ids=lambda h: h.kind)
def test_the_hat_reports_what_the_battery_does(hat: UpsConfig) -> None:
    board = hat_board(hat, battery_wh=20.0, battery_pct=50.0)
    assert isinstance(board.power, SimUpsPower)
    on_mains = board.power.read_power()
    assert on_mains.source is PowerSource.MAIN
    assert on_mains.voltage_v == pytest.approx(5.09, abs=0.02)  # EXT5V, drooping a little
    assert on_mains.battery_pct == pytest.approx(50.0, abs=0.5)
    assert on_mains.battery_charging
    board.inject_fault(Fault(FaultKind.MAIN_POWER_LOSS))
    board.advance(HOUR)
    on_battery = board.power.read_power()
    assert on_battery.source is PowerSource.BATTERY
    assert not on_battery.available(PowerSource.MAIN)
    assert on_battery.voltage_v == pytest.approx(5.05)
    assert on_battery.battery_pct == pytest.approx(board.status()["battery_pct"], abs=0.5)
    assert not on_battery.battery_charging
    board.clear_faults()
    assert board.power.read_power().source is PowerSource.MAIN


def test_x120x_mains_line_is_on_the_simulated_header() -> None:
    board = hat_board(Max17048Config())
    assert board.gpio.read_line(6) == 1
    board.inject_fault(Fault(FaultKind.MAIN_POWER_LOSS))
    board.power.read_power()
    assert board.gpio.read_line(6) == 0


def test_waveshare_pack_current_is_the_discharge_over_the_converter() -> None:
    board = hat_board(Ina219Config(), battery_wh=20.0)
    board.inject_fault(Fault(FaultKind.MAIN_POWER_LOSS))
    reading = board.power.read_power()
    draw_w = board.status()["power_w"]
    assert reading.power_w == pytest.approx(draw_w / 0.9, rel=0.01)  # 0.1 mA resolution
    assert reading.current_a is not None
    assert reading.current_a > 0  # the magnitude of the discharge


@pytest.mark.parametrize("hat", HATS, ids=lambda h: h.kind)
def test_a_failed_battery_is_an_unreadable_hat(hat: UpsConfig) -> None:
    board = hat_board(hat)
    board.inject_fault(Fault(FaultKind.BATTERY_FAILURE))
    reading = board.power.read_power()
    assert reading.battery_pct is None
    assert not reading.battery_healthy
    assert reading.source is PowerSource.MAIN


def test_a_hat_needs_a_battery_and_its_own_line() -> None:
    with pytest.raises(FieldError, match="ups_hat: a UPS HAT needs a battery"):
        hat_board(Max17048Config(), battery_wh=0.0)
    with pytest.raises(ConfigError, match="GPIO 6"):
        SimBoard(
            SimSettings(seed=1, ups_hat=Max17048Config()),
            clock=FakeClock(),
            gpio_lines={"relay": GpioLineSettings(line=6, direction="out")},
        )


def test_select_source_and_shutdown_reach_the_physics() -> None:
    board = hat_board(PiSugarConfig())
    board.power.select_source(PowerSource.BATTERY)
    assert board.status()["power_source"] == "battery"
    board.power.request_shutdown("battery critical")
    assert board.shutdown_requests == ["battery critical"]
