"""The tests a board can run, in the order they run and are reported.

Snapshot tests name their pure check; active tests are run by the service itself.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from wrale.metal.diag import power, security, thermal
from wrale.metal.diag.evidence import Evidence
from wrale.metal.diag.result import DiagResult, DiagType

Check = Callable[[Evidence], list[DiagResult]]
FAN_SPIN_UP = "fan_spin_up"
GPIO_LOOPBACK = "gpio_loopback"


class DiagSpec(msgspec.Struct, frozen=True):
    name: str
    type: DiagType
    description: str
    check: Check | None = None  # None: an active test
    series: bool = True  # judges a series of samples; else one fresh sample is enough


CATALOG: tuple[DiagSpec, ...] = (
    DiagSpec(
        "sensor_range",
        DiagType.THERMAL,
        "each temperature sensor reads a plausible value",
        thermal.sensor_range,
    ),
    DiagSpec(
        "sensor_stuck",
        DiagType.THERMAL,
        "no sensor repeats one value while the fan or load changes",
        thermal.sensor_stuck,
    ),
    DiagSpec(
        "sensor_agreement",
        DiagType.THERMAL,
        "CPU and GPU agree; ambient is not above the CPU",
        thermal.sensor_agreement,
    ),
    DiagSpec(
        "throttle_flags",
        DiagType.THERMAL,
        "no firmware under-voltage or throttling",
        thermal.throttle_flags,
        series=False,
    ),
    DiagSpec(FAN_SPIN_UP, DiagType.THERMAL, "the fan spins up at 100 % and cools"),
    DiagSpec(
        "power_rail",
        DiagType.POWER,
        "rail voltage, ripple and the source in use",
        power.power_rail,
    ),
    DiagSpec(
        "battery",
        DiagType.POWER,
        "battery present, healthy and charged",
        power.battery,
        series=False,
    ),
    DiagSpec(
        "tamper_sensors",
        DiagType.SECURITY,
        "tamper inputs present, readable and quiet",
        security.tamper_sensors,
        series=False,
    ),
    DiagSpec(GPIO_LOOPBACK, DiagType.GPIO, "each loopback input follows its output"),
)
BY_NAME = {spec.name: spec for spec in CATALOG}
