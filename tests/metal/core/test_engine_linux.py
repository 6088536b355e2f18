"""The safety loop on the Linux backend over a fake sysfs tree: reads in a thread, writes
land in the kernel files, and an actuator that cannot be driven is reported once."""

from __future__ import annotations

from pathlib import Path

from tests.metal.hw.fakesys import FakeSys
from wrale.metal.core.engine import MetalCore
from wrale.metal.core.events import EventType
from wrale.metal.core.store import DeviceStore
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
