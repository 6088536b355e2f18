"""Property tests of the safety laws: whatever the readings and commands, the fan never
drops below the curve above the warning temperature, throttling is on at the hard limit,
and a critical battery always leads to a shutdown."""

from __future__ import annotations

from dataclasses import replace

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wrale.metal.core import control
from wrale.metal.core.control import BatteryAction, FanOverride, ThermalStatus
from wrale.metal.hw.base import PowerReading, PowerSource, SourceReading, ThermalReading
from wrale.shared.errors import InvalidRequestError, UnsafeOperationError
from wrale.shared.policy import PI5_FAN_CURVE, FanProfile, PowerPolicy, ThermalPolicy

POLICY = ThermalPolicy()
temps = st.one_of(
    st.floats(min_value=-20, max_value=110, allow_nan=False),
    st.none(),
    st.sampled_from([float("nan"), 500.0, -273.0]),
)
commands = st.one_of(
    st.none(),
    st.tuples(st.floats(min_value=0, max_value=100), st.floats(min_value=1, max_value=600)),
)
profiles = st.sampled_from(list(FanProfile))


def plain_curve_pct(temp_c: float, policy: ThermalPolicy) -> float:
    """The curve's duty at ``temp_c`` with no hysteresis: the floor when hot."""
    level = control.curve_level(temp_c, -1, control.profile_curve(policy), 0.0)
    return control.pwm_to_pct(control.profile_curve(policy)[level].pwm) if level >= 0 else 0.0


@given(
    st.lists(st.tuples(temps, commands), min_size=1, max_size=60),
    profiles,
    st.one_of(st.just(0.0), st.floats(min_value=0, max_value=100)),
)
def test_safety_invariants_hold_for_any_sequence(
    steps: list[tuple[float | None, tuple[float, float] | None]],
    profile: FanProfile,
    min_fan_pct: float,
) -> None:
    policy = ThermalPolicy(profile=profile, min_fan_pct=min_fan_pct)
    decision = control.INITIAL_THERMAL
    override: FanOverride | None = None
    now = 0.0
    for cpu, cmd in steps:
        now += 1.0
        if cmd is not None:
            percent, duration = cmd
            try:
                control.check_fan_override(percent, duration, decision, policy)
                override = FanOverride(percent, now + duration)
            except UnsafeOperationError:
                assert percent < max(decision.floor_pct, min_fan_pct)
        decision = control.decide_thermal(ThermalReading(cpu), decision, policy, override, now)
        assert decision.fan_pct >= min_fan_pct
        assert decision.floor_pct >= min_fan_pct
        real = control.plausible(cpu)
        if real is None:
            assert decision.fan_pct == 100.0
            assert decision.throttled
            continue
        if real >= policy.cpu_warning_c:
            assert decision.fan_pct >= plain_curve_pct(real, policy)
            assert decision.status is not ThermalStatus.NORMAL
        if real >= policy.cpu_critical_c:
            assert decision.fan_pct == 100.0
            assert decision.throttled
        if real >= policy.cpu_hard_limit_c:
            assert decision.max_freq_pct <= control.THROTTLE_HARD_PCT


@given(st.floats(min_value=0, max_value=100), st.floats(min_value=70, max_value=110))
def test_override_below_floor_is_refused_when_hot(percent: float, cpu: float) -> None:
    hot = control.decide_thermal(ThermalReading(cpu), control.INITIAL_THERMAL, POLICY, None, 0.0)
    if percent < hot.floor_pct:
        with pytest.raises(UnsafeOperationError, match="may not go below"):
            control.check_fan_override(percent, 60, hot, POLICY)
    else:
        control.check_fan_override(percent, 60, hot, POLICY)


def test_override_is_free_when_cool_and_expires() -> None:
    cool = control.decide_thermal(ThermalReading(40.0), control.INITIAL_THERMAL, POLICY, None, 0)
    control.check_fan_override(0, 60, cool, POLICY)
    d = control.decide_thermal(ThermalReading(40.0), cool, POLICY, FanOverride(80, 10.0), 5.0)
    assert d.fan_pct == 80
    assert d.override_active
    d = control.decide_thermal(ThermalReading(40.0), d, POLICY, FanOverride(80, 10.0), 11.0)
    assert d.fan_pct == 0
    assert not d.override_active


