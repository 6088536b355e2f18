"""Linux power: power_supply entries or a UPS HAT to sources, the Pi 5 PMIC's input voltage,
units, failover reporting, shutdown command."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.metal.hw.fake_i2c import FakeI2cBus, FakeIna219, FakeMax17048
from tests.metal.hw.fake_pmic import FakePmic
from tests.metal.hw.fakechip import FakeChip
from tests.metal.hw.fakesys import FakeSys
from wrale.metal.hw.base import PowerSource
from wrale.metal.hw.linux import LinuxBoard
from wrale.metal.hw.linux.power import LinuxPower, run_command
from wrale.metal.hw.linux.sysfs import HealthLog
from wrale.metal.hw.linux.ups import Ina219Config, Max17048Config, UpsReader, open_reader
from wrale.metal.hw.linux.vcgencmd import Vcgencmd
from wrale.shared.clock import FakeClock
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
    with pytest.raises(ValueError, match="wind"):
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


# ----------------------------------------------------------------------------- Pi 5 PMIC


def pi5_power(
    fake: FakeSys, pmic: FakePmic, *, ups: UpsReader | None = None, **paths: object
) -> LinuxPower:
    clock = FakeClock()
    health = HealthLog()
    vcgencmd = Vcgencmd(clock, health, run=pmic.run, min_interval_s=0.0)
    return LinuxPower(fake.paths(**paths), clock, health, vcgencmd=vcgencmd, ups=ups)


def test_bare_pi5_reads_its_input_voltage_from_the_pmic(fake: FakeSys) -> None:
    pmic = FakePmic()
    power = pi5_power(fake, pmic)
    reading = power.read_power()
    assert reading.source is PowerSource.MAIN
    assert reading.voltage_v == pytest.approx(5.0853)
    assert reading.sources[0].voltage_v == pytest.approx(5.0853)
    assert (reading.current_a, reading.power_w) == (None, None)  # see the module notes
    pmic.ext5v_v = 4.62  # a weak supply under load: the core's sag event sees it
    assert power.read_power().voltage_v == pytest.approx(4.62)


def test_pmic_failures_leave_the_voltage_unknown_and_log_once(
    fake: FakeSys, caplog: pytest.LogCaptureFixture
) -> None:
    pmic = FakePmic()
    pmic.ext5v_v = None  # a firmware without the command (a Pi 4 answers this too)
    power = pi5_power(fake, pmic)
    for _ in range(3):
        assert power.read_power().voltage_v is None
    assert len([r for r in caplog.records if "EXT5V_V" in r.getMessage()]) == 1
    pmic.ext5v_v, pmic.fail = 5.1, True
    assert power.read_power().voltage_v is None
    pmic.fail = False
    assert power.read_power().voltage_v == pytest.approx(5.1)


def test_on_battery_the_rail_is_the_pmic_input_not_the_cell(ups: FakeSys) -> None:
    pmic = FakePmic()
    board_power = pi5_power(ups, pmic, power_supplies=UPS)
    ups.set_supply("ups-ac", online=0)
    ups.set_supply("bq27441-0", status="Discharging", current_now=-1_300_000)
    assert board_power.read_power().voltage_v == pytest.approx(5.0853)
    without_pmic = ups.board(power_supplies=UPS).power.read_power()
    assert without_pmic.source is PowerSource.BATTERY
    assert without_pmic.voltage_v is None  # 3.9 V of cell is not a 5 V rail sagging


# ----------------------------------------------------------------------------- UPS HATs


def x120x_power(fake: FakeSys, chip: FakeChip, pmic: FakePmic) -> tuple[LinuxPower, FakeI2cBus]:
    gauge = FakeMax17048()
    gauge.set_raw(vcell=0xC580, soc=0x5780, crate=50)  # 3.95 V, 87.5 %, +10.4 %/h
    bus = FakeI2cBus({0x36: gauge})
    reader = open_reader(
        Max17048Config(), HealthLog(), gpio=fake.gpio(chip), open_bus=lambda number: bus
    )
    return pi5_power(fake, pmic, ups=reader), bus


def test_x120x_hat_on_mains_and_on_battery(fake: FakeSys) -> None:
    chip, pmic = FakeChip(), FakePmic()
    power, _ = x120x_power(fake, chip, pmic)
    chip.drive(6, 1)
    reading = power.read_power()
    assert reading.source is PowerSource.MAIN
    assert reading.voltage_v == pytest.approx(5.0853)
    assert (reading.battery_pct, reading.battery_charging, reading.battery_healthy) == (
        87.5,
        True,
        True,
    )
    assert reading.available(PowerSource.MAIN)
    battery = next(s for s in reading.sources if s.source is PowerSource.BATTERY)
    assert battery.available
    assert battery.voltage_v == pytest.approx(3.95)
    chip.drive(6, 0)  # mains lost: the HAT boosts the cell onto the 5 V rail
    pmic.ext5v_v = 5.02
    on_battery = power.read_power()
    assert on_battery.source is PowerSource.BATTERY
    assert not on_battery.available(PowerSource.MAIN)
    assert on_battery.voltage_v == pytest.approx(5.02)
    assert not on_battery.battery_charging


def test_unreadable_hat_is_an_unhealthy_battery_never_an_exception(fake: FakeSys) -> None:
    chip, pmic = FakeChip(), FakePmic()
    power, bus = x120x_power(fake, chip, pmic)
    chip.drive(6, 1)
    bus.fail = True
    pmic.fail = True
    reading = power.read_power()
    assert reading.source is PowerSource.MAIN
    assert reading.battery_pct is None
    assert not reading.battery_healthy
    assert not reading.available(PowerSource.BATTERY)


def test_waveshare_hat_on_battery_reports_the_pack_discharge(fake: FakeSys) -> None:
    monitor = FakeIna219()
    monitor.set_pack(7.2, -0.6)
    bus = FakeI2cBus({0x42: monitor})
    reader = open_reader(Ina219Config(), HealthLog(), open_bus=lambda number: bus)
    reading = pi5_power(fake, FakePmic(), ups=reader).read_power()
    assert reading.source is PowerSource.BATTERY
    assert reading.current_a == pytest.approx(0.6)
    assert reading.power_w == pytest.approx(7.2 * 0.6)
    assert reading.battery_pct == pytest.approx(50.0)


def test_a_ups_hat_and_a_power_supply_mapping_are_not_both_allowed(ups: FakeSys) -> None:
    reader = open_reader(Ina219Config(), HealthLog(), open_bus=lambda number: FakeI2cBus())
    with pytest.raises(ConfigError, match="UPS HAT"):
        pi5_power(ups, FakePmic(), ups=reader, power_supplies=UPS)


def x120x_board(fake: FakeSys, chip: FakeChip, bus: FakeI2cBus, **paths: object) -> LinuxBoard:
    clock = FakeClock()
    return LinuxBoard(
        fake.paths(ups=Max17048Config(), **paths),
        clock=clock,
        gpio=fake.gpio(chip, clock),
        model_path=fake.model_path,
        run_command=lambda argv: None,
        vcgencmd=Vcgencmd(clock, HealthLog(), run=FakePmic().run),
        open_i2c_bus=lambda number: bus,
    )


def test_board_wires_the_x120x_hat_and_releases_it(fake: FakeSys) -> None:
    gauge = FakeMax17048()
    gauge.set_raw(vcell=0xC580, soc=0x5780)
    bus, chip = FakeI2cBus({0x36: gauge}), FakeChip()
    board = x120x_board(fake, chip, bus)
    chip.drive(6, 0)
    reading = board.power.read_power()
    assert reading.source is PowerSource.BATTERY
    assert reading.battery_pct == 87.5
    assert reading.voltage_v == pytest.approx(5.0853)
    board.close()
    assert bus.closed


@pytest.mark.parametrize(("setting", "line"), [("motion_line", 16), ("case_switch_line", 6)])
def test_no_input_on_the_x120x_hat_lines(fake: FakeSys, setting: str, line: int) -> None:
    with pytest.raises(ConfigError, match=f"GPIO {line} is the UPS HAT"):
        x120x_board(fake, FakeChip(), FakeI2cBus(), **{setting: line})
