"""UPS HAT readers on chips and a server that behave like the real ones (see the fixtures).

Raw words are worked out by hand from the datasheets, not by the fixtures' own arithmetic:
MAX17048 VCELL 3.95 V = 50560 x 78.125 µV = C580h, SOC 87.5 % = 87.5 x 256 = 5780h,
CRATE +10.4 %/h = 50 x 0.208; INA219 7.8 V on the bus = 1950 x 4 mV, 0.5 A through 0.1 Ω
= 5000 x 10 µV of shunt voltage = 5000 x 0.1 mA with calibration 4096.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.metal.hw.fake_i2c import FakeI2cBus, FakeIna219, FakeMax17048
from tests.metal.hw.fake_pisugar import FakePiSugarServer
from tests.metal.hw.fakechip import FakeChip
from tests.metal.hw.fakesys import FakeSys
from wrale.metal.hw.linux.sysfs import HealthLog
from wrale.metal.hw.linux.ups import (
    Ina219Config,
    Ina219Reader,
    Max17048Config,
    PiSugarConfig,
    PiSugarReader,
    UpsReading,
    open_reader,
)

UPS_LOG = "wrale.metal.hw.linux"


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# ----------------------------------------------------------------------------- MAX17048


@pytest.fixture
def gauge() -> FakeMax17048:
    chip = FakeMax17048()
    chip.set_raw(vcell=0xC580, soc=0x5780, crate=50)
    return chip


@pytest.fixture
def header(tmp_path: Path) -> tuple[FakeSys, FakeChip]:
    return FakeSys(tmp_path), FakeChip()


def x120x(gauge: FakeMax17048, header: tuple[FakeSys, FakeChip], **config: object):  # type: ignore[no-untyped-def]
    fake, chip = header
    bus = FakeI2cBus({0x36: gauge})
    reader = open_reader(
        Max17048Config(**config),  # type: ignore[arg-type]
        HealthLog(),
        gpio=fake.gpio(chip),
        open_bus=lambda number: bus,
    )
    return reader, bus, chip


def test_x120x_reads_the_gauge_and_the_mains_line(
    gauge: FakeMax17048, header: tuple[FakeSys, FakeChip]
) -> None:
    reader, _, chip = x120x(gauge, header)
    chip.drive(6, 1)  # X1200 wiki: GPIO6 high = power supply OK
    reading = reader.read_ups()
    assert reading == UpsReading(
        battery_pct=87.5, battery_v=3.95, current_a=None, mains_present=True, charging=True
    )
    assert chip.settings(6).direction.name == "INPUT"
    chip.drive(6, 0)
    on_battery = reader.read_ups()
    assert on_battery.mains_present is False
    assert on_battery.charging is False  # a cell cannot charge without mains


def test_x120x_discharge_rate_is_not_charging(
    gauge: FakeMax17048, header: tuple[FakeSys, FakeChip]
) -> None:
    gauge.set_raw(vcell=0xC580, soc=0x5780, crate=-25)  # -5.2 %/h
    reader, _, chip = x120x(gauge, header)
    chip.drive(6, 1)
    assert reader.read_ups().charging is False


def test_gauge_without_mains_line_infers_mains_from_the_charge_rate(
    gauge: FakeMax17048, header: tuple[FakeSys, FakeChip]
) -> None:
    reader, _, _ = x120x(gauge, header, mains_line=None)
    assert reader.read_ups().mains_present is True
    gauge.set_raw(vcell=0xC580, soc=0x5780, crate=-25)
    assert reader.read_ups().mains_present is False


def test_another_chip_at_0x36_is_refused_once(
    gauge: FakeMax17048, header: tuple[FakeSys, FakeChip], caplog: pytest.LogCaptureFixture
) -> None:
    gauge.registers[0x08] = 0x4000
    reader, _, chip = x120x(gauge, header)
    chip.drive(6, 1)
    for _ in range(3):
        reading = reader.read_ups()
        assert (reading.battery_pct, reading.battery_v) == (None, None)
        assert reading.mains_present is True  # the GPIO still says so
    assert len([m for m in warnings(caplog) if "not a MAX17048" in m]) == 1


def test_absent_hat_reads_none_logs_once_and_recovers(
    gauge: FakeMax17048, header: tuple[FakeSys, FakeChip], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=UPS_LOG)
    reader, bus, chip = x120x(gauge, header)
    chip.drive(6, 1)
    bus.fail = True
    for _ in range(3):
        assert not reader.read_ups().battery_known
    assert len([m for m in warnings(caplog) if "MAX17048" in m]) == 1
    bus.fail = False
    assert reader.read_ups().battery_pct == 87.5
    assert any("recovered" in r.getMessage() for r in caplog.records)


def test_garbage_words_are_not_a_reading(
    gauge: FakeMax17048, header: tuple[FakeSys, FakeChip]
) -> None:
    gauge.set_raw(vcell=0xFFFF, soc=0xFFFF)  # 5.12 V, 255.996 %: not a 1S cell
    reader, _, _ = x120x(gauge, header)
    assert not reader.read_ups().battery_known


# ----------------------------------------------------------------------------- INA219


def waveshare(chip: FakeIna219, **config: object) -> tuple[Ina219Reader, FakeI2cBus]:
    c = Ina219Config(**config)  # type: ignore[arg-type]
    bus = FakeI2cBus({c.address: chip})
    return Ina219Reader(c, bus, HealthLog()), bus


def test_waveshare_programs_calibration_then_reads_the_pack() -> None:
    chip = FakeIna219()
    chip.set_pack(7.8, 0.5)
    assert chip.registers[0x02] == (1950 << 3) | 0x2
    reader, _ = waveshare(chip)
    reading = reader.read_ups()
    assert chip.writes == [(0x00, 0x3EEF), (0x05, 4096)]
    assert reading.battery_v == pytest.approx(7.8)
    assert reading.current_a == pytest.approx(0.5)
    assert reading.battery_pct == pytest.approx(75.0)  # (7.8 - 6.0) / 2.4
    assert reading.mains_present is True
    assert reading.charging is True
    reader.read_ups()
    assert len(chip.writes) == 2  # calibration kept: nothing rewritten


def test_waveshare_on_battery_and_after_a_chip_reset() -> None:
    chip = FakeIna219()
    chip.set_pack(7.2, -0.6)
    reader, _ = waveshare(chip)
    reading = reader.read_ups()
    assert reading.current_a == pytest.approx(-0.6)
    assert (reading.mains_present, reading.charging) == (False, False)
    assert reading.battery_pct == pytest.approx(50.0)
    chip.registers[0x05] = 0  # brown-out: the chip forgot its calibration
    assert reader.read_ups().current_a == pytest.approx(-0.6)
    assert chip.writes[-1] == (0x05, 4096)


def test_full_pack_on_mains_is_idle_not_on_battery() -> None:
    chip = FakeIna219()
    chip.set_pack(8.34, -0.01)
    reading = waveshare(chip)[0].read_ups()
    assert (reading.mains_present, reading.charging) == (True, False)
    assert reading.battery_pct == pytest.approx(97.5)


def test_overflow_makes_the_current_unknown() -> None:
    chip = FakeIna219()
    chip.overflow = True
    chip.set_pack(7.8, 0.5)
    reading = waveshare(chip)[0].read_ups()
    assert reading.battery_v == pytest.approx(7.8)
    assert (reading.current_a, reading.mains_present, reading.charging) == (None, None, None)


def test_ups_hat_c_is_one_cell_at_0x43() -> None:
    chip = FakeIna219()
    chip.set_pack(3.9, 0.2)
    reading = waveshare(chip, address=0x43, cells=1)[0].read_ups()
    assert reading.battery_pct == pytest.approx(75.0)  # (3.9 - 3.0) / 1.2


def test_missing_ina219_reads_empty_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    reader = Ina219Reader(Ina219Config(), FakeI2cBus(), HealthLog())
    assert reader.read_ups() == UpsReading()
    assert reader.read_ups() == UpsReading()
    assert len([m for m in warnings(caplog) if "INA219" in m]) == 1


def test_pack_curve_and_calibration_are_checked() -> None:
    with pytest.raises(ValueError, match="cells: must be >= 1"):
        Ina219Config(cells=0)
    with pytest.raises(ValueError, match="full_cell_v: must be above empty_cell_v"):
        Ina219Config(empty_cell_v=4.2, full_cell_v=3.0)
    with pytest.raises(ValueError, match=r"current_lsb_a: .* calibration register overflows"):
        Ina219Config(shunt_ohm=0.001, current_lsb_a=0.00001)  # 0.04096 / 1e-8 > 0xFFFE


# ----------------------------------------------------------------------------- PiSugar


@pytest.fixture
def server(tmp_path: Path):  # type: ignore[no-untyped-def]
    fake = FakePiSugarServer(tmp_path / "ps.sock")
    yield fake
    fake.close()


def pisugar(server: FakePiSugarServer, timeout_s: float = 1.0) -> PiSugarReader:
    return PiSugarReader(
        PiSugarConfig(socket_path=str(server.path), timeout_s=timeout_s), HealthLog()
    )


def test_pisugar_answers_are_parsed(server: FakePiSugarServer) -> None:
    reading = pisugar(server).read_ups()
    assert reading == UpsReading(
        battery_pct=87.5, battery_v=4.0375, current_a=None, mains_present=True, charging=True
    )
    assert server.requests == [
        "get battery",
        "get battery_v",
        "get battery_charging",
        "get battery_power_plugged",
    ]


def test_pisugar_tap_events_between_answers_are_ignored(server: FakePiSugarServer) -> None:
    server.tap_event = "single"
    server.answers.update(battery="100", battery_power_plugged="false", battery_charging="false")
    reading = pisugar(server).read_ups()
    assert (reading.battery_pct, reading.mains_present, reading.charging) == (100.0, False, False)


def test_pisugar_failing_getter_and_older_server(
    server: FakePiSugarServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.answers["battery"] = "I2C not connected"
    server.answers["battery_power_plugged"] = None  # a server that predates the command
    reading = pisugar(server, timeout_s=0.3).read_ups()
    assert reading.battery_pct is None
    assert reading.mains_present is None
    assert reading.battery_v == pytest.approx(4.0375)
    assert any("I2C not connected" in m for m in warnings(caplog))


def test_pisugar_garbage_values_are_refused(server: FakePiSugarServer) -> None:
    server.answers.update(battery="NaN", battery_v="42", battery_charging="yes")
    reading = pisugar(server).read_ups()
    assert (reading.battery_pct, reading.battery_v, reading.charging) == (None, None, None)


def test_pisugar_without_server_or_answer_reads_empty(
    server: FakePiSugarServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gone = PiSugarReader(PiSugarConfig(socket_path=str(tmp_path / "none.sock")), HealthLog())
    assert gone.read_ups() == UpsReading()
    assert gone.read_ups() == UpsReading()
    assert len([m for m in warnings(caplog) if "none.sock" in m]) == 1
    server.silent = True
    assert pisugar(server, timeout_s=0.2).read_ups() == UpsReading()
