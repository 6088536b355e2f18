"""Linux fan: duty 0-100 % to pwm1 0-255, tachometer from fan1_input, and one owner: once
metald drives the fan, the kernel's thermal governor (``FakeGovernor``) no longer does."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.metal.hw.fakesys import FakeSys
from wrale.metal.hw.base import FanOwner
from wrale.shared.errors import ActuatorError, InvalidRequestError

ZONE = "class/thermal/thermal_zone0"


@pytest.fixture
def fake(tmp_path: Path) -> FakeSys:
    return FakeSys(tmp_path)


def test_reads_duty_from_pwm1_and_rpm_from_tach(fake: FakeSys) -> None:
    reading = fake.board().fan.read_fan()
    assert reading.duty_pct == pytest.approx(75 * 100 / 255)
    assert reading.rpm == 2430


@pytest.mark.parametrize(
    ("percent", "pwm"), [(0, 0), (40, 102), (50, 128), (29.4, 75), (100, 255), (0.1, 0)]
)
def test_set_duty_writes_pwm1(fake: FakeSys, percent: float, pwm: int) -> None:
    board = fake.board()
    board.fan.set_fan_duty(percent)
    assert fake.fan_pwm() == pwm
    assert board.fan.read_fan().duty_pct == pytest.approx(pwm * 100 / 255)


def test_pwm1_enable_is_left_alone(fake: FakeSys) -> None:
    """pwm-fan.c: pwm1_enable is not a manual switch (1 is the probe default)."""
    board = fake.board()
    enable = fake.sys / fake.hwmon("pwmfan") / "pwm1_enable"
    board.fan.set_fan_duty(60)
    assert enable.read_text() == "1\n"
    assert fake.fan_pwm() == 153


def test_a_fan_switched_off_by_pwm1_enable_0_is_switched_back_on(fake: FakeSys) -> None:
    """pwm1_enable 0 makes pwm-fan ignore any non-zero pwm1: metald restores the default."""
    enable = fake.sys / fake.hwmon("pwmfan") / "pwm1_enable"
    enable.write_text("0\n")
    fake.board().fan.set_fan_duty(60)
    assert fake.fan_enable() == "1"
    assert fake.fan_pwm() == 153


def test_the_fixture_governor_overwrites_a_pwm1_written_behind_its_back(fake: FakeSys) -> None:
    """Why metald must take the fan: under step_wise a written pwm1 lasts until a trip
    instance's target changes (here the 50 °C trip as the board warms up)."""
    governor = fake.governor()
    fake.set_cpu_temp(45.0)
    governor.poll()
    pwm1 = fake.sys / fake.hwmon("pwmfan") / "pwm1"
    pwm1.write_text("255\n")
    for celsius in (48.0, 51.0, 53.0):
        fake.set_cpu_temp(celsius)
        governor.poll()
    assert fake.fan_pwm() == 75  # the governor's level for the 50 °C trip


@pytest.mark.parametrize(
    ("governors", "attribute", "taken"),
    [
        (("step_wise",), "mode", "disabled"),  # Raspberry Pi kernels: step_wise only
        (("step_wise", "user_space"), "policy", "user_space"),
    ],
)
def test_metald_takes_the_fan_and_the_governor_leaves_it_alone(
    tmp_path: Path, governors: tuple[str, ...], attribute: str, taken: str
) -> None:
    fake = FakeSys(tmp_path, cpu_temp_c=45.0, governors=governors)
    governor = fake.governor()
    governor.poll()
    board = fake.board()
    assert board.fan.read_fan().owner is FanOwner.KERNEL
    board.fan.set_fan_duty(100)
    assert fake.read(f"{ZONE}/{attribute}") == taken
    assert board.fan.read_fan().owner is FanOwner.METALD
    writes = governor.writes
    for celsius in (48.0, 52.0, 58.0, 61.0, 68.0, 76.0, 70.0, 62.0, 55.0, 49.0, 44.0, 40.0):
        fake.set_cpu_temp(celsius)
        governor.poll()
        assert fake.fan_pwm() == 255, celsius
    assert governor.writes == writes
    board.fan.set_fan_duty(30)  # and metald's own changes still land
    governor.poll()
    assert fake.fan_pwm() == 76


def test_a_zone_that_refuses_the_takeover_keeps_the_kernel_in_charge(fake: FakeSys) -> None:
    board = fake.board()
    mode = fake.sys / ZONE / "mode"
    mode.unlink()
    mode.mkdir()  # writing "disabled" now fails
    with pytest.raises(ActuatorError, match="mode"):
        board.fan.set_fan_duty(100)
    assert fake.fan_pwm() == 75  # nothing written behind the governor's back
    assert board.fan.read_fan().owner is FanOwner.KERNEL


def test_a_fan_without_a_thermal_zone_is_metalds(tmp_path: Path) -> None:
    fake = FakeSys(tmp_path)
    board = fake.board(cpu_thermal_zone="no-such-zone")
    assert board.fan.read_fan().owner is FanOwner.METALD
    board.fan.set_fan_duty(50)
    assert fake.fan_pwm() == 128


@pytest.mark.parametrize("percent", [-1, 100.5, float("nan"), float("inf")])
def test_out_of_range_duty_is_refused_before_any_write(fake: FakeSys, percent: float) -> None:
    board = fake.board()
    with pytest.raises(InvalidRequestError):
        board.fan.set_fan_duty(percent)
    assert fake.fan_pwm() == 75
    assert fake.read(f"{ZONE}/mode") == "enabled"


def test_write_failure_is_an_actuator_error_naming_the_file(fake: FakeSys) -> None:
    board = fake.board()
    pwm1 = fake.sys / fake.hwmon("pwmfan") / "pwm1"
    pwm1.unlink()
    pwm1.mkdir()  # writing to it now fails
    with pytest.raises(ActuatorError, match="pwm1"):
        board.fan.set_fan_duty(50)


def test_board_without_fan(tmp_path: Path) -> None:
    board = FakeSys(tmp_path, fan=False).board()
    assert board.fan.read_fan().rpm is None
    assert board.fan.read_fan().duty_pct == 0.0
    with pytest.raises(ActuatorError, match="pwmfan"):
        board.fan.set_fan_duty(50)


def test_missing_tach_reads_none_and_logs_once(
    fake: FakeSys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wrale.metal.hw.linux")
    board = fake.board()
    fake.remove(f"{fake.hwmon('pwmfan')}/fan1_input")
    assert [board.fan.read_fan().rpm for _ in range(3)] == [None] * 3
    fake.set_fan_rpm(3100)
    assert board.fan.read_fan().rpm == 3100
    fan = [r.levelno for r in caplog.records if "fan speed" in r.getMessage()]
    assert fan == [logging.WARNING, logging.INFO]


def test_unreadable_pwm_reports_the_last_commanded_duty(fake: FakeSys) -> None:
    board = fake.board()
    board.fan.set_fan_duty(60)
    fake.write(f"{fake.hwmon('pwmfan')}/pwm1", "garbage")
    assert board.fan.read_fan().duty_pct == 60.0
