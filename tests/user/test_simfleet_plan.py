"""The fleet plan (pure): where each simulated board sits, what it is, how it is loaded."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wrale.user.simfleet.plan import (
    CM4_SOLAR,
    Layout,
    LoadPattern,
    plan_fleet,
    racks_by_room,
    room_label,
)


def test_the_demo_layout_is_24_boards_in_3_racks_across_2_rooms() -> None:
    specs = plan_fleet(24, prefix="demo", layout=Layout(boards_per_rack=8, racks_per_room=2))
    assert racks_by_room(specs) == {"A": ["A1", "A2"], "B": ["B1"]}
    assert [s.name for s in specs[:2]] == ["demo-a1-u04", "demo-a1-u05"]
    assert len({s.name for s in specs}) == 24
    slots = {(s.rack, s.slot_u) for s in specs}
    assert len(slots) == 24  # one board per slot
    assert all(4 <= s.slot_u <= 11 for s in specs)


def test_the_same_seed_gives_the_same_fleet_and_another_seed_another() -> None:
    assert plan_fleet(40, seed=3) == plan_fleet(40, seed=3)
    assert [s.load for s in plan_fleet(40, seed=3)] != [s.load for s in plan_fleet(40, seed=4)]


def test_hardware_is_mixed_and_ambient_follows_room_rack_and_height() -> None:
    specs = plan_fleet(64, layout=Layout(boards_per_rack=16, racks_per_room=2))
    assert len({s.hardware.key for s in specs}) >= 3
    solar = [s for s in specs if s.hardware is CM4_SOLAR]
    assert solar
    assert all(s.sim_settings().solar_peak_w > 0 for s in solar)
    assert all("solar" in s.hardware.capabilities for s in solar)

    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs)

    a1 = [s.ambient_c for s in specs if s.rack == "A1"]
    a2 = [s.ambient_c for s in specs if s.rack == "A2"]
    assert mean(a2) > mean(a1)  # further down the row, warmer air
    low = [s.ambient_c for s in specs if s.rack == "A1" and s.slot_u < 8]
    high = [s.ambient_c for s in specs if s.rack == "A1" and s.slot_u >= 16]
    assert mean(high) > mean(low)  # warm air rises


def test_sim_settings_carry_the_board_kind_and_its_conditions() -> None:
    spec = plan_fleet(8)[7]
    sim = spec.sim_settings(noise=False)
    assert sim.model == spec.hardware.model
    assert sim.battery_wh == spec.hardware.battery_wh
    assert sim.ambient_c == spec.ambient_c
    assert sim.load_pct == spec.load.at(0.0)
    assert sim.seed == spec.seed
    assert sim.noise is False
    assert sim.ambient_sensor is spec.hardware.ambient_sensor


def test_most_boards_in_every_rack_read_the_room() -> None:
    specs = plan_fleet(24)
    for rack in {s.rack for s in specs}:
        fitted = [s.sim_settings().ambient_sensor for s in specs if s.rack == rack]
        assert sum(fitted) > len(fitted) / 2
    assert not all(s.sim_settings().ambient_sensor for s in specs)  # and some do not


def test_room_labels_go_past_z() -> None:
    assert [room_label(i) for i in (0, 1, 25, 26)] == ["A", "B", "Z", "R27"]


def test_a_rack_that_cannot_hold_the_boards_is_refused() -> None:
    with pytest.raises(ValueError, match="fit"):
        plan_fleet(1, layout=Layout(boards_per_rack=40, first_slot_u=4, rack_units=42))


@given(
    base=st.floats(0, 100),
    swing=st.floats(0, 100),
    period=st.floats(1, 1e5),
    phase=st.floats(0, 1e5),
    t=st.floats(0, 1e7),
)
def test_load_stays_a_percentage(
    base: float, swing: float, period: float, phase: float, t: float
) -> None:
    assert 0.0 <= LoadPattern(base, swing, period, phase).at(t) <= 100.0
