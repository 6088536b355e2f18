"""Linux throttle: get_throttled decoding (hex as the kernel prints it), rpi_volt, cpufreq cap."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.metal.hw.fakesys import PI5_MAX_KHZ, FakeSys
from wrale.metal.hw.base import ThrottleReading
from wrale.metal.hw.linux.firmware import parse_throttled
from wrale.shared.errors import InvalidRequestError, UnsupportedError


@pytest.fixture
def fake(tmp_path: Path) -> FakeSys:
    return FakeSys(tmp_path)


@pytest.mark.parametrize(
    ("text", "bits"),
    [
        ("0", 0),
        ("50005\n", 0x50005),  # the kernel's "%x"
        ("0x50005", 0x50005),
        ("0X80008", 0x80008),
        ("throttled=0xe0000", 0xE0000),  # vcgencmd get_throttled
        ("  20002 ", 0x20002),
    ],
)
def test_parse_throttled(text: str, bits: int) -> None:
    assert parse_throttled(text) == bits


@pytest.mark.parametrize("text", ["", "garbage", "0x", "-1", "1ffffffff"])
def test_parse_throttled_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_throttled(text)


def test_now_and_occurred_bits(fake: FakeSys) -> None:
    board = fake.board()
    assert board.throttle.read_throttle() == ThrottleReading()
    fake.set_throttled(0x50005)
    reading = board.throttle.read_throttle()
    assert reading.under_voltage_now
    assert reading.throttled_now
    assert not reading.freq_capped_now
    assert not reading.soft_temp_limit_now
    assert reading.under_voltage_occurred
    assert reading.throttled_occurred
    assert not reading.freq_capped_occurred
    fake.set_throttled(0xA0000)
    reading = board.throttle.read_throttle()
    assert not reading.under_voltage_now
    assert reading.freq_capped_occurred
    assert reading.soft_temp_limit_occurred
    assert not reading.throttled_now


def test_rpi_volt_alarm_ors_into_under_voltage(tmp_path: Path) -> None:
    fake = FakeSys(tmp_path, get_throttled=None)  # as on a Pi 5: only the hwmon
    board = fake.board()
    assert not board.throttle.read_throttle().under_voltage_now
    fake.set_undervoltage_alarm(True)
    reading = board.throttle.read_throttle()
    assert reading.under_voltage_now
    assert reading.under_voltage_occurred
    fake.set_undervoltage_alarm(False)
    reading = board.throttle.read_throttle()
    assert not reading.under_voltage_now
    assert reading.under_voltage_occurred  # latched since metald started


def test_get_throttled_found_where_other_kernels_put_it(tmp_path: Path) -> None:
    node = "devices/platform/soc@107c000000/soc@107c000000:firmware/get_throttled"
    fake = FakeSys(tmp_path, get_throttled=node)
    fake.set_throttled(0x4)
    assert fake.board().throttle.read_throttle().throttled_now


def test_no_firmware_interfaces_reads_clear(tmp_path: Path) -> None:
    board = FakeSys(tmp_path, get_throttled=None, rpi_volt=False).board()
    assert board.throttle.read_throttle() == ThrottleReading()


def test_frequency_cap_round_trip(fake: FakeSys) -> None:
    board = fake.board()
    assert board.throttle.read_throttle().max_freq_pct == 100.0
    board.throttle.set_max_freq(75)
    assert fake.scaling_max_freq() == PI5_MAX_KHZ * 3 // 4
    assert board.throttle.read_throttle().max_freq_pct == pytest.approx(75.0)
    board.throttle.set_max_freq(100)
    assert fake.scaling_max_freq() == PI5_MAX_KHZ


def test_cap_is_written_to_every_policy_and_read_as_the_lowest(fake: FakeSys) -> None:
    for name, value in {"cpuinfo_max_freq": 1_800_000, "scaling_max_freq": 1_800_000}.items():
        fake.write(f"devices/system/cpu/cpufreq/policy4/{name}", value)
    board = fake.board()
    board.throttle.set_max_freq(80)
    assert fake.read("devices/system/cpu/cpufreq/policy4/scaling_max_freq") == "1440000"
    fake.write("devices/system/cpu/cpufreq/policy4/scaling_max_freq", 900_000)
    assert board.throttle.read_throttle().max_freq_pct == pytest.approx(50.0)


def test_cap_never_below_the_hardware_minimum(fake: FakeSys) -> None:
    board = fake.board()
    board.throttle.set_max_freq(10)
    assert fake.scaling_max_freq() == 1_500_000  # what the kernel would clamp to
    assert board.throttle.read_throttle().max_freq_pct == pytest.approx(62.5)


@pytest.mark.parametrize("percent", [9.9, 0, 100.1, float("nan")])
def test_cap_out_of_range_is_refused(fake: FakeSys, percent: float) -> None:
    with pytest.raises(InvalidRequestError):
        fake.board().throttle.set_max_freq(percent)
    assert fake.scaling_max_freq() == PI5_MAX_KHZ


def test_no_cpufreq_reads_full_speed_and_refuses_a_cap(fake: FakeSys) -> None:
    fake.remove("devices/system/cpu/cpufreq")
    board = fake.board()
    assert board.throttle.read_throttle().max_freq_pct == 100.0
    with pytest.raises(UnsupportedError):
        board.throttle.set_max_freq(50)
