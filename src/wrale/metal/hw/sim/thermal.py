"""Two-node thermal model of a Raspberry Pi 5 and the temperature sensors it really has.

The die (small heat capacity) sits on a heat sink or the bare board (large capacity) that
loses heat to the air, more of it as the fan turns; each sub-step is solved exactly. A Pi 5
has one ``cpu-thermal`` zone: no GPU sensor, and an ambient sensor only on a HAT.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import msgspec

from wrale.metal.hw.base import ThermalReading
from wrale.metal.hw.sim.faults import SensorFailure
from wrale.metal.hw.sim.runtime import Noise, Runtime

IDLE_W = 2.7  # Pi 5 at 0 % load
CPU_MAX_W = 4.3  # extra at 100 % load and full clock: 7.0 W in all
AIRFLOW_EXPONENT = 0.8
AMBIENT_HAT_C_PER_W = 0.3  # a HAT sensor above the board is warmed by it
NOISE_SIGMA_C = 0.08
NOISE_LIMIT_C = 0.2


class Cooling(msgspec.Struct, frozen=True):
    """What the die is bolted to: capacities (J/K) and conductances (W/K) of the two nodes.

    Fitted to published Pi 5 figures at 25 °C (see tests/metal/hw/test_sim_reference.py).
    """

    name: str
    die_j_per_k: float  # BCM2712 die and package
    die_to_sink_w_per_k: float  # through the thermal pad (or into the board)
    sink_j_per_k: float  # heat sink with the board under it, or the bare board
    sink_passive_w_per_k: float  # sink to air, fan stopped
    sink_fan_w_per_k: float  # added at full airflow (0: no fan fitted)

    @property
    def has_fan(self) -> bool:
        return self.sink_fan_w_per_k > 0

    def sink_to_air_w_per_k(self, airflow: float) -> float:
        """Sink-to-air conductance for an airflow fraction 0-1 of the fan's maximum."""
        airflow = min(1.0, max(0.0, airflow))
        return self.sink_passive_w_per_k + self.sink_fan_w_per_k * math.pow(
            airflow, AIRFLOW_EXPONENT
        )

    def steady_c(self, ambient_c: float, heat_w: float, airflow: float) -> tuple[float, float]:
        """(die, sink) temperatures where the board settles with constant heat and airflow."""
        sink = ambient_c + heat_w / self.sink_to_air_w_per_k(airflow)
        return sink + heat_w / self.die_to_sink_w_per_k, sink


ACTIVE_COOLER = Cooling("active_cooler", 2.0, 1 / 2.5, 15.0, 1 / 7.0, 0.15)
BARE_BOARD = Cooling("none", 2.0, 1 / 2.5, 15.0, 1 / 10.5, 0.0)


def demand_w(load_pct: float, max_freq_pct: float, extra_w: float = 0.0) -> float:
    """Power the board draws when powered: idle + CPU share (scaled by the clock cap)."""
    return IDLE_W + CPU_MAX_W * (load_pct / 100.0) * (max_freq_pct / 100.0) + extra_w


def relax(
    x: tuple[float, float], a: float, b: float, c: float, d: float, dt_s: float
) -> tuple[float, float]:
    """``exp(A dt) x`` for A = [[a, b], [c, d]] with real eigenvalues (a passive RC network)."""
    half_tr = (a + d) / 2
    disc = math.sqrt(max(0.0, half_tr * half_tr - (a * d - b * c)))
    l1, l2 = half_tr + disc, half_tr - disc
    e1, e2 = math.exp(l1 * dt_s), math.exp(l2 * dt_s)
    if disc < 1e-12:  # repeated eigenvalue: exp(A t) = e^{lt} (I + (A - l I) t)
        return (
            e1 * (x[0] + ((a - l1) * x[0] + b * x[1]) * dt_s),
            e1 * (x[1] + (c * x[0] + (d - l1) * x[1]) * dt_s),
        )
    k1, k2 = e1 / (l1 - l2), e2 / (l1 - l2)
    return (
        k1 * ((a - l2) * x[0] + b * x[1]) - k2 * ((a - l1) * x[0] + b * x[1]),
        k1 * (c * x[0] + (d - l2) * x[1]) - k2 * (c * x[0] + (d - l1) * x[1]),
    )


class SimThermal:
    """The die and sink temperatures (advanced by the board) and the sensors the core reads."""

    def __init__(
        self,
        rt: Runtime,
        noise: Noise,
        *,
        cooling: Cooling,
        ambient_c: float,
        heat_w: float,
        airflow: float,
        ambient_sensor: bool = False,
    ) -> None:
        self._rt = rt
        self._noise = noise
        self.cooling = cooling
        self.ambient_c = ambient_c
        self.heat_w = heat_w
        self.temp_c, self.sink_c = cooling.steady_c(ambient_c, heat_w, airflow)
        self.ambient_sensor = ambient_sensor
        self.failures: Mapping[str, SensorFailure] = {}

    def sensors(self) -> tuple[str, ...]:
        """The sensors this board has: the SoC's, plus the ambient one a HAT brings."""
        return ("cpu", "ambient") if self.ambient_sensor else ("cpu",)

    def step(self, dt_s: float, airflow: float) -> None:
        """Advance ``dt_s`` seconds with constant heat, airflow and ambient (exact solution)."""
        cool = self.cooling
        g_ds, g_sa = cool.die_to_sink_w_per_k, cool.sink_to_air_w_per_k(airflow)
        die_ss, sink_ss = cool.steady_c(self.ambient_c, self.heat_w, airflow)
        c_die, c_sink = cool.die_j_per_k, cool.sink_j_per_k
        x = relax(
            (self.temp_c - die_ss, self.sink_c - sink_ss),
            -g_ds / c_die,
            g_ds / c_die,
            g_ds / c_sink,
            -(g_ds + g_sa) / c_sink,
            dt_s,
        )
        self.temp_c, self.sink_c = die_ss + x[0], sink_ss + x[1]

    def true_c(self, sensor: str) -> float | None:
        if sensor == "cpu":
            return self.temp_c
        if sensor == "ambient" and self.ambient_sensor:
            return self.ambient_c + AMBIENT_HAT_C_PER_W * self.heat_w
        return None

    def sense(self, sensor: str) -> float | None:
        """What ``sensor`` reads now: true value plus noise, or what its failure makes it read."""
        true = self.true_c(sensor)
        if true is None:
            return None
        failure = self.failures.get(sensor)
        if failure is not None:
            return failure.value_c
        return true + self._noise.gauss(NOISE_SIGMA_C, NOISE_LIMIT_C)

    def read_thermal(self) -> ThermalReading:
        with self._rt.reading():
            return ThermalReading(
                cpu_temp_c=self.sense("cpu"), ambient_temp_c=self.sense("ambient")
            )
