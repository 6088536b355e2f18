"""Slow faults of the simulated board (fan wear, dust, battery fade) in simulated time."""

from __future__ import annotations

import pytest

from tests.metal.core.server_harness import running_metald
from wrale.metal.hw.base import Fault, FaultKind
from wrale.metal.hw.sim import SimBoard
from wrale.metal.hw.sim.thermal import ACTIVE_COOLER
from wrale.metal.hw.sim.wear import (
    DAY_S,
    Wear,
    WearKind,
    check_wear,
    dusty,
    seeded,
    wear_at,
)
from wrale.shared.config import SimSettings
from wrale.shared.errors import InvalidRequestError


def _board(**kw: object) -> SimBoard:
    settings = SimSettings(noise=False, active_cooler=True, **kw)  # type: ignore[arg-type]
    return SimBoard(settings)


def test_nothing_changes_before_the_onset_and_wear_is_linear_after() -> None:
    wears = [Wear(WearKind.FAN_WEAR, 2 * DAY_S, 3.0)]
    assert wear_at(wears, DAY_S).rpm_factor == 1.0
    assert wear_at(wears, 12 * DAY_S).rpm_factor == pytest.approx(0.7)
    assert wear_at([Wear(WearKind.DUST, 0.0, 2.0)], 10 * DAY_S).sink_resistance_factor == (
        pytest.approx(1.2)
    )
    assert wear_at([Wear(WearKind.BATTERY_FADE, 0.0, 1.0)], 1000 * DAY_S).capacity_factor > 0


def test_a_worn_fan_turns_slower_at_the_same_duty() -> None:
    board = _board()
    board.fan.set_fan_duty(50.0)
    board.advance(30.0)
    new_rpm = board.fan.read_fan().rpm
    assert new_rpm is not None
    board.add_wear(Wear(WearKind.FAN_WEAR, -10 * DAY_S, 2.0))  # ten days under way
    board.advance(30.0)
    assert board.fan.read_fan().rpm == pytest.approx(new_rpm * 0.8, rel=1e-3)
    assert board.fan.read_fan().duty_pct == 50.0


def test_dust_heats_the_die_at_equal_airflow_and_load() -> None:
    clean, dirty = _board(), _board()
    for b in (clean, dirty):
        b.set_load(50.0)
        b.fan.set_fan_duty(40.0)
    dirty.add_wear(Wear(WearKind.DUST, -10 * DAY_S, 5.0))  # ten days under way
    for b in (clean, dirty):
        b.advance(600.0)  # steady state (the heat sink's time constant is about a minute)
    assert dirty.wear.sink_resistance_factor == pytest.approx(1.5, rel=1e-3)
    assert dirty.soc_temp_c > clean.soc_temp_c + 0.5
    assert clean.fan.read_fan().rpm == pytest.approx(dirty.fan.read_fan().rpm)


def test_battery_fade_lowers_the_full_capacity() -> None:
    board = _board(battery_wh=20.0)
    board.add_wear(Wear(WearKind.BATTERY_FADE, -DAY_S * 10, 1.0))
    board.advance(1.0)
    assert board.status()["battery_capacity_wh"] == pytest.approx(18.0)
    assert board.status()["battery_wh"] <= 18.0
    assert board.clear_wear() == 1
    assert board.status()["battery_capacity_wh"] == pytest.approx(20.0)


def test_seeded_wear_is_deterministic_and_within_its_ranges() -> None:
    a = seeded(WearKind.DUST, 7, onset_days=(5, 15), rate_pct_per_day=(1, 3))
    assert a == seeded(WearKind.DUST, 7, onset_days=(5, 15), rate_pct_per_day=(1, 3))
    assert 5 * DAY_S <= a.onset_s <= 15 * DAY_S
    assert 1 <= a.rate_pct_per_day <= 3


