"""Policies and the operator's frequency cap through MetalClient (in-process and HTTP):
metal refuses what would weaken its safety rules, and a cap never lifts a safety throttle."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.metal.core.server_harness import API_KEY, TIMEOUT_S, Metald, running_metald
from wrale.metal.core import control
from wrale.metal.core.client import HttpMetalClient, InProcessMetalClient, MetalClient
from wrale.metal.hw.base import Fault, FaultKind
from wrale.shared.errors import InvalidRequestError, UnsafeOperationError
from wrale.shared.policy import CurvePoint, PowerPolicy, ThermalPolicy
from wrale.shared.structs import to_builtins


@pytest.fixture(params=["in-process", "http"])
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Metald, MetalClient]]:
    async with running_metald() as m:
        c: MetalClient = (
            HttpMetalClient(m.url, API_KEY, timeout=TIMEOUT_S)
            if request.param == "http"
            else InProcessMetalClient(m.core, m.diagnostics)
        )
        async with c:
            yield m, c


async def test_policies_are_read_and_replaced(pair: tuple[Metald, MetalClient]) -> None:
    m, c = pair
    before = await c.policies()
    assert before["thermal"] == to_builtins(ThermalPolicy())
    thermal = {**before["thermal"], "min_fan_pct": 30.0, "profile": "cool"}
    after = await c.update_policies(thermal=thermal)
    assert after["thermal"]["min_fan_pct"] == 30.0
    assert after["power"] == before["power"]
    assert m.core.thermal_policy.min_fan_pct == 30.0
    assert (await c.thermal())["fan_percent"] >= 30.0  # applied at once (a step was taken)
    assert (await c.events(limit=1))[0]["type"] == "POLICY_CHANGED"


@pytest.mark.parametrize(
    ("kind", "change", "path"),
    [
        ("thermal", {"cpu_hard_limit_c": 90.0}, "thermal.cpu_hard_limit_c"),
        (
            "thermal",
            {"curve": [{"temp_c": 50, "pwm": 200}, {"temp_c": 70, "pwm": 100}]},
            "thermal.curve",
        ),
        (
            "thermal",
            {"curve": [{"temp_c": 50, "pwm": 0}, {"temp_c": 75, "pwm": 255}]},
            "thermal.curve",
        ),
        ("power", {"critical_battery_pct": 2.0}, "power.critical_battery_pct"),
    ],
)
async def test_unsafe_policies_are_refused_with_the_field(
    pair: tuple[Metald, MetalClient], kind: str, change: dict[str, object], path: str
) -> None:
    _, c = pair
    before = await c.policies()
    with pytest.raises(UnsafeOperationError, match="refused") as err:
        await c.update_policies(**{kind: {**before[kind], **change}})
    assert err.value.details["path"] == path
    assert await c.policies() == before  # nothing changed


async def test_malformed_policies_name_the_field(pair: tuple[Metald, MetalClient]) -> None:
    _, c = pair
    with pytest.raises(InvalidRequestError) as err:
        await c.update_policies(thermal={"cpu_warning_c": "warm"})
    fields = [e["field"] for e in err.value.details["errors"]]
    assert fields == ["thermal.cpu_warning_c"]


async def test_a_frequency_cap_only_lowers_and_persists(pair: tuple[Metald, MetalClient]) -> None:
    m, c = pair
    t = await c.set_throttle(70)
    assert t["max_freq_pct"] == 70.0
    assert t["freq_cap_pct"] == 70.0
    assert t["throttled"] is False  # a cap someone set is not the board throttling itself
    assert m.board.throttle.read_throttle().max_freq_pct == pytest.approx(70.0)
    assert not [e for e in await c.events(limit=5) if e["type"] == "THROTTLE_ON"]
    assert m.core.store.get_state("freq_cap_pct") == 70.0
    for bad in (20, 101):
        with pytest.raises(InvalidRequestError):
            await c.set_throttle(bad)
    t = await c.set_throttle(None)
    assert t["max_freq_pct"] == 100.0
    assert t["freq_cap_pct"] is None


async def test_a_cap_never_lifts_the_safety_throttle() -> None:
    async with running_metald() as m:
        c = InProcessMetalClient(m.core)
        await m.core.sim_call(lambda: m.board.set_load(100))
        # the cooler's heat sink alone holds 25 °C air near 81 °C: a warm room passes 85
        await m.core.sim_call(lambda: m.board.set_ambient(40))
        await m.core.sim_call(lambda: m.board.inject_fault(Fault(FaultKind.FAN_FAILURE)))
        snap = m.core.current()
        for _ in range(2000):
            snap = await m.run_for(5.0)
            if snap.decision.max_freq_pct <= 62.5:  # the hard throttle, at the Pi 5's floor
                break
        assert snap.decision.max_freq_pct == 62.5
        t = await c.set_throttle(95)
        assert t["max_freq_pct"] < control.THROTTLE_FIRST_STEP_PCT  # the safety throttle holds
        assert t["freq_cap_pct"] == 95.0
        assert t["throttled"] is True
        assert not any("operator cap" in r for r in m.core.current().decision.reasons)
        t = await c.set_throttle(50)  # lower than the safety throttle: still throttled by heat
        assert t["max_freq_pct"] == 62.5
        assert t["throttled"] is True


async def test_the_cap_survives_a_metald_restart() -> None:
    async with running_metald() as m:
        await InProcessMetalClient(m.core).set_throttle(65)
        from wrale.metal.core.engine import MetalCore

        again = MetalCore(m.board, store=m.core.store, clock=m.board.clock)
        snap = await again.start()
        assert snap.decision.max_freq_pct == 65.0


@given(
    st.lists(
        st.tuples(st.floats(30, 90), st.integers(0, 255)),
        min_size=1,
        max_size=5,
        unique_by=lambda p: round(p[0], 3),
    ),
    st.floats(40, 69),
)
def test_an_accepted_curve_keeps_a_fan_floor_and_never_slows_when_hotter(
    points: list[tuple[float, int]], warning: float
) -> None:
    curve = tuple(CurvePoint(temp_c=t, pwm=p) for t, p in sorted(points))
    try:
        policy = ThermalPolicy(curve=curve, cpu_warning_c=warning)
    except ValueError:
        return
    try:
        control.check_thermal_policy(policy)
    except UnsafeOperationError:
        return
    pwms = [p.pwm for p in curve]
    assert pwms == sorted(pwms)
    assert any(p.temp_c <= warning and p.pwm > 0 for p in curve)


def test_the_default_policies_are_safe() -> None:
    control.check_thermal_policy(ThermalPolicy())
    control.check_power_policy(PowerPolicy())
