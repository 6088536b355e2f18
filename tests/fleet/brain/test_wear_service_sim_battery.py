"""A simulated board whose battery fades and whose UPS HAT reports no state of health (an
INA219 HAT: voltage, current, power and a percentage, no design capacity), tested on battery
an hour a day: its samples through metald's state, the edge telemetry and the store (both
databases) make a battery trend from the capacity measured across its discharges."""

from __future__ import annotations

import time

import pytest

from tests.fleet.brain.jobs_kit import World, make_world
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.services import telemetry
from wrale.fleet.brain.services.maintenance import wear
from wrale.fleet.edge.telemetry import Point, points
from wrale.metal.core.engine import MetalCore
from wrale.metal.core.store import DeviceStore
from wrale.metal.hw.base import Fault, FaultKind
from wrale.metal.hw.linux.ups import Ina219Config
from wrale.metal.hw.sim import SimBoard
from wrale.metal.hw.sim.wear import Wear, WearKind
from wrale.shared.clock import FakeClock
from wrale.shared.config import SimSettings

DAY, DAYS, SAMPLE_S = 86_400, 20, 600
READ = {"on_battery", "power_w", "battery_pct", "battery_health_pct"}
BATCH = 5_000


@pytest.fixture
async def world(database: Database) -> World:
    return await make_world(database)


async def _simulate(start: float, fade: bool) -> list[Point]:
    """``DAYS`` days from ``start`` (a midnight), a sample every 10 minutes, the mains off
    from 03:20 to 04:20 every day; the battery loses 1.5 % of its design a day from day 8."""
    settings = SimSettings(seed=1, noise=False, ups_hat=Ina219Config(), battery_wh=20.0)
    board = SimBoard(settings, clock=FakeClock(start))
    core = MetalCore(board, store=DeviceStore(":memory:"), clock=board.clock)
    await core.start()
    if fade:
        board.add_wear(Wear(WearKind.BATTERY_FADE, 8 * DAY, 1.5))
    sent: list[Point] = []
    for step in range(DAYS * DAY // SAMPLE_S):
        k = step % (DAY // SAMPLE_S)
        if k == 20:
            board.inject_fault(Fault(FaultKind.MAIN_POWER_LOSS))
        if k == 26:
            board.clear_faults(FaultKind.MAIN_POWER_LOSS)
        board.advance(float(SAMPLE_S))
        state = (await core.tick()).to_dict()
        sent.extend(p for p in points(state) if p[0] in READ)
    board.close()
    return sent


async def test_a_simulated_faded_battery_without_health_reporting(world: World) -> None:
    w = world
    today = int(time.time()) // DAY * DAY
    now = float(today + DAY // 2)
    tenant = w.operator.tenant_id
    for board, fade in (("a1", True), ("a2", False)):
        sent = await _simulate(float(today - DAYS * DAY), fade)
        assert "battery_health_pct" not in {m for m, _, _ in sent}
        async with w.db.session() as s:
            device = await s.get(Device, w.ids[board])
            assert device is not None
            for seq, i in enumerate(range(0, len(sent), BATCH), start=1):
                result = await telemetry.ingest_batch(s, device, seq, sent[i : i + BATCH], now=now)
                assert result.stored
    async with w.db.session() as s:
        faded = await wear.device_wear(s, tenant, w.ids["a1"], now)
        healthy = await wear.device_wear(s, tenant, w.ids["a2"], now)
    (found,) = faded.worn
    assert found.kind == "battery_fade"
    assert found.wear_pct > 5.0
    assert found.replace_before is not None
    assert [t.kind for t in healthy.trends] == ["battery_fade"]
    assert healthy.worn == ()
