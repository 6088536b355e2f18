"""Temperatures from ``thermal_zone*/temp`` (CPU, GPU) and an hwmon ``temp1_input`` (ambient).

Zones are found by ``type`` and hwmon devices by ``name``, never by number. A missing or
garbled sensor reads ``None``; it never raises.
"""

from __future__ import annotations

import math

from wrale.metal.hw.base import ThermalReading
from wrale.metal.hw.linux.sysfs import (
    HealthLog,
    Locator,
    find_hwmon,
    find_thermal_zone,
    read_scaled,
)
from wrale.shared.clock import Clock
from wrale.shared.config import LinuxPaths

MILLI = 1e-3
PLAUSIBLE_C = (-60.0, 200.0)  # outside this a reading is a sensor fault, not a temperature


def plausible_c(celsius: float) -> bool:
    return math.isfinite(celsius) and PLAUSIBLE_C[0] <= celsius <= PLAUSIBLE_C[1]


class LinuxThermal:
    """CPU (required), GPU and ambient temperatures in °C."""

    def __init__(self, paths: LinuxPaths, clock: Clock, health: HealthLog) -> None:
        root = paths.sysfs_root
        self._health = health
        cpu_zone, gpu_zone = paths.cpu_thermal_zone, paths.gpu_thermal_zone
        ambient = paths.ambient_hwmon
        self._cpu = Locator.single(lambda: find_thermal_zone(root, cpu_zone), clock)
        self._gpu = (
            Locator.single(lambda: find_thermal_zone(root, gpu_zone), clock) if gpu_zone else None
        )
        self._ambient = (
            Locator.single(lambda: find_hwmon(root, ambient), clock) if ambient else None
        )
        self._names = (
            f"CPU temperature (thermal zone {cpu_zone!r})",
            f"GPU temperature (thermal zone {gpu_zone!r})",
            f"ambient temperature (hwmon {ambient!r})",
        )

    def read_thermal(self) -> ThermalReading:
        return ThermalReading(
            cpu_temp_c=self._read(self._names[0], self._cpu, "temp"),
            gpu_temp_c=self._read(self._names[1], self._gpu, "temp"),
            ambient_temp_c=self._read(self._names[2], self._ambient, "temp1_input"),
        )

    def _read(self, source: str, where: Locator | None, attribute: str) -> float | None:
        if where is None:
            return None  # not configured: the board has no such sensor
        directory = where.one()
        path = None if directory is None else directory / attribute
        return read_scaled(self._health, source, path, MILLI, plausible_c)
