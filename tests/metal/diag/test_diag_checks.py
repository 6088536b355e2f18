"""Unit and property tests of the pure diagnostic checks over hand-built snapshots."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wrale.metal.core.control import INITIAL_THERMAL, BatteryAction
from wrale.metal.core.security import InputState, SecurityState
from wrale.metal.core.snapshot import Snapshot
from wrale.metal.core.supply import SupplyStats
from wrale.metal.diag import DiagLimits, DiagResult, DiagStatus
from wrale.metal.diag.evidence import Evidence
from wrale.metal.diag.fan import judge_spin_up
from wrale.metal.diag.gpio import judge_loopback, pairs_from_lines
from wrale.metal.diag.power import battery, judge_voltage, power_rail
from wrale.metal.diag.result import worst
from wrale.metal.diag.security import tamper_sensors
from wrale.metal.diag.thermal import sensor_agreement, sensor_range, sensor_stuck, throttle_flags
from wrale.metal.hw.base import (
    FanReading,
    PowerReading,
    PowerSource,
    SourceReading,
    TamperInput,
    TamperReading,
    ThermalReading,
    ThrottleReading,
)
from wrale.shared.config import GpioLineSettings
from wrale.shared.errors import ConfigError
from wrale.shared.policy import (
    FanProfile,
    PowerPolicy,
    SecurityLevel,
    SecurityPolicy,
    ThermalPolicy,
)

PASS, WARNING, FAIL, SKIPPED = (
    DiagStatus.PASS,
    DiagStatus.WARNING,
    DiagStatus.FAIL,
    DiagStatus.SKIPPED,
)


def snap(
    seq: int = 1,
    *,
    cpu: float | None = 50.0,
    gpu: float | None = 48.5,
    ambient: float | None = 25.0,
    rpm: float | None = 2300.0,
    duty: float = 29.4,
    power_w: float | None = 3.0,
    volts: float | None = 5.08,
    source: PowerSource = PowerSource.MAIN,
    battery_pct: float | None = None,
    healthy: bool = True,
    charging: bool = False,
    tamper: TamperReading | None = None,
    armed: bool = True,
    lockdown: bool = False,
    inputs: dict[TamperInput, InputState] | None = None,
    throttle: ThrottleReading | None = None,
    ripple_v: float | None = 0.02,
    available: dict[str, bool] | None = None,
) -> Snapshot:
    sources: tuple[SourceReading, ...] = (
        SourceReading(PowerSource.MAIN, source is PowerSource.MAIN, volts, power_w),
    )
    if battery_pct is not None:
        sources += (SourceReading(PowerSource.BATTERY, healthy, 3.9),)
    return Snapshot(
        seq=seq,
        at=1_700_000_000.0 + seq,
        thermal=ThermalReading(cpu, gpu, ambient),
        fan=FanReading(duty, rpm),
        throttle=throttle or ThrottleReading(),
        power=PowerReading(source, volts, None, power_w, battery_pct, charging, healthy, sources),
        tamper=tamper or TamperReading(case_open=False, motion_detected=False, voltage_normal=True),
        gpio={},
        decision=INITIAL_THERMAL,
        profile=FanProfile.BALANCE,
        override=None,
        override_remaining_s=None,
        battery_action=BatteryAction.NONE,
        supply=SupplyStats(10, 5.0, 5.1, 5.05, ripple_v, 0.6, 0.7, 0, 0),
        security=SecurityState(armed, SecurityLevel.MEDIUM, lockdown, inputs or {}),
        available=available or {},
        fan_failed=False,
        last_tamper_at=None,
    )


ALL_SENSORS = frozenset({"cpu", "gpu", "ambient"})


def evidence(*snaps: Snapshot, sensors: frozenset[str] = ALL_SENSORS, **limits: Any) -> Evidence:
    return Evidence(
        snapshots=snaps,
        thermal=ThermalPolicy(),
        power=PowerPolicy(),
        security=SecurityPolicy(),
        limits=DiagLimits(**limits),
        sensors=sensors,
    )


def by_component(results: list[DiagResult]) -> dict[str, DiagResult]:
    return {r.component: r for r in results}


def test_worst_ranks_fail_over_warning_over_pass_over_skipped() -> None:
    assert worst([PASS, SKIPPED]) is PASS
    assert worst([PASS, WARNING, SKIPPED]) is WARNING
    assert worst([WARNING, FAIL, PASS]) is FAIL
    assert worst([]) is SKIPPED


def test_result_dict_has_the_contract_fields() -> None:
    r = sensor_range(evidence(snap()))[0]
    d = r.to_dict(timestamp=12.5, run_id="abc")
    assert {"type", "name", "component", "status", "reading", "expected", "message"} <= set(d)
    assert (d["type"], d["status"], d["timestamp"], d["run_id"]) == ("THERMAL", "PASS", 12.5, "abc")


# ----------------------------------------------------------------------------- sensor range


@pytest.mark.parametrize(
    ("cpu", "status"),
    [(50.0, PASS), (None, FAIL), (-273.15, FAIL), (200.0, FAIL), (float("nan"), FAIL)],
)
def test_sensor_range_fails_a_missing_or_implausible_cpu(
    cpu: float | None, status: DiagStatus
) -> None:
    result = by_component(sensor_range(evidence(snap(cpu=cpu))))["cpu_temp"]
    assert result.status is status
    assert result.expected == "-40..125 °C"


def test_sensor_range_skips_a_sensor_the_board_never_had() -> None:
    results = by_component(sensor_range(evidence(snap(gpu=None), sensors=frozenset({"cpu"}))))
    assert results["gpu_temp"].status is SKIPPED
    # ...but a sensor known to the board fails when it goes missing
    results = by_component(sensor_range(evidence(snap(gpu=None))))
    assert results["gpu_temp"].status is FAIL
    assert "no reading" in results["gpu_temp"].message


def test_sensor_range_warns_when_a_sensor_failed_in_some_samples_only() -> None:
    ev = evidence(snap(1, ambient=None), snap(2), snap(3))
    result = by_component(sensor_range(ev))["ambient_temp"]
    assert result.status is WARNING
    assert "1 of 3" in result.message


@given(st.lists(st.floats(-40.0, 125.0), min_size=1, max_size=8))
def test_sensor_range_never_fails_plausible_cpu_readings(temps: list[float]) -> None:
    ev = evidence(*(snap(i, cpu=t) for i, t in enumerate(temps)))
    assert by_component(sensor_range(ev))["cpu_temp"].status is PASS


# ----------------------------------------------------------------------------- stuck


def test_a_stuck_sensor_warns_only_when_the_fan_or_load_moved() -> None:
    still = [snap(i, cpu=51.25) for i in range(5)]
    assert by_component(sensor_stuck(evidence(*still)))["cpu_temp"].status is PASS
    fan_moved = [snap(i, cpu=51.25, rpm=2300.0 + 1500 * i, duty=30 + 15 * i) for i in range(5)]
    result = by_component(sensor_stuck(evidence(*fan_moved)))["cpu_temp"]
    assert result.status is WARNING
    assert "stuck" in result.message
    load_moved = [snap(i, cpu=51.25, power_w=2.7 + i) for i in range(5)]
    assert by_component(sensor_stuck(evidence(*load_moved)))["cpu_temp"].status is WARNING


def test_a_sensor_that_sticks_mid_run_is_judged_on_its_latest_readings() -> None:
    temps = [50.3, 50.1, 49.9, 49.7, 49.7, 49.7, 49.7]
    snaps = [snap(i, cpu=t, rpm=2000.0 + 1000 * i) for i, t in enumerate(temps)]
    result = by_component(sensor_stuck(evidence(*snaps)))["cpu_temp"]
    assert (result.status, result.reading) == (WARNING, 4)
    result = by_component(sensor_stuck(evidence(*snaps[:-1])))["cpu_temp"]
    assert (result.status, result.reading) == (PASS, 3)


def test_stuck_needs_enough_readings() -> None:
    result = by_component(sensor_stuck(evidence(snap(1), snap(2))))["cpu_temp"]
    assert result.status is SKIPPED


@given(
    st.lists(st.floats(-40.0, 125.0), min_size=4, max_size=10).filter(
        lambda xs: max(xs[-4:]) - min(xs[-4:]) > 0.01
    )
)
def test_a_sensor_whose_latest_readings_vary_is_never_called_stuck(temps: list[float]) -> None:
    ev = evidence(*(snap(i, cpu=t, rpm=1000.0 * i) for i, t in enumerate(temps)))
    assert by_component(sensor_stuck(ev))["cpu_temp"].status is PASS


# ----------------------------------------------------------------------------- agreement


@pytest.mark.parametrize(("gpu", "status"), [(41.0, PASS), (39.5, WARNING), (62.0, WARNING)])
def test_cpu_and_gpu_disagreeing_by_more_than_10_c_warns(gpu: float, status: DiagStatus) -> None:
    results = by_component(sensor_agreement(evidence(snap(cpu=50.0, gpu=gpu))))
    assert results["cpu_vs_gpu"].status is status


def test_ambient_hotter_than_the_cpu_warns_and_missing_gpu_skips() -> None:
    results = by_component(sensor_agreement(evidence(snap(cpu=40.0, gpu=None, ambient=55.0))))
    assert results["ambient_vs_cpu"].status is WARNING
    assert results["cpu_vs_gpu"].status is SKIPPED


# ----------------------------------------------------------------------------- throttle


def test_throttle_flags_warn_with_what_occurred() -> None:
    assert throttle_flags(evidence(snap()))[0].status is PASS
    flags = ThrottleReading.from_bits(0x50000)  # under-voltage and throttling since boot
    result = throttle_flags(evidence(snap(throttle=flags)))[0]
    assert result.status is WARNING
    assert "since boot: under-voltage, throttled" in result.message


# ----------------------------------------------------------------------------- power


@given(st.floats(0.0, 6.0))
def test_rail_voltage_bands(volts: float) -> None:
    status, _ = judge_voltage(volts, volts, 5.0, 4.8, 5.0)
    if volts < 4.8:
        assert status is FAIL
    elif 4.9 <= volts <= 5.25:
        assert status is PASS
    else:
        assert status is WARNING


def test_rail_warns_close_to_critical() -> None:
    assert judge_voltage(4.85, 4.85, 5.0, 4.8, 5.0)[0] is WARNING


def test_rail_warns_between_critical_and_the_band_when_critical_is_lower() -> None:
    assert judge_voltage(4.6, 4.6, 5.0, 4.5, 5.0)[0] is WARNING
    assert judge_voltage(4.4, 5.0, 5.0, 4.5, 5.0)[0] is FAIL  # the worst sample counts


def test_power_rail_fails_a_sag_in_any_sample_and_warns_on_battery() -> None:
    results = by_component(power_rail(evidence(snap(1), snap(2, volts=4.6), snap(3))))
    assert results["supply_voltage"].status is FAIL
    assert results["supply_voltage"].reading == 4.6
    assert results["power_source"].status is PASS
    on_battery = snap(source=PowerSource.BATTERY, battery_pct=80.0)
    results = by_component(power_rail(evidence(on_battery)))
    assert results["power_source"].status is WARNING
    assert "running on battery at 80 %" in results["power_source"].message


def test_power_rail_skips_without_a_voltage_sensor_and_fails_when_unreadable() -> None:
    results = by_component(power_rail(evidence(snap(volts=None))))
    assert results["supply_voltage"].status is SKIPPED
    results = by_component(power_rail(evidence(snap(available={"power": False}))))
    assert results["supply_voltage"].status is FAIL


def test_ripple_above_the_limit_warns() -> None:
    assert by_component(power_rail(evidence(snap(ripple_v=0.4))))["supply_ripple"].status is WARNING


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({}, SKIPPED),
        ({"battery_pct": 90.0}, PASS),
        ({"battery_pct": 90.0, "healthy": False}, FAIL),
        ({"battery_pct": 15.0, "source": PowerSource.BATTERY}, WARNING),
        ({"battery_pct": 8.0, "source": PowerSource.BATTERY}, FAIL),
        ({"battery_pct": 8.0, "charging": True}, WARNING),
    ],
)
def test_battery(kwargs: dict[str, Any], status: DiagStatus) -> None:
    assert battery(evidence(snap(**kwargs)))[0].status is status


# ----------------------------------------------------------------------------- tamper


def test_tamper_inputs() -> None:
    assert {r.status for r in tamper_sensors(evidence(snap()))} == {PASS}
    open_case = TamperReading(case_open=True, motion_detected=None, voltage_normal=False)
    results = by_component(tamper_sensors(evidence(snap(tamper=open_case))))
    assert results["case_switch"].status is WARNING
    assert results["motion_sensor"].status is SKIPPED
    assert results["voltage_monitor"].status is FAIL
    disarmed = by_component(tamper_sensors(evidence(snap(tamper=open_case, armed=False))))
    assert disarmed["case_switch"].status is PASS
    assert "disarmed" in disarmed["case_switch"].message


def test_tamper_unreadable_flapping_and_lockdown() -> None:
    unreadable = tamper_sensors(evidence(snap(available={"tamper": False})))
    assert [r.status for r in unreadable] == [FAIL]
    flapping = {TamperInput.CASE: InputState(tampered=False, recent_transitions=(1.0,) * 6)}
    results = by_component(tamper_sensors(evidence(snap(inputs=flapping, lockdown=True))))
    assert results["case_switch"].status is WARNING
    assert "flapping" in results["case_switch"].message
    assert results["lockdown"].status is WARNING


# ----------------------------------------------------------------------------- fan


def spin(rpms: Sequence[float | None], temps: list[float] | None = None) -> list[Snapshot]:
    temps = temps or [50.0] * len(rpms)
    return [
        snap(2 + i, rpm=r, duty=100.0, cpu=t)
        for i, (r, t) in enumerate(zip(rpms, temps, strict=True))
    ]


@pytest.mark.parametrize(
    ("rpms", "expected", "status", "words"),
    [
        ([1200.0, 5000.0, 7900.0], None, PASS, "spun up to 7900"),
        ([0.0, 0.0, 0.0], None, FAIL, "failed, stalled or is unplugged"),
        ([800.0, 2000.0, 2400.0], 8000.0, WARNING, "only 2400 rpm"),
        ([800.0, 2000.0, 2400.0], None, PASS, "spun up"),
    ],
)
def test_judge_spin_up(
    rpms: list[float], expected: float | None, status: DiagStatus, words: str
) -> None:
    result = judge_spin_up(snap(1), spin(rpms), 300.0, DiagLimits(), expected)
    assert result.status is status
    assert words in result.message


def test_spin_up_warns_when_the_cpu_heats_despite_the_fan() -> None:
    during = spin([7000.0] * 5, [50.0, 51.0, 52.0, 53.0, 54.0])
    result = judge_spin_up(snap(1, cpu=50.0), during, 300.0, DiagLimits(), None)
    assert result.status is WARNING
    assert "warmed 4.0 °C" in result.message
    short = judge_spin_up(snap(1, cpu=50.0), during[:2], 300.0, DiagLimits(), None)
    assert short.status is PASS  # too short to judge the temperature


def test_spin_up_fails_when_the_duty_never_reached_100() -> None:
    during = [replace(s, fan=FanReading(30.0, 2300.0)) for s in spin([2300.0] * 3)]
    assert judge_spin_up(snap(1), during, 300.0, DiagLimits(), None).status is FAIL


# ----------------------------------------------------------------------------- gpio and limits


def test_judge_loopback() -> None:
    assert judge_loopback("out", "in", [1, 0]).status is PASS
    stuck = judge_loopback("out", "in", [0, 0])
    assert stuck.status is FAIL
    assert "stuck at 0" in stuck.message
    assert stuck.component == "out->in"


def test_pairs_from_lines_reads_either_end_of_the_wire() -> None:
    lines = {
        "a": GpioLineSettings(line=5, direction="out", loopback_to="b"),
        "b": GpioLineSettings(line=6, direction="in", loopback_to="a"),
        "c": GpioLineSettings(line=7, direction="in", loopback_to="d"),
        "d": GpioLineSettings(line=8, direction="out"),
        "e": GpioLineSettings(line=9, direction="in"),
    }
    assert pairs_from_lines(lines) == {"a": "b", "d": "c"}


@pytest.mark.parametrize(
    "kwargs",
    [{"cpu_range_c": (10.0, 0.0)}, {"stuck_samples": 1}, {"fan_low_ratio": 0.0}, {"fan_test_s": 0}],
)
def test_limits_refuse_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        DiagLimits(**kwargs)
