"""``Evidence``: the snapshots of one run and the policies in force, which checks judge.

Snapshot checks are pure functions ``Evidence -> list[DiagResult]``; nothing here does I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import msgspec

from wrale.metal.core.snapshot import Snapshot
from wrale.metal.diag.limits import DiagLimits
from wrale.shared.policy import PowerPolicy, SecurityPolicy, ThermalPolicy

SENSORS = ("cpu", "gpu", "ambient")


class Evidence(msgspec.Struct, frozen=True):
    """Snapshots oldest first (at least one); ``sensors`` are the temperature sensors this
    board is known to have (they fail when missing; others are skipped)."""

    snapshots: tuple[Snapshot, ...]
    thermal: ThermalPolicy
    power: PowerPolicy
    security: SecurityPolicy
    limits: DiagLimits
    sensors: frozenset[str] = frozenset({"cpu"})

    def __post_init__(self) -> None:
        if not self.snapshots:
            raise ValueError("evidence needs at least one snapshot")

    @property
    def latest(self) -> Snapshot:
        return self.snapshots[-1]


def temp_of(snap: Snapshot, sensor: str) -> float | None:
    """The reading of ``sensor`` (cpu, gpu or ambient) in ``snap``, as the board gave it."""
    t = snap.thermal
    return {"cpu": t.cpu_temp_c, "gpu": t.gpu_temp_c, "ambient": t.ambient_temp_c}[sensor]


def finite(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def span(values: Iterable[float | None]) -> float:
    """max - min of the finite values (0 for fewer than two)."""
    vals = finite(values)
    return max(vals) - min(vals) if len(vals) > 1 else 0.0


def seen_sensors(snapshots: Iterable[Snapshot], limits: DiagLimits) -> set[str]:
    """Sensors that gave a plausible reading in any of ``snapshots``."""
    seen: set[str] = set()
    for snap in snapshots:
        for sensor in SENSORS:
            low, high = limits.range_of(sensor)
            value = temp_of(snap, sensor)
            if value is not None and math.isfinite(value) and low <= value <= high:
                seen.add(sensor)
    return seen
