"""The board's safety loops end to end on the simulator: the clock is advanced, never slept."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from wrale.metal.core.control import BatteryAction, ThermalStatus
from wrale.metal.core.engine import MetalCore
from wrale.metal.core.events import EventType, Severity
from wrale.metal.core.store import DeviceStore
from wrale.metal.hw.base import Fault, FaultKind, PowerSource
from wrale.metal.hw.sim import SimBoard
from wrale.shared.config import GpioLineSettings, SimSettings
from wrale.shared.errors import LockdownError, UnsafeOperationError
from wrale.shared.policy import SecurityLevel, SecurityPolicy


def make_core(board: SimBoard, store: DeviceStore | None = None, **kw: object) -> MetalCore:
    return MetalCore(board, store=store or DeviceStore(":memory:"), clock=board.clock, **kw)  # type: ignore[arg-type]


async def run_for(core: MetalCore, board: SimBoard, seconds: int) -> None:
    for _ in range(seconds):
        board.advance(1.0)
        await core.tick()


async def types_of(core: MetalCore) -> list[EventType]:
    return [e.type for e in await core.events(limit=1000)]


async def test_failed_fan_at_full_load_throttles_and_recovers() -> None:
    board = SimBoard(SimSettings(seed=1))
    core = make_core(board)
    await core.start()
    await run_for(core, board, 300)  # settle at idle on the curve
    idle = core.current()
    assert idle.decision.status is ThermalStatus.NORMAL
    assert 40 <= (idle.thermal.cpu_temp_c or 0) <= 55

    board.sim.set_load(100)
    board.sim.inject_fault(Fault(FaultKind.FAN_FAILURE, {"mode": "stalled"}))
    seen_warning_first = None
    for _ in range(900):
        board.advance(1.0)
        snap = await core.tick()
        if snap.decision.status is ThermalStatus.WARNING and seen_warning_first is None:
            seen_warning_first = True
        if snap.decision.status is ThermalStatus.CRITICAL:
            break
    snap = core.current()
    assert seen_warning_first, "a warning comes before the critical state"
    assert snap.decision.status is ThermalStatus.CRITICAL
    assert snap.decision.fan_pct == 100.0
    assert snap.decision.throttled
    assert board.throttle.read_throttle().max_freq_pct < 100  # applied to the hardware
    assert board.fan.read_fan().duty_pct == pytest.approx(100.0, abs=0.5)
    await run_for(core, board, 600)  # hold there: throttling keeps it below the hard limit
    assert (core.current().thermal.cpu_temp_c or 0) < 90

    kinds = await types_of(core)
    for expected in (
        EventType.THERMAL_WARNING,
        EventType.THERMAL_CRITICAL,
        EventType.THROTTLE_ON,
        EventType.FAN_FAILURE,
    ):
        assert expected in kinds
    assert kinds.index(EventType.THERMAL_WARNING) < kinds.index(EventType.THERMAL_CRITICAL)

    board.sim.clear_faults()
    board.sim.set_load(10)
    await run_for(core, board, 900)
    snap = core.current()
    assert snap.decision.status is ThermalStatus.NORMAL
    assert not snap.decision.throttled
    kinds = await types_of(core)
    assert {EventType.THROTTLE_OFF, EventType.THERMAL_NORMAL, EventType.FAN_RECOVERED} <= set(kinds)


async def test_main_power_loss_fails_over_drains_and_shuts_down() -> None:
    board = SimBoard(SimSettings(seed=2, battery_wh=2.0, load_pct=50))
    core = make_core(board)
    await core.start()
    await run_for(core, board, 5)
    board.sim.inject_fault(Fault(FaultKind.MAIN_POWER_LOSS))
    await run_for(core, board, 3)
    snap = core.current()
    assert snap.power.source is PowerSource.BATTERY
    start_pct = snap.power.battery_pct or 0.0
    start_wh = board.sim.status()["battery_wh"]
    draw_w = snap.power.power_w or 0.0
    await run_for(core, board, 600)
    used_wh = start_wh - board.sim.status()["battery_wh"]
    # the battery drains at the board's draw over the converter's efficiency
    assert used_wh == pytest.approx(draw_w * 600 / 3600 / 0.9, rel=0.15)
    assert (core.current().power.battery_pct or 0) < start_pct

    for _ in range(7200):
        board.advance(1.0)
        snap = await core.tick()
        if snap.battery_action is BatteryAction.SHUTDOWN:
            break
    assert snap.battery_action is BatteryAction.SHUTDOWN
    assert (snap.power.battery_pct or 100) <= 10.0
    assert len(board.shutdown_requests) == 1
    kinds = await types_of(core)
    order = [
        EventType.SOURCE_FAILOVER,
        EventType.BATTERY_LOW,
        EventType.LOAD_SHED,
        EventType.BATTERY_CRITICAL,
        EventType.SHUTDOWN_REQUESTED,
    ]
    assert [k for k in kinds if k in order] == order
    await run_for(core, board, 30)
    assert len(board.shutdown_requests) == 1  # asked once, not every step


async def test_tamper_events_and_lockdown_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "metald.db"
    policy = SecurityPolicy(level=SecurityLevel.HIGH, debounce_s=0)
    board = SimBoard(SimSettings(seed=3))
    core = make_core(board, DeviceStore(db), security=policy)
    await core.start()
    board.sim.inject_fault(Fault(FaultKind.CASE_OPEN))
    await run_for(core, board, 2)
    assert core.current().security.lockdown
    tamper = [e for e in await core.events() if e.type is EventType.TAMPER]
    assert tamper
    assert tamper[0].severity is Severity.CRITICAL
    with pytest.raises(LockdownError):
        await core.set_fan_override(50, 60)
    core.store.close()  # metald stops (or the power goes)

    board2 = SimBoard(SimSettings(seed=3))
    core2 = make_core(board2, DeviceStore(db), security=policy)
    await core2.start()
    kinds = await types_of(core2)
    assert EventType.TAMPER in kinds
    assert EventType.LOCKDOWN in kinds
    assert core2.current().security.lockdown
    with pytest.raises(LockdownError):
        await core2.set_fan_override(50, 60)
    await core2.disarm(authorised=True)
    assert not core2.current().security.lockdown
    await core2.set_fan_override(50, 60)


async def test_override_floor_expiry_and_gpio() -> None:
    lines = {
        "relay": GpioLineSettings(line=17, direction="out", loopback_to="sense"),
        "sense": GpioLineSettings(line=27, direction="in", edge="both"),
    }
    board = SimBoard(SimSettings(seed=4), gpio_lines=lines)
    core = make_core(board, gpio_lines=lines)
    await core.start()
    snap = await core.set_fan_override(0, 30)
    assert snap.decision.fan_pct == 0
    assert snap.decision.override_active
    await run_for(core, board, 31)
    assert core.current().override is None
    assert EventType.FAN_OVERRIDE_ENDED in await types_of(core)

    board.sim.set_load(100)
    board.sim.inject_fault(Fault(FaultKind.FAN_FAILURE, {"mode": "stalled"}))
    while core.current().decision.status is ThermalStatus.NORMAL:
        board.advance(1.0)
        await core.tick()
    with pytest.raises(UnsafeOperationError, match="may not go below"):
        await core.set_fan_override(0, 60)

    state = await core.gpio_write("relay", 1)
    assert state.value == 1
    assert (await core.gpio_read("sense")).value == 1
    await run_for(core, board, 1)
    assert EventType.GPIO_EDGE in await types_of(core)


async def test_lost_cpu_sensor_fails_safe_and_recovers() -> None:
    board = SimBoard(SimSettings(seed=5))
    core = make_core(board)
    await core.start()
    board.sim.inject_fault(Fault(FaultKind.SENSOR_FAILURE, {"sensor": "cpu", "mode": "missing"}))
    await run_for(core, board, 2)
    snap = core.current()
    assert snap.decision.fan_pct == 100
    assert snap.decision.throttled
    assert not snap.available["cpu_temp"]
    board.sim.clear_faults()
    await run_for(core, board, 2)
    kinds = await types_of(core)
    assert kinds.count(EventType.SENSOR_FAILURE) == 1
    assert EventType.SENSOR_RECOVERED in kinds


async def test_subscribers_get_events_after_they_are_stored_and_run_loop_samples() -> None:
    board = SimBoard(SimSettings(seed=6))
    core = MetalCore(board, store=DeviceStore(":memory:"), clock=board.clock, sample_interval_s=1.0)
    stop = asyncio.Event()
    async with core.subscribe() as queue:
        task = asyncio.create_task(core.run(stop))
        first = await asyncio.wait_for(queue.get(), 5)
        assert first.type is EventType.METALD_STARTED
        assert first.id is not None
        snap = await asyncio.wait_for(core.wait_snapshot(10), 5)
        assert snap.seq > 10
        stop.set()
        await asyncio.wait_for(task, 5)
    assert board.clock.monotonic() >= 10  # the loop slept on the board's fake clock


async def test_rapid_samples_never_fake_a_fan_failure_but_a_degraded_fan_is_caught() -> None:
    board = SimBoard(SimSettings(seed=7))
    core = make_core(board)
    await core.start()
    for _ in range(10):  # every API call samples at once: no time passes, the fan spins up
        await core.set_fan_override(80, 600)
    assert EventType.FAN_FAILURE not in await types_of(core)
    await run_for(core, board, 10)
    assert EventType.FAN_FAILURE not in await types_of(core)
    assert not core.current().fan_failed

    board.sim.inject_fault(Fault(FaultKind.FAN_FAILURE, {"mode": "degraded", "rpm_factor": 0.3}))
    await run_for(core, board, 5)
    failures = [e for e in await core.events(limit=1000) if e.type is EventType.FAN_FAILURE]
    assert len(failures) == 1
    assert core.current().fan_failed


async def test_motion_by_day_is_noted_and_by_night_is_a_tamper(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    policy = SecurityPolicy(debounce_s=0, quiet_hours="22:00-06:00")
    board = SimBoard(SimSettings(seed=8))
    now = board.clock.now()
    day = now - now % 86_400 + 14 * 3600 + 86_400  # 14:00 UTC tomorrow
    board.clock.advance(day - now)
    core = make_core(board, security=policy)
    await core.start()
    board.sim.inject_fault(Fault(FaultKind.MOTION, {"duration_s": 5}))
    await run_for(core, board, 2)
    tamper = [e for e in await core.events() if e.type is EventType.TAMPER]
    assert [e.severity for e in tamper] == [Severity.INFO]
    await run_for(core, board, 10)  # the motion ends
    board.clock.advance(9 * 3600)  # 23:00
    board.sim.inject_fault(Fault(FaultKind.MOTION, {"duration_s": 5}))
    await run_for(core, board, 2)
    tamper = [e for e in await core.events() if e.type is EventType.TAMPER]
    assert tamper[-1].severity is Severity.CRITICAL
    assert tamper[-1].data["alert"] is True