@pytest.mark.parametrize(
    ("wear", "message"),
    [
        (Wear("rust", 0.0, 1.0), "unknown wear kind"),  # type: ignore[arg-type]
        (Wear(WearKind.DUST, 0.0, -1.0), "rate_pct_per_day"),
        (Wear(WearKind.DUST, float("nan"), 1.0), "onset_s"),
        (Wear(WearKind.FAN_WEAR, 0.0, "fast"), "must be a number"),  # type: ignore[arg-type]
    ],
)
def test_bad_wear_is_refused(wear: Wear, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        check_wear(wear)
    with pytest.raises(InvalidRequestError, match=message):
        _board().add_wear(wear)


def test_dusty_cooling_keeps_the_die_to_sink_path() -> None:
    d = dusty(ACTIVE_COOLER, 2.0)
    assert d.die_to_sink_w_per_k == ACTIVE_COOLER.die_to_sink_w_per_k
    assert d.sink_to_air_w_per_k(0.5) == pytest.approx(ACTIVE_COOLER.sink_to_air_w_per_k(0.5) / 2)


def test_a_worn_board_settles_where_the_steady_state_says() -> None:
    """The wear benchmark samples boards in steady state: a SimBoard left alone with a worn
    fan and a dusty sink settles there."""
    board = _board()
    board.set_load(60.0)
    board.fan.set_fan_duty(50.0)
    board.add_wear(Wear(WearKind.FAN_WEAR, -5 * DAY_S, 2.0))
    board.add_wear(Wear(WearKind.DUST, -5 * DAY_S, 4.0))
    board.advance(1200.0)
    state = board.wear
    rpm = 8000.0 * 0.5 * state.rpm_factor
    watts = board.power.read_power().power_w
    assert watts is not None
    die, _sink = dusty(ACTIVE_COOLER, state.sink_resistance_factor).steady_c(
        board.ambient_c, watts, rpm / 8000.0
    )
    assert board.fan.read_fan().rpm == pytest.approx(rpm, rel=1e-3)
    assert board.soc_temp_c == pytest.approx(die, abs=0.05)


def test_slow_faults_are_injected_and_cleared_like_other_faults() -> None:
    board = _board(battery_wh=20.0)
    board.fan.set_fan_duty(50.0)
    board.inject_fault(Fault(FaultKind.FAN_WEAR, {"rate_pct_per_day": 10.0}))
    board.inject_fault(Fault(FaultKind.BATTERY_FADE, {"onset_in_s": DAY_S}))
    board.advance(DAY_S)
    assert board.wear.rpm_factor == pytest.approx(0.9, abs=0.005)  # updated hourly
    assert board.wear.capacity_factor == 1.0  # its onset is just now
    assert board.clear_faults(FaultKind.FAN_WEAR) == 1
    assert board.wear.rpm_factor == 1.0
    assert board.clear_faults() == 1  # the battery's fade


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (Fault(FaultKind.DUST, {"rate_pct_per_day": 99}), "rate_pct_per_day"),
        (Fault(FaultKind.DUST, {"onset_in_s": -5}), "onset_in_s"),
        (Fault(FaultKind.DUST, {"grit": 1}), "unknown parameter"),
        (Fault(FaultKind.DUST, duration_s=60), "lasts until cleared"),
        (Fault(FaultKind.BATTERY_FADE), "no battery"),
    ],
)
def test_bad_slow_faults_are_refused(fault: Fault, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        _board(battery_wh=0.0).inject_fault(fault)


async def test_metald_takes_slow_faults_over_http() -> None:
    async with running_metald() as m:
        c = m.client()
        r = await c.post("/v1/sim/faults", json={"fault": "dust", "rate_pct_per_day": 3})
        assert r.status_code == 200, r.text
        r = await c.post("/v1/sim/faults", json={"fault": "dust", "rate_pct_per_day": "x"})
        assert r.status_code == 422
        assert "rate_pct_per_day" in r.text
        m.board.advance(10 * DAY_S)
        assert m.board.wear.sink_resistance_factor == pytest.approx(1.3, abs=0.01)
        (listed,) = (await c.get("/v1/sim")).json()["wear"]
        assert (listed["kind"], listed["rate_pct_per_day"]) == ("dust", 3.0)
        r = await c.delete("/v1/sim/faults", params={"fault": "dust"})
        assert r.status_code == 200, r.text
        assert m.board.wear.sink_resistance_factor == 1.0
