"""Linux thermal: thermal_zone and hwmon temperatures in °C, failures as None, logged once."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.metal.hw.fakesys import FakeSys
from wrale.shared.clock import FakeClock


@pytest.fixture
def fake(tmp_path: Path) -> FakeSys:
    return FakeSys(tmp_path)


def test_cpu_temperature_in_celsius(fake: FakeSys) -> None:
    board = fake.board()
    assert board.thermal.read_thermal().cpu_temp_c == pytest.approx(52.3)
    fake.set_cpu_temp(81.25)
    reading = board.thermal.read_thermal()
    assert reading.cpu_temp_c == pytest.approx(81.25)
    assert reading.gpu_temp_c is None  # a Pi 5 has one SoC zone
    assert reading.ambient_temp_c is None  # no ambient sensor configured


def test_gpu_zone_and_ambient_hwmon_when_configured(fake: FakeSys) -> None:
    fake.write("class/thermal/thermal_zone1/type", "gpu-thermal")
    fake.write("class/thermal/thermal_zone1/temp", "48900")
    fake.add_hwmon("sht3x", "devices/platform/i2c-1/1-0044", temp1_input=23450)
    board = fake.board(gpu_thermal_zone="gpu-thermal", ambient_hwmon="sht3x")
    reading = board.thermal.read_thermal()
    assert reading.gpu_temp_c == pytest.approx(48.9)
    assert reading.ambient_temp_c == pytest.approx(23.45)


def test_zone_chosen_by_type(fake: FakeSys) -> None:
    fake.write("class/thermal/thermal_zone7/type", "soc-thermal")
    fake.write("class/thermal/thermal_zone7/temp", "61000")
    board = fake.board(cpu_thermal_zone="soc-thermal")
    assert board.thermal.read_thermal().cpu_temp_c == pytest.approx(61.0)


@pytest.mark.parametrize("content", ["garbage", "", "4294967295", "-300000"])
def test_garbage_reads_none(fake: FakeSys, content: str) -> None:
    board = fake.board()
    fake.write("class/thermal/thermal_zone0/temp", content)
    assert board.thermal.read_thermal().cpu_temp_c is None


def test_sensor_failure_and_recovery_are_logged_once(
    fake: FakeSys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wrale.metal.hw.linux")
    board = fake.board()
    fake.remove("devices/virtual/thermal/thermal_zone0/temp")
    assert [board.thermal.read_thermal().cpu_temp_c for _ in range(5)] == [None] * 5
    fake.set_cpu_temp(55.0)
    assert [board.thermal.read_thermal().cpu_temp_c for _ in range(3)] == [55.0] * 3
    cpu = [r for r in caplog.records if "CPU temperature" in r.getMessage()]
    assert [r.levelno for r in cpu] == [logging.WARNING, logging.INFO]
    assert "does not exist" in cpu[0].getMessage()
    assert "recovered" in cpu[1].getMessage()


def test_ambient_sensor_plugged_in_later_is_found_within_30_s(fake: FakeSys) -> None:
    clock = FakeClock()
    board = fake.board(clock=clock, ambient_hwmon="sht3x")
    assert board.thermal.read_thermal().ambient_temp_c is None
    fake.add_hwmon("sht3x", "devices/platform/i2c-1/1-0044", temp1_input=19000)
    clock.advance(29)
    assert board.thermal.read_thermal().ambient_temp_c is None
    clock.advance(1)
    assert board.thermal.read_thermal().ambient_temp_c == pytest.approx(19.0)
