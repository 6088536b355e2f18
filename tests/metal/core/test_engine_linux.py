"""The safety loop on the Linux backend over a fake sysfs tree: reads in a thread, writes
land in the kernel files, and an actuator that cannot be driven is reported once."""

from __future__ import annotations

from pathlib import Path

from tests.metal.hw.fakesys import FakeSys
from wrale.metal.core.engine import MetalCore
from wrale.metal.core.events import EventType
from wrale.metal.core.store import DeviceStore
from wrale.metal.hw.base import FanOwner
from wrale.shared.clock import FakeClock


async def test_hot_board_drives_the_fan_and_a_broken_pwm_file_is_reported_once(
    tmp_path: Path,
) -> None:
    fake = FakeSys(tmp_path, cpu_temp_c=55.0)
    clock = FakeClock()
    board = fake.board(clock=clock)
    core = MetalCore(board, store=DeviceStore(":memory:"), clock=clock)
    await core.start()
    assert core.current().decision.fan_pct > 0
    pwm1 = f"{fake.hwmon('pwmfan')}/pwm1"
    assert int(fake.read(pwm1)) == round(core.current().decision.fan_pct * 255 / 100)

    fake.set_cpu_temp(83.0)  # critical: the fan must go to 100 % and the CPU be capped
    clock.advance(1)
    snap = await core.tick()
    assert snap.decision.fan_pct == 100
    assert int(fake.read(pwm1)) == 255
    assert fake.scaling_max_freq() < 2_400_000

    fake.set_cpu_temp(60.0)
    fake.remove(pwm1)
    (fake.sys / pwm1).mkdir()  # writes now fail with an OSError
    for _ in range(5):
        clock.advance(1)
        await core.tick()
    kinds = [e.type for e in await core.events(limit=1000)]
    assert kinds.count(EventType.ACTUATOR_FAILURE) == 1

    fake.remove(pwm1)
    fake.write(pwm1, 0)
    clock.advance(1)
    await core.tick()
    kinds = [e.type for e in await core.events(limit=1000)]
    assert EventType.ACTUATOR_RECOVERED in kinds
    board.close()


async def test_the_kernel_governor_never_takes_the_fan_back_while_metald_runs(
    tmp_path: Path,
) -> None:
    """On a Pi 5 step_wise rewrites pwm1 whenever a trip target changes; metald takes the
    zone before its first write, so what it decides is what the fan gets, tick after tick."""
    fake = FakeSys(tmp_path, cpu_temp_c=45.0)
    governor = fake.governor()
    governor.poll()
    clock = FakeClock()
    board = fake.board(clock=clock)
    core = MetalCore(board, store=DeviceStore(":memory:"), clock=clock)
    await core.start()
    await core.set_fan_override(100, 600)
    for celsius in (48.0, 52.0, 58.0, 61.0, 55.0, 49.0, 47.0, 46.0):
        fake.set_cpu_temp(celsius)
        governor.poll()
        clock.advance(1)
        snap = await core.tick()
        assert fake.fan_pwm() == 255
        assert snap.fan.owner is FanOwner.METALD
    board.close()  # a clean stop hands the zone back to the kernel
    assert fake.read("class/thermal/thermal_zone0/mode") == "enabled"


async def test_a_cap_below_the_pi5_floor_is_the_floor_written_once(tmp_path: Path) -> None:
    fake = FakeSys(tmp_path, cpu_temp_c=50.0)
    clock = FakeClock()
    board = fake.board(clock=clock)
    core = MetalCore(board, store=DeviceStore(":memory:"), clock=clock)
    await core.start()
    snap = await core.set_freq_cap(40)
    answer = snap.thermal_dict()
    assert answer["max_freq_pct"] == 62.5
    assert any("floor of 62.5 %" in w for w in answer["warnings"])
    assert fake.scaling_max_freq() == 1_500_000
    path = fake.sys / "devices/system/cpu/cpufreq/policy0/scaling_max_freq"
    path.write_text("1500000 \n")  # a rewrite would drop the trailing blank
    for _ in range(5):
        clock.advance(1)
        await core.tick()
    assert path.read_text() == "1500000 \n"
    kinds = [e for e in await core.events(limit=100) if e.type is EventType.FREQ_CAP]
    assert "applied as 62.5 %" in kinds[-1].message
    board.close()
    assert fake.scaling_max_freq() == 2_400_000
