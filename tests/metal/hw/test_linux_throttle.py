"""Linux throttle: the flags from vcgencmd and rpi_volt with metald's own "since boot" latch
(never the sysfs get_throttled file by default), and the cpufreq cap with its 62.5 % floor."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.metal.hw.fakechip import FakeChip
from tests.metal.hw.fakesys import PI5_MAX_KHZ, PI5_MIN_KHZ, FakeSys
from wrale.metal.hw.base import ThrottleReading
from wrale.metal.hw.linux import LinuxBoard
from wrale.metal.hw.linux.firmware import parse_throttled
from wrale.shared.clock import FakeClock
from wrale.shared.errors import InvalidRequestError, UnsupportedError

VCGENCMD_CACHE_S = 5.0
PI5_FLOOR_PCT = 62.5


@pytest.fixture
def fake(tmp_path: Path) -> FakeSys:
    return FakeSys(tmp_path)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


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


def test_now_and_occurred_bits(fake: FakeSys, clock: FakeClock) -> None:
    board = fake.board(clock=clock)
    assert board.throttle.read_throttle() == ThrottleReading(min_freq_pct=PI5_FLOOR_PCT)
    fake.set_throttled(0x50005)
    clock.advance(VCGENCMD_CACHE_S)
    reading = board.throttle.read_throttle()
    assert reading.under_voltage_now
    assert reading.throttled_now
    assert not reading.freq_capped_now
    assert not reading.soft_temp_limit_now
    assert reading.under_voltage_occurred
    assert reading.throttled_occurred
    assert not reading.freq_capped_occurred
    fake.set_throttled(0xA0000)
    clock.advance(VCGENCMD_CACHE_S)
    reading = board.throttle.read_throttle()
    assert not reading.under_voltage_now
    assert reading.freq_capped_occurred
    assert reading.soft_temp_limit_occurred
    assert not reading.throttled_now


def test_vcgencmd_runs_at_most_every_few_seconds(fake: FakeSys, clock: FakeClock) -> None:
    board = fake.board(clock=clock)
    for _ in range(5):
        board.throttle.read_throttle()
        clock.advance(1)
    assert fake.firmware.calls == [["vcgencmd", "get_throttled"]]


def test_the_sysfs_word_is_not_read_by_default(fake: FakeSys) -> None:
    """The file warns in the kernel log and holds the last caller's stale reply."""
    fake.write("devices/platform/soc/soc:firmware/get_throttled", "50005")
    reading = fake.board().throttle.read_throttle()
    assert not reading.under_voltage_now
    assert not reading.throttled_occurred


def test_since_boot_survives_rpi_volt_clearing_the_sticky_bits(
    fake: FakeSys, clock: FakeClock
) -> None:
    board = fake.board(clock=clock)
    fake.set_throttled(0x50005)
    assert board.throttle.read_throttle().throttled_occurred
    fake.set_throttled(0)  # the condition ends ...
    fake.firmware.rpi_volt_poll()  # ... and rpi_volt clears the sticky bits 2 s later
    assert fake.firmware.word == 0
    clock.advance(VCGENCMD_CACHE_S)
    reading = board.throttle.read_throttle()
    assert not reading.throttled_now
    assert not reading.under_voltage_now
    assert reading.throttled_occurred
    assert reading.under_voltage_occurred


def test_since_boot_survives_a_metald_restart_and_not_a_reboot(
    fake: FakeSys, clock: FakeClock
) -> None:
    fake.set_throttled(0x4)
    fake.board(clock=clock).throttle.read_throttle()
    fake.set_throttled(0)
    restarted = fake.board(clock=FakeClock())
    assert restarted.throttle.read_throttle().throttled_occurred
    fake.reboot()
    rebooted = fake.board(clock=FakeClock())
    assert not rebooted.throttle.read_throttle().throttled_occurred


def test_rpi_volt_alarm_is_under_voltage_now(tmp_path: Path) -> None:
    fake = FakeSys(tmp_path, get_throttled=None)
    board = fake.board()
    assert not board.throttle.read_throttle().under_voltage_now
    fake.set_undervoltage_alarm(True)
    reading = board.throttle.read_throttle()
    assert reading.under_voltage_now
    assert reading.under_voltage_occurred
    fake.set_undervoltage_alarm(False)
    reading = board.throttle.read_throttle()
    assert not reading.under_voltage_now
    assert reading.under_voltage_occurred  # latched by metald


def test_the_sysfs_word_when_asked_for_where_other_kernels_put_it(tmp_path: Path) -> None:
    node = "devices/platform/soc@107c000000/soc@107c000000:firmware/get_throttled"
    fake = FakeSys(tmp_path, get_throttled=node)
    fake.set_throttled(0x4)
    fake.firmware.word = 0  # only the file says so
    board = LinuxBoard(
        fake.paths(read_get_throttled_file=True), clock=FakeClock(), gpio=fake.gpio(FakeChip())
    )
    assert board.throttle.read_throttle().throttled_now


def test_no_firmware_interfaces_reads_clear(tmp_path: Path) -> None:
    fake = FakeSys(tmp_path, get_throttled=None, rpi_volt=False)
    board = LinuxBoard(fake.paths(), clock=FakeClock(), gpio=fake.gpio(FakeChip()))
    assert board.throttle.read_throttle() == ThrottleReading(min_freq_pct=PI5_FLOOR_PCT)


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


@pytest.mark.parametrize("percent", [10, 40, 60, 62.5])
def test_a_cap_below_the_floor_is_the_floor(fake: FakeSys, percent: float) -> None:
    board = fake.board()
    board.throttle.set_max_freq(percent)
    assert fake.scaling_max_freq() == PI5_MIN_KHZ  # what the kernel would clamp to
    reading = board.throttle.read_throttle()
    assert reading.max_freq_pct == pytest.approx(PI5_FLOOR_PCT)
    assert reading.min_freq_pct == pytest.approx(PI5_FLOOR_PCT)


def test_an_unchanged_cap_writes_nothing(fake: FakeSys) -> None:
    board = fake.board()
    board.throttle.set_max_freq(40)
    path = fake.sys / "devices/system/cpu/cpufreq/policy0/scaling_max_freq"
    path.write_text("1500000 \n")  # a rewrite would drop the trailing blank
    for _ in range(3):
        board.throttle.set_max_freq(40)
        board.throttle.set_max_freq(62.5)
    assert path.read_text() == "1500000 \n"
    board.throttle.set_max_freq(75)
    assert fake.scaling_max_freq() == PI5_MAX_KHZ * 3 // 4


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
