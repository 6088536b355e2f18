"""The Linux backend's wear sources: a battery's state of health from its power_supply
entry (``charge_full`` / ``charge_full_design`` in µAh, or the ``energy_*`` pair in µWh:
the kernel's Documentation/ABI/testing/sysfs-class-power) and an eMMC's ``life_time`` and
``pre_eol_info`` (``fake_mmc``: drivers/mmc/core/mmc.c)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.metal.hw.fake_mmc import add_mmc_card
from tests.metal.hw.fakesys import FakeSys
from wrale.metal.hw.base import StorageReading
from wrale.metal.hw.linux.storage import (
    READ_INTERVAL_S,
    life_used_pct,
    parse_life_time,
    parse_pre_eol,
)
from wrale.shared.clock import FakeClock

UPS = {"main": "ups-ac", "battery": "bq27441-0"}


@pytest.fixture
def fake(tmp_path: Path) -> FakeSys:
    return FakeSys(tmp_path)


def _ups(fake: FakeSys, **battery: object) -> None:
    fake.add_power_supply("ups-ac", "Mains", online=1, voltage_now=5_080_000)
    fake.add_power_supply(
        "bq27441-0", "Battery", present=1, status="Charging", capacity=87, **battery
    )


def test_battery_health_from_charge_full_over_design(fake: FakeSys) -> None:
    _ups(fake, charge_full=2_650_000, charge_full_design=3_000_000)  # µAh
    board = fake.board(power_supplies=UPS)
    assert board.power.read_power().battery_health_pct == pytest.approx(88.33)
    fake.set_supply("bq27441-0", charge_full=2_400_000)  # the gauge learned a lower capacity
    assert board.power.read_power().battery_health_pct == pytest.approx(80.0)


def test_battery_health_from_the_energy_pair(fake: FakeSys) -> None:
    _ups(fake, energy_full=17_600_000, energy_full_design=22_000_000)  # µWh
    assert fake.board(power_supplies=UPS).power.read_power().battery_health_pct == 80.0


def test_battery_health_unknown_without_the_pair_or_with_nonsense(fake: FakeSys) -> None:
    _ups(fake, charge_full=2_650_000)  # no design capacity: no state of health
    board = fake.board(power_supplies=UPS)
    assert board.power.read_power().battery_health_pct is None
    fake.set_supply("bq27441-0", charge_full_design=0)
    assert board.power.read_power().battery_health_pct is None
    fake.set_supply("bq27441-0", charge_full_design=1_000_000)  # 265 %: not believed
    assert board.power.read_power().battery_health_pct is None
    fake.set_supply("bq27441-0", charge_full="garbage", charge_full_design=3_000_000)
    reading = board.power.read_power()
    assert reading.battery_health_pct is None
    assert reading.battery_pct == 87  # the rest of the entry still reads


def test_a_board_without_battery_reports_no_health(fake: FakeSys) -> None:
    assert fake.board().power.read_power().battery_health_pct is None


@pytest.mark.parametrize(
    ("text", "used"),
    [
        ("0x01 0x01", 10.0),
        ("0x01 0x03", 30.0),  # the worse of type A and type B
        ("0x09 0x02", 90.0),
        ("0x0a 0x0A", 100.0),
        ("0x0B 0x01", 100.0),  # past its estimated life
        ("0x00 0x02", 20.0),  # type A not defined
        ("0x00 0x00", None),
        ("02 03", 30.0),  # without the 0x some vendor kernels print
    ],
)
def test_life_time_bands(text: str, used: float | None) -> None:
    assert parse_life_time(text) == used


def test_life_band_bounds_and_pre_eol() -> None:
    assert [life_used_pct(b) for b in (0, 1, 10, 11, 12)] == [None, 10.0, 100.0, 100.0, None]
    assert [parse_pre_eol(t) for t in ("0x00", "0x01", "0x02", "0x03", "0x04")] == [
        None,
        1,
        2,
        3,
        None,
    ]
    with pytest.raises(ValueError, match="empty"):
        parse_life_time("")
    with pytest.raises(ValueError, match="invalid literal"):
        parse_life_time("worn out")


def test_emmc_wear_read_through_sys_block(fake: FakeSys) -> None:
    add_mmc_card(fake.sys, life_time="0x02 0x05", pre_eol_info="0x02")
    reading = fake.board().storage.read_storage()
    assert reading == StorageReading(emmc_life_used_pct=50.0, emmc_pre_eol=2)


def test_sd_card_and_no_card_give_no_emmc_reading(fake: FakeSys) -> None:
    assert fake.board().storage.read_storage() == StorageReading()
    add_mmc_card(fake.sys, emmc=False)
    assert fake.board().storage.read_storage() == StorageReading()


def test_emmc_without_pre_eol_and_the_worst_of_two(fake: FakeSys) -> None:
    add_mmc_card(fake.sys, 0, life_time="0x01 0x02", pre_eol_info=None)
    add_mmc_card(fake.sys, 1, life_time="0x04 0x01", pre_eol_info="0x01")
    reading = fake.board().storage.read_storage()
    assert reading == StorageReading(emmc_life_used_pct=40.0, emmc_pre_eol=1)


def test_emmc_is_read_again_only_after_the_interval(fake: FakeSys) -> None:
    card = add_mmc_card(fake.sys, life_time="0x01 0x01")
    clock = FakeClock()
    storage = fake.board(clock=clock).storage
    assert storage.read_storage().emmc_life_used_pct == 10.0
    (card / "life_time").write_text("0x03 0x01\n", encoding="ascii")
    assert storage.read_storage().emmc_life_used_pct == 10.0  # kept between reads
    clock.advance(READ_INTERVAL_S)
    assert storage.read_storage().emmc_life_used_pct == 30.0


def test_garbled_life_time_reads_nothing_and_never_raises(fake: FakeSys) -> None:
    card = add_mmc_card(fake.sys, life_time="0x01 0x01")
    (card / "life_time").write_text("\xff\n", encoding="latin-1")
    assert fake.board().storage.read_storage() == StorageReading()
