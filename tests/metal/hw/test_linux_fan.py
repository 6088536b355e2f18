"""Linux fan: duty 0-100 % to pwm1 0-255 under manual control, tachometer from fan1_input."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.metal.hw.fakesys import FakeSys
from wrale.shared.errors import ActuatorError, InvalidRequestError


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
def test_set_duty_writes_pwm1_in_manual_mode(fake: FakeSys, percent: float, pwm: int) -> None:
    board = fake.board()
    assert fake.fan_enable() == "2"
    board.fan.set_fan_duty(percent)
    assert fake.fan_pwm() == pwm
    assert fake.fan_enable() == "1"
    assert board.fan.read_fan().duty_pct == pytest.approx(pwm * 100 / 255)


def test_enable_is_not_rewritten_when_already_manual(fake: FakeSys) -> None:
    board = fake.board()
    enable = fake.sys / fake.hwmon("pwmfan") / "pwm1_enable"
    enable.write_text("1\n")  # the backend writes "1" without a newline
    board.fan.set_fan_duty(60)
    assert enable.read_text() == "1\n"
    assert fake.fan_pwm() == 153


@pytest.mark.parametrize("percent", [-1, 100.5, float("nan"), float("inf")])
def test_out_of_range_duty_is_refused_before_any_write(fake: FakeSys, percent: float) -> None:
    board = fake.board()
    with pytest.raises(InvalidRequestError):
        board.fan.set_fan_duty(percent)
    assert fake.fan_pwm() == 75
    assert fake.fan_enable() == "2"


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
