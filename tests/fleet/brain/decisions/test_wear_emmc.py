"""Wear from what a board reports of itself (pure): an eMMC's life used and pre-EOL level
(worn at 80 % used or a pre-EOL warning, replace before the line reaches 100 %, now when
urgent), and the battery's reported state of health preferred to the capacity measured
across discharges, never mixed with it."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wrale.fleet.brain.decisions.analysis import DAY_S
from wrale.fleet.brain.decisions.wear import (
    BATTERY_FADE,
    EMMC,
    BatteryDay,
    BoardHistory,
    EmmcDay,
    board_wear,
    maintenance_queue,
)
from wrale.fleet.brain.decisions.wear_emmc import emmc_trend


def _emmc(used: list[float], pre_eol: int | None = 1) -> list[EmmcDay]:
    return [EmmcDay(d * DAY_S, u, pre_eol) for d, u in enumerate(used)]


def test_a_healthy_emmc_is_followed_and_not_flagged() -> None:
    t = emmc_trend("e", _emmc([20.0] * 10 + [30.0] * 10))
    assert t is not None
    assert t.kind == EMMC
    assert not t.worn
    assert (t.baseline, t.wear_pct) == (20.0, 30.0)
    assert t.replace_before is None
    json.dumps(t.evidence())


def test_worn_at_80_pct_used_with_the_date_where_the_line_reaches_100() -> None:
    # one band (10 %) every 5 days: 2 %/day; the last day reads 80 (the 70-80 % band)
    used = [10.0 * (1 + d // 5) for d in range(40)]
    t = emmc_trend("e", _emmc(used))
    assert t is not None
    assert t.worn
    assert t.slope_pct_per_day == pytest.approx(2.0, abs=0.1)
    assert t.replace_before is not None
    days = (t.replace_before - 39 * DAY_S) / DAY_S
    assert 8 <= days <= 12  # about 20 % left at 2 %/day
    assert t.replace_earliest is not None
    assert t.replace_earliest <= t.replace_before
    assert t.replace_latest is None or t.replace_latest >= t.replace_before


def test_pre_eol_warning_flags_and_urgent_means_now() -> None:
    warned = emmc_trend("e", _emmc([40.0] * 10, pre_eol=2))
    assert warned is not None
    assert warned.worn
    assert warned.replace_before is None  # worn, but the life used does not move
    urgent = emmc_trend("e", _emmc([40.0] * 10, pre_eol=3))
    assert urgent is not None
    assert urgent.worn
    assert urgent.replace_before == urgent.replace_earliest == 9 * DAY_S


def test_no_usable_day_no_emmc_trend() -> None:
    assert emmc_trend("e", []) is None
    assert emmc_trend("e", [EmmcDay(0.0, math.nan), EmmcDay(DAY_S, 140.0)]) is None


def test_the_queue_carries_a_worn_emmc() -> None:
    worn = BoardHistory("w", "s", "r1", emmc=_emmc([90.0] * 3, pre_eol=2))
    fine = BoardHistory("f", "s", "r2", emmc=_emmc([10.0] * 3))
    (visit,) = maintenance_queue([worn, fine])
    assert visit.rack == "r1"
    assert [t.kind for t in visit.boards[0].worn] == [EMMC]


def _soh(rate_pct: float, onset: int, noise: float = 0.0, days: int = 30) -> list[BatteryDay]:
    return [
        BatteryDay(d * DAY_S, 1 - rate_pct / 100 * max(0, d - onset) + noise * (d % 3 - 1))
        for d in range(days)
    ]


def test_the_reported_state_of_health_is_preferred() -> None:
    # the gauge shows the fade; the discharge estimate (noisy, flat) would not
    h = BoardHistory("b", battery_health=_soh(0.8, 10), battery=_soh(0.0, 0, noise=0.02))
    (t,) = board_wear(h).worn
    assert t.kind == BATTERY_FADE
    assert t.baseline == pytest.approx(1.0)
    # too few reported days for a trend: the estimate is used, not mixed with them
    h = BoardHistory("b", battery_health=_soh(0.0, 0, days=3), battery=_soh(0.8, 10))
    (t,) = board_wear(h).worn
    assert len(t.points) == 30


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(allow_nan=True, allow_infinity=True),
            st.floats(allow_nan=True, allow_infinity=True),
            st.one_of(st.none(), st.integers(-5, 9)),
        ),
        max_size=30,
    )
)
def test_hostile_emmc_numbers_never_break_it(
    rows: list[tuple[float, float, int | None]],
) -> None:
    t = emmc_trend("e", [EmmcDay(*r) for r in rows])
    if t is not None:
        json.dumps({k: v for k, v in t.evidence().items() if k not in ("z", "slope_se")})