def test_policy_minimum_fan_applies_even_when_cool() -> None:
    policy = ThermalPolicy(min_fan_pct=35.0)
    cool = control.decide_thermal(ThermalReading(30.0), control.INITIAL_THERMAL, policy, None, 0)
    assert cool.status is ThermalStatus.NORMAL
    assert cool.fan_pct == 35.0
    assert cool.floor_pct == 35.0
    warm = control.decide_thermal(ThermalReading(68.0), cool, policy, None, 1)
    assert warm.fan_pct == plain_curve_pct(68.0, policy) > 35.0  # the curve wins above it
    critical = control.decide_thermal(ThermalReading(81.0), warm, policy, None, 2)
    assert critical.fan_pct == 100.0
    maxed = msgspec.structs.replace(policy, profile=FanProfile.MAX)
    assert control.decide_thermal(ThermalReading(30.0), cool, maxed, None, 3).fan_pct == 100.0


def test_override_below_policy_minimum_is_refused_even_when_cool() -> None:
    policy = ThermalPolicy(min_fan_pct=35.0)
    for current in (
        control.INITIAL_THERMAL,
        control.decide_thermal(ThermalReading(30.0), control.INITIAL_THERMAL, policy, None, 0),
    ):
        with pytest.raises(UnsafeOperationError, match="policy's minimum fan speed is 35 %"):
            control.check_fan_override(20, 60, current, policy)
    control.check_fan_override(35, 60, control.INITIAL_THERMAL, policy)
    d = control.decide_thermal(
        ThermalReading(30.0), control.INITIAL_THERMAL, policy, FanOverride(35, 60.0), 1
    )
    assert d.fan_pct == 35.0
    assert d.override_active


@pytest.mark.parametrize(
    ("percent", "duration"), [(-1, 60), (101, 60), (float("nan"), 60), (50, 0), (50, 1e9)]
)
def test_malformed_override_is_invalid(percent: float, duration: float) -> None:
    with pytest.raises(InvalidRequestError):
        control.check_fan_override(percent, duration, control.INITIAL_THERMAL, POLICY)


def test_pi5_curve_with_hysteresis() -> None:
    curve = PI5_FAN_CURVE
    assert control.curve_level(49.9, -1, curve, 5) == -1
    assert control.curve_level(50.0, -1, curve, 5) == 0
    assert control.curve_level(61.0, 0, curve, 5) == 1
    # falling: holds until 5 °C below the point that raised it
    assert control.curve_level(56.0, 1, curve, 5) == 1
    assert control.curve_level(54.9, 1, curve, 5) == 0
    assert control.curve_level(44.9, 0, curve, 5) == -1
    assert control.curve_level(80.0, -1, curve, 5) == 3
    assert control.pwm_to_pct(curve[3].pwm) == pytest.approx(98.0, abs=0.1)


@given(st.lists(st.floats(min_value=20, max_value=100), min_size=1, max_size=50))
def test_curve_level_stays_between_fresh_and_hysteresis_levels(seq: list[float]) -> None:
    level = -1
    for t in seq:
        level = control.curve_level(t, level, PI5_FAN_CURVE, 5.0)
        assert control.curve_level(t, -1, PI5_FAN_CURVE, 0.0) <= level
        assert level <= control.curve_level(t + 5.0, -1, PI5_FAN_CURVE, 0.0)


def test_profiles_bend_the_curve() -> None:
    def fan(profile: FanProfile, t: float) -> float:
        pol = msgspec.structs.replace(POLICY, profile=profile)
        return control.decide_thermal(
            ThermalReading(t), control.INITIAL_THERMAL, pol, None, 0
        ).fan_pct

    assert fan(FanProfile.QUIET, 52) == 0 < fan(FanProfile.BALANCE, 52)
    assert fan(FanProfile.COOL, 47) > 0 == fan(FanProfile.BALANCE, 47)
    assert fan(FanProfile.MAX, 30) == 100


def test_throttle_is_progressive_and_held_with_hysteresis() -> None:
    assert control.throttle_cap(79.9, POLICY, False) == 100
    assert control.throttle_cap(80.0, POLICY, False) == control.THROTTLE_FIRST_STEP_PCT
    assert 40 < control.throttle_cap(82.5, POLICY, True) < 90
    assert control.throttle_cap(86.0, POLICY, True) == control.THROTTLE_HARD_PCT
    assert control.throttle_cap(78.5, POLICY, True) == control.THROTTLE_FIRST_STEP_PCT
    assert control.throttle_cap(77.9, POLICY, True) == 100


