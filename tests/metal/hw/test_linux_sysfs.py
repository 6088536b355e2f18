"""Linux backend helpers: path resolution, device lookup by name, re-scan, log-once health."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.metal.hw.fakesys import FakeSys
from wrale.metal.hw.linux.sysfs import (
    HealthLog,
    Locator,
    find_hwmon,
    find_thermal_zone,
    read_scaled,
    under_root,
    write_value,
)
from wrale.shared.clock import FakeClock
from wrale.shared.errors import ActuatorError


@pytest.fixture
def fake(tmp_path: Path) -> FakeSys:
    return FakeSys(tmp_path)


def test_configured_sys_paths_resolve_under_the_test_root(tmp_path: Path) -> None:
    root = tmp_path / "sys"
    assert (
        under_root(root, Path("/sys/devices/x/get_throttled")) == root / "devices/x/get_throttled"
    )
    assert under_root(root, Path("devices/x")) == root / "devices/x"
    assert under_root(root, Path("/run/flags")) == Path("/run/flags")
    assert under_root(Path("/sys"), Path("/sys/devices/x")) == Path("/sys/devices/x")


def test_devices_are_found_by_name_not_number(fake: FakeSys) -> None:
    fan = find_hwmon(fake.sys, "pwmfan")
    assert fan is not None
    assert (fan / "name").read_text().strip() == "pwmfan"
    assert find_hwmon(fake.sys, "no-such-chip") is None
    zone = find_thermal_zone(fake.sys, "cpu-thermal")
    assert zone is not None
    assert zone.name == "thermal_zone0"


def test_a_vanished_device_is_found_again_under_its_new_number(fake: FakeSys) -> None:
    clock = FakeClock()
    where = Locator.single(lambda: find_hwmon(fake.sys, "pwmfan"), clock)
    assert where.one() == fake.sys / fake.hwmon("pwmfan")
    fake.remove_hwmon("pwmfan")
    assert where.one() is None  # vanished: looked for once at once, not there
    fake.add_hwmon("pwmfan", "devices/platform/cooling_fan", pwm1=0)
    assert where.one() is None  # not looked for again before 30 s
    clock.advance(30)
    assert where.one() == fake.sys / fake.hwmon("pwmfan")


def test_health_logs_a_failure_once_and_the_recovery_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wrale.metal.hw.linux")
    health = HealthLog()
    path = tmp_path / "temp"
    for _ in range(3):
        assert read_scaled(health, "probe", path, 1e-3) is None
    path.write_text("garbage\n")
    assert read_scaled(health, "probe", path, 1e-3) is None
    path.write_text("41250\n")
    for _ in range(3):
        assert read_scaled(health, "probe", path, 1e-3) == pytest.approx(41.25)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [f"probe unavailable: {path} does not exist", "probe recovered"]
    assert caplog.records[0].levelno == logging.WARNING


def test_a_failed_write_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "no-dir" / "pwm1"
    with pytest.raises(ActuatorError, match=str(missing)):
        write_value(missing, 10)
