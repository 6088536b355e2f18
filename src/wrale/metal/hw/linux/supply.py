"""One ``class/power_supply/<entry>`` directory read into plain values with SI units.

Attributes a driver does not provide read ``None`` silently; an attribute that exists but
holds garbage is logged once through ``HealthLog``. Nothing here decides policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wrale.metal.hw.linux.sysfs import HealthLog, read_text

MICRO = 1e-6  # voltage_now µV, current_now µA, power_now µW
# a gauge's learned full capacity over its design capacity (charge_* in µAh, energy_* in µWh:
# Documentation/ABI/testing/sysfs-class-power); above this the pair is not believed
MAX_HEALTH_PCT = 150.0


@dataclass(frozen=True, slots=True)
class SupplyState:
    """What one power_supply entry reports; ``None`` where the driver has no such attribute."""

    online: bool | None = None
    present: bool | None = None
    voltage_v: float | None = None
    current_a: float | None = None
    power_w: float | None = None
    capacity_pct: float | None = None
    status: str | None = None  # Charging, Discharging, Full, Not charging, Unknown
    health: str | None = None  # Good, Overheat, Dead, Unspecified failure, ...
    health_pct: float | None = None  # state of health: full / full design capacity, in %

    @property
    def rail_power_w(self) -> float | None:
        """``power_now``, else voltage times the current's magnitude."""
        if self.power_w is not None:
            return self.power_w
        if self.voltage_v is None or self.current_a is None:
            return None
        return self.voltage_v * abs(self.current_a)


def read_supply(directory: Path, health: HealthLog) -> SupplyState:
    """Every attribute of ``directory`` the board's policy may need."""
    current = _number(directory / "current_now", MICRO, health)
    return SupplyState(
        online=_flag(directory / "online", health),
        present=_flag(directory / "present", health),
        voltage_v=_number(directory / "voltage_now", MICRO, health),
        current_a=None if current is None else abs(current),  # sign conventions differ
        power_w=_number(directory / "power_now", MICRO, health),
        capacity_pct=_number(directory / "capacity", 1.0, health),
        status=_text(directory / "status", health),
        health=_text(directory / "health", health),
        health_pct=state_of_health_pct(directory, health),
    )


def state_of_health_pct(directory: Path, health: HealthLog) -> float | None:
    """100 × ``charge_full / charge_full_design`` (µAh), else the ``energy_full`` pair
    (µWh); ``None`` when the driver has neither pair or its design capacity is 0."""
    for kind in ("charge", "energy"):
        full = _number(directory / f"{kind}_full", 1.0, health)
        design = _number(directory / f"{kind}_full_design", 1.0, health)
        if full is None or design is None:
            continue
        if design <= 0 or full < 0 or 100.0 * full / design > MAX_HEALTH_PCT:
            health.failed(
                _source(directory / f"{kind}_full"),
                f"implausible {kind}_full {full:g} of design {design:g} in {directory}",
            )
            return None
        return round(100.0 * full / design, 2)
    return None


def _flag(path: Path, health: HealthLog) -> bool | None:
    value = _number(path, 1.0, health)
    return None if value is None else value != 0


def _number(path: Path, scale: float, health: HealthLog) -> float | None:
    text = _raw(path, health)
    if text is None:
        return None
    try:
        value = int(text) * scale
    except ValueError:
        health.failed(_source(path), f"garbage {text!r} in {path}")
        return None
    health.ok(_source(path))
    return value


def _text(path: Path, health: HealthLog) -> str | None:
    text = _raw(path, health)
    if text is not None:
        health.ok(_source(path))
    return text


def _raw(path: Path, health: HealthLog) -> str | None:
    try:
        return read_text(path)
    except FileNotFoundError:
        return None  # this driver has no such attribute
    except (OSError, ValueError) as exc:
        health.failed(_source(path), f"cannot read {path}: {exc}")
        return None


def _source(path: Path) -> str:
    return f"power supply {path.parent.name} {path.name}"
