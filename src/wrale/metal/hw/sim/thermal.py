"""Lumped thermal model of the SoC and its temperature sensors (CPU, GPU, ambient).

One thermal mass C heated by the board's power draw and cooled towards ambient through
G = G_passive + G_fan * airflow^0.8; each sub-step uses the exact exponential solution.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from wrale.metal.hw.base import ThermalReading
from wrale.metal.hw.sim.faults import SensorFailure
from wrale.metal.hw.sim.runtime import Noise, Runtime

IDLE_W = 2.7  # Pi 5 at 0 % load
CPU_MAX_W = 4.3  # extra at 100 % load and full clock: 7.0 W in all
THERMAL_MASS_J_PER_K = 18.0  # SoC, heat sink and board around it
G_PASSIVE_W_PER_K = 1 / 11  # no airflow
G_FAN_W_PER_K = 0.16  # added by the active cooler at full airflow
AIRFLOW_EXPONENT = 0.8
GPU_OFFSET_C = -1.5
AMBIENT_SENSOR_C_PER_W = 0.3  # the on-board ambient sensor is warmed by the board
NOISE_SIGMA_C = 0.08
NOISE_LIMIT_C = 0.2


def demand_w(load_pct: float, max_freq_pct: float, extra_w: float = 0.0) -> float:
    """Power the board draws when powered: idle + CPU share (scaled by the clock cap)."""
    return IDLE_W + CPU_MAX_W * (load_pct / 100.0) * (max_freq_pct / 100.0) + extra_w


def conductance_w_per_k(airflow: float) -> float:
    """Heat conductance to ambient for an airflow fraction 0-1 of the fan's maximum."""
    airflow = min(1.0, max(0.0, airflow))
    return G_PASSIVE_W_PER_K + G_FAN_W_PER_K * math.pow(airflow, AIRFLOW_EXPONENT)


def steady_temp_c(ambient_c: float, heat_w: float, airflow: float) -> float:
    """Where the SoC settles with constant heat and airflow."""
    return ambient_c + heat_w / conductance_w_per_k(airflow)


class SimThermal:
    """The SoC's thermal mass (advanced by the board) and its sensors (read by the core)."""

    def __init__(self, rt: Runtime, noise: Noise, *, temp_c: float, ambient_c: float) -> None:
        self._rt = rt
        self._noise = noise
        self.temp_c = temp_c
        self.ambient_c = ambient_c
        self.heat_w = 0.0
        self.failures: Mapping[str, SensorFailure] = {}

    def step(self, dt_s: float, conductance: float) -> None:
        """Advance ``dt_s`` seconds with constant heat, conductance and ambient."""
        target = self.ambient_c + self.heat_w / conductance
        decay = math.exp(-conductance * dt_s / THERMAL_MASS_J_PER_K)
        self.temp_c = target + (self.temp_c - target) * decay

    def true_c(self, sensor: str) -> float:
        if sensor == "cpu":
            return self.temp_c
        if sensor == "gpu":
            return self.temp_c + GPU_OFFSET_C
        return self.ambient_c + AMBIENT_SENSOR_C_PER_W * self.heat_w

    def sense(self, sensor: str) -> float | None:
        """What ``sensor`` reads now: true value plus noise, or what its failure makes it read."""
        failure = self.failures.get(sensor)
        if failure is not None:
            return failure.value_c
        return self.true_c(sensor) + self._noise.gauss(NOISE_SIGMA_C, NOISE_LIMIT_C)

    def read_thermal(self) -> ThermalReading:
        with self._rt.reading():
            return ThermalReading(
                cpu_temp_c=self.sense("cpu"),
                gpu_temp_c=self.sense("gpu"),
                ambient_temp_c=self.sense("ambient"),
            )
