"""The battery's capacity measured across its discharges from hourly aggregates (the
fallback when the battery reports no state of health): runs of hours on battery, energy over
the drop, small drops and a board living on its battery left out."""

from __future__ import annotations

import pytest

from wrale.fleet.brain.decisions.wear import BatteryDay, BoardHistory, battery_trend
from wrale.fleet.brain.decisions.wear_battery import (
    DischargeHour,
    capacity_days,
    discharges,
    measured_soh,
)
from wrale.fleet.brain.decisions.wear_fit import Trend

DAY, H = 86_400.0, 3600.0


def _hour(
    day: int, hour: int, share: float, watts: float, high: float, low: float
) -> DischargeHour:
    return DischargeHour(day * DAY + hour * H, day * DAY, share, watts, high, low)


def test_a_discharge_across_two_hours_is_one_run() -> None:
    hours = [_hour(0, 3, 2 / 3, 6.0, 100, 80), _hour(0, 4, 1 / 3, 6.0, 80, 70)]
    (run,) = discharges(hours)
    assert run.energy_wh == pytest.approx(6.0)
    assert run.drop_pct == 30.0
    ((day, wh),) = capacity_days(hours)
    assert (day, wh) == pytest.approx((0.0, 20.0))


def test_two_discharges_of_a_day_add_up_and_small_drops_are_left_out() -> None:
    hours = [
        _hour(0, 3, 1.0, 4.0, 100, 80),  # 4 Wh for 20 %
        _hour(0, 9, 0.5, 8.0, 95, 75),  # another run: 4 Wh for 20 %
        _hour(1, 3, 0.1, 5.0, 100, 98),  # 2 %: mostly the gauge's rounding
    ]
    ((day, wh),) = capacity_days(hours)
    assert (day, wh) == pytest.approx((0.0, 20.0))


def test_a_board_living_on_its_battery_and_nonsense_are_not_measured() -> None:
    living = [_hour(0, h, 1.0, 5.0, 90, 40) for h in range(30)]  # 30 h in a row
    nonsense = [
        _hour(2, 3, 1.0, float("nan"), 100, 50),
        _hour(3, 3, 1.0, 5.0, 50, 80),  # lowest above highest
        _hour(4, 3, 0.0, 5.0, 100, 50),  # no sample on battery
    ]
    assert capacity_days(living + nonsense) == []


def test_measured_soh_is_a_share_of_the_first_days_and_makes_a_battery_trend() -> None:
    # a 20 Wh battery: 20 % a day of 4 Wh drawn; from day 8 it loses 1 % a day
    hours = []
    for day in range(20):
        capacity = 20.0 * (1 - 0.01 * max(0, day - 8))
        hours.append(_hour(day, 3, 1.0, 4.0, 100, 100 - 100 * 4.0 / capacity))
    soh = measured_soh(hours, baseline_days=5)
    assert soh[0] == pytest.approx((0.0, 1.0))
    assert soh[-1][1] == pytest.approx(0.89)
    history = BoardHistory("d1", battery=[BatteryDay(t, v) for t, v in soh])
    found = battery_trend(history)
    assert isinstance(found, Trend)
    assert found.worn
    assert found.wear_pct > 5.0


def test_a_reported_state_of_health_wins_over_the_measured_one() -> None:
    faded = [BatteryDay(d * DAY, 1.0 - 0.01 * max(0, d - 8)) for d in range(20)]
    steady = [BatteryDay(d * DAY, 0.95) for d in range(20)]
    found = battery_trend(BoardHistory("d1", battery=faded, battery_health=steady))
    assert found is not None
    assert not found.worn
    assert found.baseline == pytest.approx(0.95)
