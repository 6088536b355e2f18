"""A board without an RTC: the wall clock jumps forward (NTP after a 1970 boot or a stale
fake-hwclock) or back. The agent's outbox keeps every row (ages are monotonic), and readings
not yet stored are moved onto the new time. The agent is driven step by step on the
simulator's FakeClock: ``_sample`` and ``_flush`` are what its loops call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fleet.edge.kit import DEVICE, FakeCentral, edge_settings
from wrale.fleet.edge.agent import EdgeAgent
from wrale.fleet.edge.store import EdgeStore
from wrale.fleet.sync.transport.memory import MemoryNetwork
from wrale.metal.core.client import InProcessMetalClient
from wrale.metal.core.engine import MetalCore
from wrale.metal.core.store import DeviceStore
from wrale.metal.hw.sim import SimBoard
from wrale.shared.clock import FakeClock
from wrale.shared.config import SimSettings

YEAR = 365 * 86_400.0
EPOCH_BOOT = 60.0  # a Pi with no RTC and no saved time boots in January 1970


@dataclass
class Rig:
    clock: FakeClock
    board: SimBoard
    core: MetalCore
    store: EdgeStore
    agent: EdgeAgent

    async def report(self, samples: int = 10) -> None:
        """``samples`` readings one second apart, then the report (one outbox row)."""
        for _ in range(samples):
            self.board.advance(1.0)
            await self.core.tick()
            await self.agent._sample()
        await self.agent._flush()

    def stored_cpu_ts(self) -> list[float]:
        rows = self.store.rows_after("telemetry", 0, 10**6)
        return [p[1] for r in rows for p in r.items if p[0] == "cpu_temp_c"]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    board = SimBoard(SimSettings(seed=1, noise=False))
    assert isinstance(board.clock, FakeClock)
    core = MetalCore(board, store=DeviceStore(":memory:"), clock=board.clock)
    await core.start()
    store = EdgeStore(tmp_path / "edge.db", max_age_s=7 * 86_400.0)
    settings = edge_settings(tmp_path, store_inline=True, batch_max_points=10_000)
    net = MemoryNetwork(FakeCentral().serve)  # never dialled: the board is offline
    metal = InProcessMetalClient(core)
    agent = EdgeAgent(settings, metal, store, net.dial, clock=board.clock, device_id=DEVICE)
    yield Rig(board.clock, board, core, store, agent)
    store.close()


async def test_a_forward_jump_of_the_wall_clock_drops_no_stored_row(rig: Rig) -> None:
    for _ in range(5):
        await rig.report()
    rig.clock.step_wall(YEAR)  # NTP finds the board a year behind (stale fake-hwclock)
    await rig.report()
    assert rig.store.depth("telemetry") == 6
    assert rig.store.dropped("telemetry") == 0


async def test_a_backward_jump_drops_no_row_and_a_later_forward_one_neither(rig: Rig) -> None:
    """Back: already right before the outbox aged on the monotonic clock; forward again
    (the RTC-less board's saved time, then NTP) was not."""
    await rig.report()
    rig.clock.step_wall(-YEAR)
    await rig.report()
    rig.clock.step_wall(2 * YEAR)
    await rig.report()
    assert (rig.store.depth("telemetry"), rig.store.dropped("telemetry")) == (3, 0)
    assert [r.seq for r in rig.store.rows_after("telemetry", 0, 10**6)] == [1, 2, 3]


async def test_readings_not_yet_stored_are_moved_by_the_step(rig: Rig) -> None:
    await rig.report()
    for _ in range(5):
        rig.board.advance(1.0)
        await rig.core.tick()
        await rig.agent._sample()
    true_now = rig.clock.now() + 3600.0
    rig.clock.step_wall(3600.0)  # the clock was an hour slow
    await rig.report(samples=5)
    ts = rig.stored_cpu_ts()
    assert ts == sorted(ts)
    assert len(ts) == 20
    second = ts[10:]  # one per second, ending now, on the new time
    assert second == pytest.approx([true_now - 4 + i for i in range(10)], abs=1.01)


async def test_readings_of_a_1970_boot_wait_for_the_clock_and_are_re_timed(
    rig: Rig,
) -> None:
    rig.clock.step_wall(EPOCH_BOOT - rig.clock.now())  # the clock starts in 1970
    rig.board.advance(1.0)
    await rig.core.tick()
    await rig.agent._sample()  # the first look: the agent's offset is the 1970 one
    await rig.report()
    await rig.report()
    assert rig.store.depth("telemetry") == 0  # held: the central would refuse 1970
    synced = 1_800_000_000.0
    rig.clock.step_wall(synced - rig.clock.now())
    await rig.report()
    ts = rig.stored_cpu_ts()
    assert len(ts) == 31
    assert ts == sorted(ts)
    assert min(ts) == pytest.approx(synced - 20, abs=1.01)  # 20 s before, on the true time
    assert max(ts) == pytest.approx(synced + 10, abs=1.01)
