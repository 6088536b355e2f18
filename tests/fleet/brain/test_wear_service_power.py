"""The battery and the power on both databases: a battery that reports no state of health
followed through the capacity measured across its daily discharges (a faded one worn, a
healthy one not, a reported state of health preferred), and under-voltage from a simulated
board's sag through metald's state, the edge telemetry and the store, counted per day."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.fleet.brain.jobs_kit import World, make_world
from tests.fleet.brain.wear_kit import DAY, DAYS, battery_day, faded_battery, store_samples
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.services import telemetry
from wrale.fleet.brain.services.maintenance import wear
from wrale.fleet.edge.telemetry import points
from wrale.metal.core.engine import MetalCore
from wrale.metal.core.store import DeviceStore
from wrale.metal.hw.base import Fault, FaultKind
from wrale.metal.hw.sim import SimBoard
from wrale.shared.clock import FakeClock
from wrale.shared.config import SimSettings


def _now() -> float:
    """Noon today: the service's days (from now back) then hold whole synthetic days."""
    return float(int(time.time()) // DAY * DAY + DAY // 2)


@pytest.fixture
async def world(database: Database) -> World:
    return await make_world(database)


async def test_battery_fade_measured_across_discharges(world: World) -> None:
    w, now = world, _now()
    await faded_battery(w.db, w.ids["a1"])
    await faded_battery(w.db, w.ids["a2"], fade_from=None)
    await faded_battery(w.db, w.ids["b1"])  # its gauge also reports a steady health:
    steady = {d: {4: {"battery_health_pct": [96.0, 96.0]}} for d in range(DAYS)}
    await store_samples(w.db, w.ids["b1"], steady)
    tenant = w.operator.tenant_id
    async with w.db.session() as s:
        got = {b: await wear.device_wear(s, tenant, w.ids[b], now) for b in ("a1", "a2", "b1")}
        q = await wear.queue(s, tenant, now)
    (faded,) = got["a1"].worn
    assert faded.kind == "battery_fade"
    assert faded.baseline == pytest.approx(1.0)  # a share of its first days' capacity
    assert faded.wear_pct > 5.0
    assert faded.replace_before is not None
    assert len(faded.points) == DAYS
    assert [t.kind for t in got["a2"].trends] == ["battery_fade"]
    assert got["a2"].worn == ()
    (reported,) = got["b1"].trends  # the reported state of health, never the two mixed
    assert not reported.worn
    assert reported.baseline == pytest.approx(0.96)
    parts = {b.device_id: [t.kind for t in b.worn] for v in q.visits for b in v.boards}
    assert parts == {w.ids["a1"]: ["battery_fade"]}


async def test_days_without_a_discharge_make_no_battery_trend(world: World) -> None:
    w, now = world, _now()
    no_test = {
        d: {
            h: {k: [v if k != "on_battery" else 0.0 for v in vs] for k, vs in m.items()}
            for h, m in battery_day(d, None).items()
        }
        for d in range(DAYS)
    }
    await store_samples(w.db, w.ids["a1"], no_test)
    async with w.db.session() as s:
        got = await wear.device_wear(s, w.operator.tenant_id, w.ids["a1"], now)
    assert got.trends == ()


async def test_a_simulated_sag_is_counted_per_day(world: World) -> None:
    """Six days of a simulated board sampled every 6 h; a sag on day 1 comes and goes
    between two samples (the latch tells it), on day 4 a sample sees it (now)."""
    w, now = world, _now()
    start = now - 6 * DAY
    board = SimBoard(SimSettings(seed=1, noise=False), clock=FakeClock(start))
    core = MetalCore(board, store=DeviceStore(":memory:"), clock=board.clock)
    await core.start()
    sent: list[tuple[str, float, float]] = []
    previous: dict[str, Any] | None = None
    seen = []
    for step in range(6 * 4):
        day = step // 4
        if step % 4 == 1 and day in (1, 4):
            board.inject_fault(Fault(FaultKind.VOLTAGE_SAG, {"voltage_v": 4.5}))
            board.advance(1.0)
            await core.tick()
            if day == 1:
                board.clear_faults(FaultKind.VOLTAGE_SAG)
        board.advance(1.0)
        state = (await core.tick()).to_dict()
        found = points(state, previous)
        sent.extend(found)
        seen.append({m: v for m, _, v in found}["under_voltage"])
        previous = state
        board.clear_faults(FaultKind.VOLTAGE_SAG)
        board.advance(6 * 3600.0 - 2.0)
    assert [i for i, v in enumerate(seen) if v] == [5, 17]  # days 1 and 4, once each
    device_id = w.ids["a1"]
    async with w.db.session() as s:
        device = await s.get(Device, device_id)
        assert device is not None
        result = await telemetry.ingest_batch(s, device, 1, sent, now=now)
        assert result.stored
    async with w.db.session() as s:
        got = await wear.device_wear(s, w.operator.tenant_id, device_id, now)
    assert got.under_voltage_days == 2
    assert got.throttled_days == 0
