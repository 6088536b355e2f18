"""Linux power: power_supply entries to sources, units, failover reporting, shutdown command."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.metal.hw.fakesys import FakeSys
from wrale.metal.hw.base import PowerSource
from wrale.metal.hw.linux.power import run_command
from wrale.shared.errors import ActuatorError, ConfigError

UPS = {"main": "ups-ac", "battery": "bq27441-0"}


@pytest.fixture
def fake(tmp_path: Path) -> FakeSys:
    return FakeSys(tmp_path)


@pytest.fixture
def ups(fake: FakeSys) -> FakeSys:
    """A UPS HAT: mains input and a fuel-gauged cell, mains up, battery charging."""
    fake.add_power_supply("ups-ac", "Mains", online=1, voltage_now=5_080_000, current_now=1_150_000)
    fake.add_power_supply(
        "bq27441-0",
        "Battery",
        present=1,
        status="Charging",
        capacity=87,
        voltage_now=3_912_000,
        current_now=420_000,
        health="Good",
    )
    return fake


def test_bare_pi5_has_its_main_supply_of_unknown_voltage(fake: FakeSys) -> None:
    reading = fake.board().power.read_power()
    assert reading.source is PowerSource.MAIN
    assert reading.voltage_v is None
    assert reading.current_a is None
    assert reading.power_w is None
    assert reading.battery_pct is None
    assert reading.battery_healthy
    assert not reading.battery_charging
    assert reading.available(PowerSource.MAIN)
    assert [s.source for s in reading.sources] == [PowerSource.MAIN]


def test_ups_on_mains_reads_si_units(ups: FakeSys) -> None:
    reading = ups.board(power_supplies=UPS).power.read_power()
    assert reading.source is PowerSource.MAIN
    assert reading.voltage_v == pytest.approx(5.08)
    assert reading.current_a == pytest.approx(1.15)
    assert reading.power_w == pytest.approx(5.08 * 1.15)
    assert reading.battery_pct == 87
    assert reading.battery_charging
    assert reading.battery_healthy
    battery = next(s for s in reading.sources if s.source is PowerSource.BATTERY)
    assert battery.available
    assert battery.voltage_v == pytest.approx(3.912)


def test_failover_to_battery_is_reported(ups: FakeSys) -> None:
    board = ups.board(power_supplies=UPS)
    ups.set_supply("ups-ac", online=0)
    ups.set_supply("bq27441-0", status="Discharging", current_now=-1_300_000, power_now=5_100_000)
    reading = board.power.read_power()
    assert reading.source is PowerSource.BATTERY
    assert not reading.available(PowerSource.MAIN)
    assert reading.available(PowerSource.BATTERY)
    assert reading.current_a == pytest.approx(1.3)  # magnitude, whatever the driver's sign
    assert reading.power_w == pytest.approx(5.1)  # power_now wins over V x I
    assert not reading.battery_charging
    ups.set_supply("ups-ac", online=1)
    assert board.power.read_power().source is PowerSource.MAIN


def test_solar_when_mains_is_down_and_the_battery_is_not_supplying(fake: FakeSys) -> None:
    fake.add_power_supply("mppt", "Mains", online=1, voltage_now=5_200_000)
    fake.add_power_supply("cell", "Battery", present=1, status="Charging", capacity=40)
    fake.add_power_supply("ac", "Mains", online=0)
    supplies = {"main": "ac", "battery": "cell", "solar": "mppt"}
    reading = fake.board(power_supplies=supplies).power.read_power()
    assert reading.source is PowerSource.SOLAR
    assert reading.voltage_v == pytest.approx(5.2)
    assert {s.source for s in reading.sources} == set(PowerSource)


def test_unhealthy_empty_and_missing_batteries(ups: FakeSys) -> None:
    board = ups.board(power_supplies=UPS)
    ups.set_supply("bq27441-0", health="Overheat")
    assert not board.power.read_power().battery_healthy
    ups.set_supply("bq27441-0", health="Unknown", capacity=0)
    reading = board.power.read_power()
    assert reading.battery_healthy  # the driver cannot tell: not a fault
    assert not reading.available(PowerSource.BATTERY)
    ups.remove("class/power_supply/bq27441-0")
    reading = board.power.read_power()
    assert not reading.battery_healthy  # configured but unreadable: not to be relied on
    assert reading.battery_pct is None


def test_battery_only_mapping_infers_main_from_discharge(fake: FakeSys) -> None:
    fake.add_power_supply("cell", "Battery", present=1, status="Full", capacity=100)
    board = fake.board(power_supplies={"battery": "cell"})
    assert board.power.read_power().source is PowerSource.MAIN
    fake.set_supply("cell", status="Discharging")
    assert board.power.read_power().source is PowerSource.BATTERY


def test_garbage_attribute_reads_none(ups: FakeSys) -> None:
    ups.set_supply("ups-ac", voltage_now="n/a")
    reading = ups.board(power_supplies=UPS).power.read_power()
    assert reading.voltage_v is None
    assert reading.power_w is None


def test_unknown_source_name_is_refused_by_the_settings(fake: FakeSys) -> None:
    with pytest.raises(ValidationError, match="wind"):
        fake.board(power_supplies={"wind": "turbine"})


def test_select_source_records_the_preference(fake: FakeSys) -> None:
    board = fake.board()
    board.power.select_source(PowerSource.BATTERY)
    assert board.power.read_power().source is PowerSource.MAIN  # the hardware decides


def test_shutdown_runs_the_configured_command(fake: FakeSys) -> None:
    commands: list[Sequence[str]] = []
    board = fake.board(commands=commands, shutdown_command=("sudo", "poweroff"))
    board.power.request_shutdown("battery critical")
    assert commands == [["sudo", "poweroff"]]


def test_default_shutdown_is_systemctl_poweroff(fake: FakeSys) -> None:
    commands: list[Sequence[str]] = []
    fake.board(commands=commands).power.request_shutdown("test")
    assert commands == [["systemctl", "poweroff"]]


def test_default_runner_reports_failures(tmp_path: Path) -> None:
    run_command(["true"])
    with pytest.raises(ActuatorError, match="false"):
        run_command(["false"])
    with pytest.raises(ActuatorError, match="could not run"):
        run_command([str(tmp_path / "no-such-command")])


def test_empty_shutdown_command_is_a_config_error(fake: FakeSys) -> None:
    with pytest.raises(ConfigError, match="shutdown_command"):
        fake.board(shutdown_command=())
