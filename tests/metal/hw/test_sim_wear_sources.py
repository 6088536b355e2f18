"""The simulator's slow faults seen as the board reports them: battery fade as the gauge's
state of health (``battery_health_pct``), eMMC wear as the kernel's ``life_time`` band and
``pre_eol_info``; through metald's state into the edge agent's telemetry points."""

from __future__ import annotations

import pytest

from tests.metal.core.server_harness import running_metald
from wrale.fleet.edge.telemetry import points
from wrale.metal.hw.base import Fault, FaultKind, StorageReading
from wrale.metal.hw.sim import SimBoard
from wrale.metal.hw.sim.wear import DAY_S, Wear, WearKind, emmc_reading, wear_at
from wrale.shared.config import SimSettings


def _board(**kw: object) -> SimBoard:
    settings = SimSettings(noise=False, active_cooler=True, **kw)  # type: ignore[arg-type]
    return SimBoard(settings)


def test_battery_fade_is_reported_as_state_of_health() -> None:
    board = _board(battery_wh=20.0)
    assert board.power.read_power().battery_health_pct == 100.0
    board.add_wear(Wear(WearKind.BATTERY_FADE, -10 * DAY_S, 1.0))
    board.advance(1.0)
    assert board.power.read_power().battery_health_pct == pytest.approx(90.0)
    assert _board(battery_wh=0.0).power.read_power().battery_health_pct is None


@pytest.mark.parametrize(
    ("used", "reading"),
    [
        (None, StorageReading()),
        (0.0, StorageReading(10.0, 1)),
        (9.99, StorageReading(10.0, 1)),
        (10.0, StorageReading(20.0, 1)),
        (79.9, StorageReading(80.0, 1)),
        (80.0, StorageReading(90.0, 2)),
        (90.0, StorageReading(100.0, 3)),
        (150.0, StorageReading(100.0, 3)),
    ],
)
def test_emmc_bands_as_the_kernel_shows_them(used: float | None, reading: StorageReading) -> None:
    assert emmc_reading(used) == reading


def test_emmc_wear_grows_from_its_onset_and_ends_when_cleared() -> None:
    wears = [Wear(WearKind.EMMC_WEAR, 2 * DAY_S, 5.0)]
    assert wear_at([], 10 * DAY_S).emmc_used_pct is None  # no eMMC: an SD card
    assert wear_at(wears, DAY_S).emmc_used_pct == 0.0
    assert wear_at(wears, 12 * DAY_S).emmc_used_pct == pytest.approx(50.0)
    board = _board()
    assert board.storage.read_storage() == StorageReading()
    board.inject_fault(Fault(FaultKind.EMMC_WEAR, {"rate_pct_per_day": 10.0}))
    board.advance(8.5 * DAY_S)
    assert board.storage.read_storage() == StorageReading(90.0, 2)  # 85 % used
    assert board.clear_faults(FaultKind.EMMC_WEAR) == 1
    assert board.storage.read_storage() == StorageReading()


async def test_wear_metrics_reach_the_edge_telemetry() -> None:
    async with running_metald() as m:
        c = m.client()
        r = await c.post("/v1/sim/faults", json={"fault": "emmc_wear", "rate_pct_per_day": 4})
        assert r.status_code == 200, r.text
        r = await c.post("/v1/sim/faults", json={"fault": "battery_fade", "rate_pct_per_day": 1})
        assert r.status_code == 200, r.text
        m.board.advance(10 * DAY_S)
        await m.run_for(1.0)
        state = (await c.get("/v1/state")).json()
        assert state["storage"] == {"emmc_life_used_pct": 50.0, "emmc_pre_eol": 1}
        assert state["power"]["battery_health_pct"] == pytest.approx(90.0)
        got = {metric: value for metric, _ts, value in points(state)}
        assert got["emmc_life_used_pct"] == 50.0
        assert got["emmc_pre_eol"] == 1.0
        assert got["battery_health_pct"] == pytest.approx(90.0)
