"""Handing the fan and the CPU cap back to the kernel: on a clean stop (``close``), after a
crash (``restore_kernel_control``, the unit's ``ExecStopPost=``), across metald restarts
within one boot, and never from a process that did not drive the fan."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.metal.hw.fakesys import PI5_MAX_KHZ, FakeSys
from wrale.metal.hw.base import FanOwner
from wrale.metal.hw.linux.handback import HANDBACK_FILE, restore_kernel_control

ZONE = "class/thermal/thermal_zone0"


@pytest.fixture
def fake(tmp_path: Path) -> FakeSys:
    return FakeSys(tmp_path, cpu_temp_c=45.0)


def restore(fake: FakeSys) -> list[str]:
    return restore_kernel_control(fake.paths(), fake.state_dir, boot_id_path=fake.boot_id_path)


def test_close_hands_the_fan_back_at_full_speed_and_the_governor_steps_it_down(
    fake: FakeSys,
) -> None:
    governor = fake.governor()
    governor.poll()
    board = fake.board()
    board.fan.set_fan_duty(20)
    board.throttle.set_max_freq(70)
    board.close()
    assert fake.read(f"{ZONE}/mode") == "enabled"
    assert fake.fan_pwm() == 255
    assert fake.scaling_max_freq() == PI5_MAX_KHZ
    assert not (fake.state_dir / HANDBACK_FILE).exists()
    for celsius in (44.9, 44.8, 44.7, 44.6):  # cooling: one step down per falling poll
        fake.set_cpu_temp(celsius)
        governor.poll()
    assert fake.fan_pwm() == 0


def test_after_a_crash_the_unit_restores_from_the_record(fake: FakeSys) -> None:
    board = fake.board()
    board.fan.set_fan_duty(40)
    board.throttle.set_max_freq(70)
    assert fake.read(f"{ZONE}/mode") == "disabled"
    del board  # killed: close() never ran
    done = restore(fake)
    assert fake.read(f"{ZONE}/mode") == "enabled"
    assert fake.scaling_max_freq() == PI5_MAX_KHZ
    assert any("mode back to enabled" in d for d in done)
    assert any("100 %" in d for d in done)
    assert restore(fake) == []  # a second run finds nothing left to do


def test_user_space_policy_goes_back_to_the_original(tmp_path: Path) -> None:
    fake = FakeSys(tmp_path, governors=("step_wise", "user_space"))
    fake.board().fan.set_fan_duty(40)
    assert fake.read(f"{ZONE}/policy") == "user_space"
    restore(fake)
    assert fake.read(f"{ZONE}/policy") == "step_wise"


def test_a_restart_within_the_boot_keeps_the_original_to_restore(fake: FakeSys) -> None:
    fake.board().fan.set_fan_duty(40)  # crashed without handing back
    again = fake.board()
    assert again.fan.read_fan().owner is FanOwner.METALD
    again.fan.set_fan_duty(60)
    again.close()
    assert fake.read(f"{ZONE}/mode") == "enabled"  # not the "disabled" it found


def test_a_record_from_an_earlier_boot_is_dropped_untouched(fake: FakeSys) -> None:
    fake.board().fan.set_fan_duty(40)
    fake.reboot()  # the kernel starts with the zone enabled again
    fake.write(f"{ZONE}/mode", "enabled")
    fake.write(f"{fake.hwmon('pwmfan')}/pwm1", 75)
    assert restore(fake) == []
    assert fake.fan_pwm() == 75
    assert not (fake.state_dir / HANDBACK_FILE).exists()


def test_a_process_that_never_drove_the_fan_does_not_hand_it_back(fake: FakeSys) -> None:
    metald = fake.board()
    metald.fan.set_fan_duty(40)
    reader = fake.board()  # e.g. a CLI reading the board while metald runs
    reader.fan.read_fan()
    reader.close()
    assert fake.read(f"{ZONE}/mode") == "disabled"
    assert fake.fan_pwm() == 102
    metald.close()
    assert fake.read(f"{ZONE}/mode") == "enabled"


def test_nothing_to_restore_on_a_board_metald_never_touched(fake: FakeSys) -> None:
    assert restore(fake) == []
    assert fake.read(f"{ZONE}/mode") == "enabled"
