"""Balancing: whatever the fleet does over time, at most M moves a minute fleet-wide, never a
non-restartable placement, never the same placement twice within its cool-down; and the
examples: heat predicted from the trend, a failed fan, a board on battery."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fleet.brain.decisions.fleets import fleets
from wrale.fleet.brain.decisions.balancing import (
    BalancingPolicy,
    BalancingState,
    Evict,
    Move,
    balance,
)
from wrale.fleet.brain.decisions.view import (
    BoardView,
    FleetView,
    JobSpec,
    PlacementView,
    RackView,
    Source,
)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.0, 40.0), fleets()), min_size=1, max_size=8),
    st.integers(1, 5),
)
def test_moves_are_rate_limited_restartable_and_not_flapping(
    steps: list[tuple[float, FleetView]], max_moves: int
) -> None:
    policy = BalancingPolicy(max_moves_per_min=max_moves)
    state = BalancingState()
    now = 0.0
    history: list[float] = []
    last_move: dict[str, float] = {}
    for dt, fleet in steps:
        now += dt
        view = replace(fleet, now=now)
        actions, state = balance(view, state, policy)
        for a in actions:
            source = view.board(a.from_device if isinstance(a, Move) else a.device_id)
            assert source is not None
            p = next(p for p in source.placements if p.id == a.placement_id)
            assert p.restartable, "a non-restartable placement never moves"
            assert a.reason
            if p.id in last_move:
                assert now - last_move[p.id] >= policy.placement_cooldown_s
            last_move[p.id] = now
            if isinstance(a, Move):
                dest = view.board(a.to_device)
                assert dest is not None
                assert dest.device_id != source.device_id
                assert dest.online
                assert not dest.fan_failed
                assert not dest.lockdown
            else:
                assert source.fan_failed or source.on_battery, "only an evacuation evicts"
            history.append(now)
        assert sum(1 for t in history if now - t < 60.0) <= max_moves


def pi(dev: str, rack: str, temp: float, **kw: Any) -> BoardView:
    base = BoardView(
        dev,
        rack_id=rack,
        cpu_temp_c=temp,
        temp_trend_c_per_min=0.0,
        ambient_c=25.0,
        ambient_trend_c_per_min=0.0,
        fan_duty_pct=40.0,
        power_w=5.0,
        power_source=Source.MAIN,
        reading_age_s=2.0,
    )
    return replace(base, **kw)


def job(pid: str, job_id: str = "j", cpu: float = 25.0, **kw: Any) -> PlacementView:
    return PlacementView(pid, job_id, cpu_pct=cpu, **kw)


def test_a_board_heading_for_throttling_sheds_before_it_throttles() -> None:
    warming = pi(
        "warm",
        "A",
        70.0,
        temp_trend_c_per_min=2.5,
        ambient_c=35.0,
        ambient_trend_c_per_min=2.0,
        placements=(job("big", cpu=50.0), job("small", "k", cpu=10.0)),
    )
    view = FleetView((warming, pi("cool", "B", 45.0)), (RackView("A"), RackView("B")), now=100.0)
    actions, state = balance(view)
    assert len(actions) == 1
    (move,) = actions
    assert isinstance(move, Move)
    assert (move.placement_id, move.to_device) == ("big", "cool"), "the biggest heater first"
    assert "heading for throttling" in move.reason
    assert move.inputs["predicted_c"] is not None
    assert state.shed_at == {"warm": 100.0}
    # the next period the same placement does not come back, and "warm" takes nothing
    back = replace(view, now=110.0)
    again, _ = balance(back, state)
    assert all(a.placement_id != "big" for a in again)


def test_a_failed_fan_evacuates_everything_restartable() -> None:
    dead_fan = pi(
        "dead",
        "A",
        60.0,
        fan_failed=True,
        placements=(job("a"), job("b", "k"), job("pinned", "m", restartable=False)),
    )
    view = FleetView((dead_fan, pi("x", "A", 45.0), pi("y", "B", 45.0)), now=0.0)
    actions, _ = balance(view)
    assert sorted(a.placement_id for a in actions) == ["a", "b"]
    assert all(isinstance(a, Move) and "fan failed" in a.reason for a in actions)


def test_on_battery_without_room_elsewhere_goes_back_to_pending() -> None:
    full = job("f", "other", cpu=100.0)
    ups = pi("ups", "A", 50.0, power_source=Source.BATTERY, battery_pct=80.0)
    view = FleetView(
        (replace(ups, placements=(job("a"),)), pi("busy", "B", 45.0, placements=(full,))),
        jobs=(JobSpec("j"),),
    )
    actions, _ = balance(view)
    assert len(actions) == 1
    assert isinstance(actions[0], Evict)
    assert "back to pending" in actions[0].reason


def test_a_job_allowed_on_battery_stays() -> None:
    view = FleetView(
        (
            pi("ups", "A", 50.0, power_source=Source.BATTERY, placements=(job("a"),)),
            pi("x", "B", 45.0),
        ),
        jobs=(JobSpec("j", allow_battery=True),),
    )
    assert balance(view)[0] == []


def test_a_warm_board_without_a_destination_keeps_its_work() -> None:
    hot = pi("hot", "A", 81.0, throttled=True, placements=(job("a"),))
    view = FleetView((hot, pi("also", "A", 79.0, throttled=True)))
    assert balance(view)[0] == []


def test_at_most_m_moves_per_minute() -> None:
    four = tuple(job(f"p{i}", f"j{i}") for i in range(4))
    dead = pi("dead", "A", 50.0, fan_failed=True, placements=four)
    spare = tuple(pi(f"s{i}", "B", 40.0) for i in range(4))
    view = FleetView((dead, *spare), now=0.0)
    policy = BalancingPolicy(max_moves_per_min=3)
    actions, state = balance(view, BalancingState(), policy)
    assert len(actions) == 3
    assert balance(replace(view, now=30.0), state, policy)[0] == []
    later, _ = balance(replace(view, now=61.0), state, policy)
    assert [a.placement_id for a in later] == ["p3"]
