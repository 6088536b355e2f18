"""Under-voltage on the Linux backend as the edge agent reports it: ``rpi_volt``'s alarm
(the firmware's bit 0) and metald's "since boot" latch (bit 16), through metald's state
into the ``under_voltage`` telemetry flag: 1 while it lasts, 1 once for a dip that came
and went between two of the agent's samples, 0 after."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.metal.hw.fakesys import FakeSys
from wrale.fleet.edge.telemetry import points
from wrale.metal.core.engine import MetalCore
from wrale.metal.core.store import DeviceStore
from wrale.shared.clock import FakeClock


def _uv(state: dict[str, Any], previous: dict[str, Any] | None) -> float:
    return {m: v for m, _, v in points(state, previous)}["under_voltage"]


async def test_under_voltage_from_the_firmware_flags_reaches_the_telemetry(
    tmp_path: Path,
) -> None:
    fake = FakeSys(tmp_path, cpu_temp_c=50.0)
    clock = FakeClock()
    board = fake.board(clock=clock)
    core = MetalCore(board, store=DeviceStore(":memory:"), clock=clock)
    await core.start()

    async def sample() -> dict[str, Any]:
        clock.advance(1)
        return (await core.tick()).to_dict()

    first = await sample()
    assert first["thermal"]["firmware_throttle"]["under_voltage_now"] is False
    assert _uv(first, None) == 0.0
    fake.set_undervoltage_alarm(True)  # a dip metald sees between two of the agent's samples
    await sample()
    fake.set_undervoltage_alarm(False)
    after_dip = await sample()
    assert after_dip["thermal"]["firmware_throttle"]["under_voltage_occurred"] is True
    assert _uv(after_dip, first) == 1.0
    later = await sample()
    assert _uv(later, after_dip) == 0.0  # latched since boot: counted once
    fake.set_undervoltage_alarm(True)
    during = await sample()
    assert _uv(during, later) == 1.0  # under-voltage now
    board.close()