def test_gpu_and_ambient_have_their_own_thresholds() -> None:
    d = control.decide_thermal(
        ThermalReading(50.0, 81.0, 30.0), control.INITIAL_THERMAL, POLICY, None, 0
    )
    assert d.gpu_status is ThermalStatus.CRITICAL
    assert d.status is ThermalStatus.CRITICAL
    assert d.fan_pct == 100
    assert not d.throttled
    d = control.decide_thermal(
        ThermalReading(50.0, 50.0, 42.0), control.INITIAL_THERMAL, POLICY, None, 0
    )
    assert d.ambient_status is ThermalStatus.WARNING


# ----------------------------------------------------------------------------- power

PPOL = PowerPolicy()


def power(
    source: PowerSource,
    pct: float | None,
    *,
    main: bool = True,
    battery: bool = True,
    solar: bool = False,
    healthy: bool = True,
) -> PowerReading:
    return PowerReading(
        source=source,
        voltage_v=5.1,
        current_a=0.8,
        power_w=4.0,
        battery_pct=pct,
        battery_healthy=healthy,
        sources=(
            SourceReading(PowerSource.MAIN, main),
            SourceReading(PowerSource.BATTERY, battery),
            SourceReading(PowerSource.SOLAR, solar),
        ),
    )


@given(
    st.lists(
        st.tuples(
            st.sampled_from(list(PowerSource)),
            st.one_of(st.none(), st.floats(min_value=0, max_value=100)),
        ),
        min_size=1,
        max_size=80,
    )
)
def test_critical_battery_always_leads_to_shutdown(
    steps: list[tuple[PowerSource, float | None]],
) -> None:
    action = BatteryAction.NONE
    shutdown_seen = False
    for source, pct in steps:
        action = control.battery_action(power(source, pct), PPOL, action)
        if source is PowerSource.BATTERY and pct is not None and pct <= PPOL.critical_battery_pct:
            shutdown_seen = True
        if shutdown_seen:
            assert action is BatteryAction.SHUTDOWN


def test_low_battery_sheds_load_with_hysteresis() -> None:
    a = control.battery_action(power(PowerSource.BATTERY, 19), PPOL, BatteryAction.NONE)
    assert a is BatteryAction.SHED_LOAD
    a = control.battery_action(power(PowerSource.BATTERY, 23), PPOL, a)
    assert a is BatteryAction.SHED_LOAD
    a = control.battery_action(power(PowerSource.BATTERY, 26), PPOL, a)
    assert a is BatteryAction.NONE
    a = control.battery_action(power(PowerSource.MAIN, 5), PPOL, BatteryAction.SHED_LOAD)
    assert a is BatteryAction.NONE


def test_failover_order() -> None:
    assert control.choose_source(power(PowerSource.MAIN, 80), PPOL) is PowerSource.MAIN
    lost = power(PowerSource.MAIN, 80, main=False, solar=True)
    assert control.choose_source(lost, PPOL) is PowerSource.BATTERY
    solar_first = msgspec.structs.replace(PPOL, prefer_solar_over_battery=True)
    assert control.choose_source(lost, solar_first) is PowerSource.SOLAR
    dead = power(PowerSource.MAIN, 0, main=False, solar=True)
    assert control.choose_source(dead, PPOL) is PowerSource.SOLAR
    broken = power(PowerSource.MAIN, 80, main=False, solar=True, healthy=False)
    assert control.choose_source(broken, PPOL) is PowerSource.SOLAR


def test_a_cap_below_the_board_floor_is_applied_as_the_floor_and_says_so() -> None:
    hot = control.decide_thermal(
        ThermalReading(cpu_temp_c=86.0), control.INITIAL_THERMAL, ThermalPolicy(), None, 0.0
    )
    assert hot.max_freq_pct == control.THROTTLE_HARD_PCT
    floored = control.apply_freq_floor(hot, 62.5)
    assert floored.max_freq_pct == 62.5
    assert "applied as 62.5 %" in floored.reasons[-1]
    assert control.apply_freq_floor(hot, 0.0) is hot  # no floor known
    cool = control.decide_thermal(
        ThermalReading(cpu_temp_c=40.0), control.INITIAL_THERMAL, ThermalPolicy(), None, 0.0
    )
    assert control.apply_freq_floor(cool, 62.5) is cool


@given(
    cap=st.floats(min_value=0, max_value=100),
    floor=st.floats(min_value=0, max_value=100),
)
def test_the_floored_cap_is_never_below_the_floor_nor_above_the_decision(
    cap: float, floor: float
) -> None:
    decision = replace(control.INITIAL_THERMAL, max_freq_pct=cap)
    floored = control.apply_freq_floor(decision, floor)
    assert floored.max_freq_pct == max(cap, floor)
    assert (floored is decision) == (cap >= floor)
