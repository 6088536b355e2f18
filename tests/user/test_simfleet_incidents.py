"""The demo's incidents: the schedule picks sensible targets (pure), and executing it on a
real simulated fleet makes the physics happen — the fan dies and the board throttles, the
room runs on batteries and main power returns, the case opens. Time is a FakeClock."""

from __future__ import annotations

from pathlib import Path

import pytest

from wrale.metal.hw.base import FaultKind, PowerSource
from wrale.shared.clock import FakeClock
from wrale.user.simfleet.fleet import SimFleet
from wrale.user.simfleet.incidents import Step, apply_step, demo_schedule, run_schedule
from wrale.user.simfleet.plan import Layout, plan_fleet

DEMO = Layout(boards_per_rack=8, racks_per_room=2)


def test_the_schedule_covers_the_four_incidents_over_the_first_minutes() -> None:
    specs = plan_fleet(24, prefix="demo", layout=DEMO)
    steps = demo_schedule(specs)
    kinds = {s.fault.kind for s in steps if s.fault is not None}
    assert kinds == {
        FaultKind.FAN_FAILURE,
        FaultKind.AMBIENT_CHANGE,
        FaultKind.MAIN_POWER_LOSS,
        FaultKind.CASE_OPEN,
    }
    times = [s.at_s for s in steps]
    assert times == sorted(times)
    assert times[0] > 0
    assert times[-1] <= 300
    by_kind = {s.fault.kind: s for s in steps if s.fault is not None}
    rack_of = {s.name: s.rack for s in specs}
    room_of = {s.name: s.room for s in specs}
    heat = by_kind[FaultKind.AMBIENT_CHANGE]
    assert len({rack_of[b] for b in heat.boards}) == 1  # one rack
    assert len(heat.boards) == 8
    dark = by_kind[FaultKind.MAIN_POWER_LOSS]
    assert {room_of[b] for b in dark.boards} == {"B"}  # one whole room
    assert len(dark.boards) == 8
    assert len(by_kind[FaultKind.FAN_FAILURE].boards) == 1
    fan_board = by_kind[FaultKind.FAN_FAILURE].boards[0]
    assert any(s.clear is FaultKind.FAN_FAILURE and s.boards == (fan_board,) for s in steps)


def test_small_fleets_still_get_a_schedule() -> None:
    assert demo_schedule([]) == []
    steps = demo_schedule(plan_fleet(1))
    assert {b for s in steps for b in s.boards} == {plan_fleet(1)[0].name}


@pytest.fixture
async def fleet(tmp_path: Path) -> SimFleet:
    clock = FakeClock()  # the boards' physics and their cores' sampling on one fake time
    f = SimFleet.planned(
        24, tmp_path / "fleet", prefix="demo", seed=0, layout=DEMO, clock=clock, board_clock=clock
    )
    await f.start()
    yield f  # type: ignore[misc]
    await f.close()


async def advance(fleet: SimFleet, seconds: float, step_s: float = 5.0) -> None:
    clock = fleet.board_clock
    assert isinstance(clock, FakeClock)
    t = 0.0
    while t < seconds:
        clock.advance(step_s)
        t += step_s
        for dev in fleet.devices.values():
            await dev.core.tick()


async def test_executing_the_schedule_drives_the_physics(fleet: SimFleet) -> None:
    steps = {s.title: s for s in demo_schedule(fleet.specs)}
    by_kind = {s.fault.kind: s for s in steps.values() if s.fault is not None}

    busy = next(s for s in steps.values() if s.load_pct is not None)
    assert apply_step(busy, fleet) == 1
    fan = by_kind[FaultKind.FAN_FAILURE]
    assert apply_step(fan, fleet) == 1
    dark = by_kind[FaultKind.MAIN_POWER_LOSS]
    assert apply_step(dark, fleet) == 8
    case = by_kind[FaultKind.CASE_OPEN]
    assert apply_step(case, fleet) == 1
    await advance(fleet, 25)

    hot = fleet.devices[fan.boards[0]].core.current()
    assert hot.fan.rpm is not None
    assert hot.fan.rpm < 300
    assert hot.fan_failed  # and the core has noticed
    on_battery = [fleet.devices[b].core.current().power.source for b in dark.boards]
    assert set(on_battery) == {PowerSource.BATTERY}
    assert fleet.devices[case.boards[0]].core.current().tamper.case_open

    await advance(fleet, 300)  # past the outage, the case closed again
    throttled = fleet.devices[fan.boards[0]].core.current()
    assert throttled.decision.max_freq_pct < 100.0  # a busy board with a dead fan throttles
    assert {fleet.devices[b].core.current().power.source for b in dark.boards} == {PowerSource.MAIN}
    assert not fleet.devices[case.boards[0]].core.current().tamper.case_open

    repaired = next(s for s in steps.values() if s.clear is FaultKind.FAN_FAILURE)
    assert apply_step(repaired, fleet) == 1
    assert fleet.devices[fan.boards[0]].pinned_load is None
    assert fleet.devices[fan.boards[0]].sim.active_faults() == []


async def test_durations_are_scaled_to_the_boards_time(fleet: SimFleet) -> None:
    name = fleet.specs[0].name
    step = Step(0, "outage", (name,), fault=demo_schedule(fleet.specs)[3].fault)
    assert step.fault is not None
    assert step.fault.duration_s == 120.0
    apply_step(step, fleet, speed=10)
    (fault,) = fleet.devices[name].sim.active_faults()
    assert fault.duration_s == 1200.0


async def test_a_step_on_an_unknown_or_unable_board_is_skipped(fleet: SimFleet) -> None:
    assert apply_step(Step(0, "ghost", ("no-such-board",), load_pct=50.0), fleet) == 0
    bad = Step(0, "too hot", (fleet.specs[0].name,), fault=None, load_pct=150.0)
    assert apply_step(bad, fleet) == 0  # the board refuses a load above 100 %


async def test_run_schedule_runs_in_order_and_stops_when_told(fleet: SimFleet) -> None:
    clock = FakeClock()
    names = [s.name for s in fleet.specs]
    steps = [
        Step(30, "second", (names[1],), load_pct=20.0),
        Step(10, "first", (names[0],), load_pct=10.0),
    ]
    seen: list[tuple[str, float]] = []
    ran = await run_schedule(
        steps, fleet, clock, on_step=lambda s, n: seen.append((s.title, clock.monotonic()))
    )
    assert ran == 2
    assert [t for t, _ in seen] == ["first", "second"]
    assert seen[0][1] >= 10
    assert seen[1][1] >= 30
    assert fleet.devices[names[1]].pinned_load == 20.0

    stopped = await run_schedule(steps, fleet, clock, is_stopped=lambda: True)
    assert stopped == 0
