"""Power snapshot checks: the 5 V rail (voltage, ripple, source in use) and the battery.
Pure functions of ``Evidence``; no I/O, no clock."""

from __future__ import annotations

from wrale.metal.core.supply import MIN_SAMPLES_FOR_RIPPLE
from wrale.metal.diag.evidence import Evidence, finite
from wrale.metal.diag.result import DiagResult, DiagStatus, DiagType, Reading
from wrale.metal.hw.base import PowerSource

CRITICAL_MARGIN_V = 0.1  # a rail this close to the critical voltage is worth a warning


def _result(
    name: str,
    component: str,
    status: DiagStatus,
    message: str,
    reading: Reading = None,
    expected: str | None = None,
    unit: str | None = None,
) -> DiagResult:
    return DiagResult(DiagType.POWER, name, component, status, message, reading, expected, unit)


def judge_voltage(
    low_v: float, high_v: float, nominal_v: float, critical_v: float, tolerance_pct: float
) -> tuple[DiagStatus, str]:
    """The rail between its lowest and highest sample: FAIL below critical, WARNING off the
    nominal band, else PASS."""
    band = nominal_v * tolerance_pct / 100.0
    if low_v < critical_v:
        return DiagStatus.FAIL, (
            f"supply sagged to {low_v:.2f} V, below the critical {critical_v:.2f} V: "
            "under-voltage, check the power supply and its cable"
        )
    if high_v > nominal_v + band:
        return (
            DiagStatus.WARNING,
            f"supply at {high_v:.2f} V, above {nominal_v:g} V +{tolerance_pct:g} %",
        )
    warn_below = max(nominal_v - band, critical_v + CRITICAL_MARGIN_V)
    if low_v < warn_below:
        return (
            DiagStatus.WARNING,
            f"supply low at {low_v:.2f} V, below {warn_below:.2f} V "
            f"(critical at {critical_v:.2f} V)",
        )
    return DiagStatus.PASS, f"supply within {nominal_v:g} V ±{tolerance_pct:g} %"


def _voltage(ev: Evidence) -> DiagResult:
    pol, tol = ev.power, ev.limits.voltage_tolerance_pct
    band = pol.nominal_voltage_v * tol / 100.0
    expected = (
        f"{pol.nominal_voltage_v - band:.2f}..{pol.nominal_voltage_v + band:.2f} V, "
        f"never below {pol.critical_voltage_v:.2f} V"
    )
    volts = finite(s.power.voltage_v for s in ev.snapshots)
    name, comp = "power_rail", "supply_voltage"
    if not ev.latest.available.get("power", True):
        return _result(name, comp, DiagStatus.FAIL, "power readings unavailable", None, expected)
    if not volts:
        return _result(name, comp, DiagStatus.SKIPPED, "the board has no rail voltage sensor")
    low, high = min(volts), max(volts)
    status, msg = judge_voltage(low, high, pol.nominal_voltage_v, pol.critical_voltage_v, tol)
    reading = high if status is DiagStatus.WARNING and high > pol.nominal_voltage_v else low
    return _result(name, comp, status, msg, round(reading, 3), expected, "V")


def _ripple(ev: Evidence) -> DiagResult:
    stats, limit = ev.latest.supply, ev.power.ripple_limit_v
    name, comp, expected = "power_rail", "supply_ripple", f"<= {limit:g} V p-p"
    if stats.ripple_v is None or stats.samples < MIN_SAMPLES_FOR_RIPPLE:
        msg = f"{stats.samples} supply samples so far; {MIN_SAMPLES_FOR_RIPPLE} needed"
        return _result(name, comp, DiagStatus.SKIPPED, msg, None, expected, "V")
    if stats.ripple_v > limit:
        status = DiagStatus.WARNING
        msg = f"supply swung {stats.ripple_v:.3f} V p-p over the last {stats.samples} samples"
    else:
        status, msg = DiagStatus.PASS, f"supply ripple {stats.ripple_v:.3f} V p-p"
    return _result(name, comp, status, msg, stats.ripple_v, expected, "V")


def _source(ev: Evidence) -> DiagResult:
    source = ev.latest.power.source
    name, comp, expected = "power_rail", "power_source", PowerSource.MAIN.value
    if source is PowerSource.MAIN:
        return _result(name, comp, DiagStatus.PASS, "on main power", source.value, expected)
    pct = ev.latest.power.battery_pct
    level = f" at {pct:.0f} %" if source is PowerSource.BATTERY and pct is not None else ""
    msg = f"main power absent: running on {source.value}{level}"
    return _result(name, comp, DiagStatus.WARNING, msg, source.value, expected)


def power_rail(ev: Evidence) -> list[DiagResult]:
    return [_voltage(ev), _ripple(ev), _source(ev)]


def battery(ev: Evidence) -> list[DiagResult]:
    """Battery present, healthy and charged enough to carry the board through an outage."""
    p, pol = ev.latest.power, ev.power
    name, comp = "battery", "battery"
    expected = f"healthy, above {pol.low_battery_pct:g} %"
    has = p.battery_pct is not None or any(s.source is PowerSource.BATTERY for s in p.sources)
    on_battery = p.source is PowerSource.BATTERY
    if not has:
        return [_result(name, comp, DiagStatus.SKIPPED, "the board has no battery")]
    if not p.battery_healthy:
        msg = "battery failed or disconnected"
        return [_result(name, comp, DiagStatus.FAIL, msg, None, expected, "%")]
    pct = p.battery_pct
    if pct is None:
        msg = "battery level unreadable"
        return [_result(name, comp, DiagStatus.FAIL, msg, None, expected, "%")]
    state = "charging" if p.battery_charging else "discharging" if on_battery else "idle"
    if pct <= pol.critical_battery_pct:
        status = DiagStatus.FAIL if on_battery else DiagStatus.WARNING
        msg = f"battery critical at {pct:.0f} % ({state})"
    elif pct <= pol.low_battery_pct:
        status, msg = DiagStatus.WARNING, f"battery low at {pct:.0f} % ({state})"
    else:
        status, msg = DiagStatus.PASS, f"battery healthy at {pct:.0f} % ({state})"
    return [_result(name, comp, status, msg, round(pct, 1), expected, "%")]
