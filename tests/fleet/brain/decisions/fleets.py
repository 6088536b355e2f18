"""Hypothesis strategies for fleet views: boards of every state (offline, SAFE, lockdown, on
battery, stale, hot, fan failed), racks with and without budgets, placements and jobs."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import strategies as st

from wrale.fleet.brain.decisions.view import (
    BoardView,
    FleetView,
    JobSpec,
    PlacementView,
    RackView,
    Source,
)

RACKS = ("r0", "r1", "r2")
JOB_IDS = ("ja", "jb", "jc")
RARELY = (False, False, False, True)
MOSTLY = (True, True, True, False)


@st.composite
def placements(draw: st.DrawFn, device: str) -> tuple[PlacementView, ...]:
    out: list[PlacementView] = []
    room = 100.0
    for k in range(draw(st.integers(0, 3))):
        cpu = draw(st.sampled_from([10.0, 25.0, 50.0]))
        if cpu > room:
            break
        room -= cpu
        out.append(
            PlacementView(
                f"{device}-p{k}",
                draw(st.sampled_from(JOB_IDS)),
                priority=draw(st.integers(0, 100)),
                cpu_pct=cpu,
                restartable=draw(st.booleans()),
            )
        )
    return tuple(out)


@st.composite
def boards(draw: st.DrawFn, i: int) -> BoardView:
    """Half of them healthy (fresh, on mains, cool), so that work has somewhere to go."""
    dev = f"d{i:02d}"
    board = BoardView(
        dev,
        rack_id=draw(st.one_of(st.none(), st.sampled_from(RACKS))),
        room_id="room",
        online=draw(st.sampled_from(MOSTLY)),
        mode=draw(st.sampled_from(["normal", "normal", "safe"])),
        lockdown=draw(st.sampled_from(RARELY)),
        cpu_temp_c=draw(st.one_of(st.none(), st.floats(30.0, 90.0))),
        temp_trend_c_per_min=draw(st.one_of(st.none(), st.floats(-5.0, 8.0))),
        ambient_c=draw(st.one_of(st.none(), st.floats(15.0, 45.0))),
        ambient_trend_c_per_min=draw(st.one_of(st.none(), st.floats(-1.0, 3.0))),
        fan_duty_pct=draw(st.one_of(st.none(), st.floats(0.0, 100.0))),
        fan_failed=draw(st.sampled_from(RARELY)),
        power_w=draw(st.one_of(st.none(), st.floats(2.5, 7.5))),
        power_source=draw(st.one_of(st.none(), st.sampled_from(list(Source)))),
        battery_pct=draw(st.one_of(st.none(), st.floats(0.0, 100.0))),
        throttled=draw(st.sampled_from(RARELY)),
        reading_age_s=draw(st.one_of(st.none(), st.floats(0.0, 200.0))),
        placements=draw(placements(dev)),
    )
    if draw(st.booleans()):
        board = replace(
            board,
            online=True,
            mode="normal",
            lockdown=False,
            cpu_temp_c=draw(st.floats(35.0, 60.0)),
            temp_trend_c_per_min=draw(st.floats(-1.0, 1.0)),
            ambient_c=draw(st.floats(18.0, 30.0)),
            ambient_trend_c_per_min=0.0,
            fan_failed=False,
            throttled=False,
            power_w=draw(st.floats(2.7, 5.0)),
            power_source=Source.MAIN,
            reading_age_s=draw(st.floats(0.0, 30.0)),
        )
    return board


@st.composite
def fleets(draw: st.DrawFn, now: float = 0.0) -> FleetView:
    n = draw(st.integers(0, 14))
    racks = tuple(
        RackView(r, budget_w=draw(st.one_of(st.none(), st.floats(10.0, 90.0)))) for r in RACKS
    )
    jobs = tuple(
        JobSpec(
            j,
            priority=draw(st.integers(0, 100)),
            max_per_rack=draw(st.one_of(st.none(), st.integers(1, 3))),
            allow_battery=draw(st.booleans()),
        )
        for j in JOB_IDS
    )
    return FleetView(tuple(draw(boards(i)) for i in range(n)), racks, jobs, now=now)


@st.composite
def jobs(draw: st.DrawFn) -> JobSpec:
    return JobSpec(
        "jnew",
        priority=draw(st.integers(0, 100)),
        replicas=draw(st.integers(1, 8)),
        cpu_pct=draw(st.sampled_from([10.0, 25.0, 50.0, 100.0])),
        watts=draw(st.one_of(st.none(), st.floats(0.5, 5.0))),
        max_per_rack=draw(st.one_of(st.none(), st.integers(1, 3))),
        allow_battery=draw(st.booleans()),
        strategy=draw(st.sampled_from(["physical", "spread"])),
    )
