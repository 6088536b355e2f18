"""Policy documents: the fan floor and the quiet hours, as the fleet sends them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wrale.shared.policy import SecurityPolicy, ThermalPolicy, in_quiet_hours


def test_min_fan_pct_is_a_percentage() -> None:
    assert ThermalPolicy().min_fan_pct == 0.0
    assert ThermalPolicy(min_fan_pct=40).min_fan_pct == 40.0
    for bad in (-1, 101):
        with pytest.raises(ValueError, match="min_fan_pct"):
            ThermalPolicy(min_fan_pct=bad)


@pytest.mark.parametrize(
    "bad", ["22-06", "22:00", "24:00-06:00", "22:60-06:00", "7:00-9:00", "22:00-22:00", " "]
)
def test_malformed_quiet_hours_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="quiet_hours"):
        SecurityPolicy(quiet_hours=bad)


def test_quiet_hours_wrap_midnight() -> None:
    night = SecurityPolicy(quiet_hours="22:00-06:00")
    assert in_quiet_hours(night, 23, 0)
    assert in_quiet_hours(night, 22, 0)  # start included
    assert in_quiet_hours(night, 0, 30)
    assert in_quiet_hours(night, 5, 59)
    assert not in_quiet_hours(night, 6, 0)  # end excluded
    assert not in_quiet_hours(night, 14, 0)
    day = SecurityPolicy(quiet_hours="09:30-17:00")
    assert in_quiet_hours(day, 9, 30)
    assert not in_quiet_hours(day, 9, 29)
    assert not in_quiet_hours(day, 23, 0)
    assert not in_quiet_hours(SecurityPolicy(), 23, 0)


@given(
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 23),
    st.integers(0, 59),
)
def test_quiet_hours_and_their_complement_cover_the_day_once(
    h1: int, m1: int, h2: int, m2: int, hour: int, minute: int
) -> None:
    if (h1, m1) == (h2, m2):
        return
    there = SecurityPolicy(quiet_hours=f"{h1:02d}:{m1:02d}-{h2:02d}:{m2:02d}")
    back = SecurityPolicy(quiet_hours=f"{h2:02d}:{m2:02d}-{h1:02d}:{m1:02d}")
    assert in_quiet_hours(there, hour, minute) != in_quiet_hours(back, hour, minute)


def test_the_fleet_checks_the_new_fields_one_by_one() -> None:
    """The central server validates each field of a partial document alone, without the
    model's validators; the quiet-hours format must live in the field's type."""
    from wrale.fleet.brain.services.policies import check_document
    from wrale.shared.errors import InvalidRequestError

    assert check_document("thermal", {"min_fan_pct": 30}) == {"min_fan_pct": 30.0}
    assert check_document("security", {"quiet_hours": "22:00-06:00"}) == {
        "quiet_hours": "22:00-06:00"
    }
    assert check_document("security", {"quiet_hours": None}) == {"quiet_hours": None}
    with pytest.raises(InvalidRequestError, match="HH:MM-HH:MM"):
        check_document("security", {"quiet_hours": "25:00-06:00"})
    with pytest.raises(InvalidRequestError, match="min_fan_pct"):
        check_document("thermal", {"min_fan_pct": 120})
