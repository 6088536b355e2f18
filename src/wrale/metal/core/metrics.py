"""metald's ``/metrics`` in the Prometheus text exposition format (version 0.0.4).

Written by hand from the latest snapshot: the board keeps no metrics registry of its own.
A reading that is missing is left out rather than reported as a number.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from wrale.metal.core.snapshot import Snapshot
from wrale.metal.hw.base import PowerSource

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Reading = Callable[[Snapshot], float | bool | None]

GAUGES: tuple[tuple[str, str, Reading], ...] = (
    ("wrale_cpu_temp_celsius", "CPU temperature.", lambda s: s.thermal.cpu_temp_c),
    ("wrale_gpu_temp_celsius", "GPU temperature.", lambda s: s.thermal.gpu_temp_c),
    ("wrale_ambient_temp_celsius", "Ambient temperature.", lambda s: s.thermal.ambient_temp_c),
    ("wrale_fan_duty_percent", "Fan duty commanded, 0-100.", lambda s: s.decision.fan_pct),
    ("wrale_fan_rpm", "Fan speed from the tachometer.", lambda s: s.fan.rpm),
    ("wrale_throttled", "1 while the CPU frequency is capped.", lambda s: s.decision.throttled),
    (
        "wrale_max_freq_percent",
        "CPU frequency cap in percent of full speed.",
        lambda s: s.decision.max_freq_pct,
    ),
    ("wrale_power_watts", "Power drawn by the board.", lambda s: s.power.power_w),
    (
        "wrale_supply_voltage_volts",
        "Voltage of the board's supply rail.",
        lambda s: s.power.voltage_v,
    ),
    ("wrale_battery_percent", "Battery charge.", lambda s: s.power.battery_pct),
    (
        "wrale_on_battery",
        "1 while the board runs on its battery.",
        lambda s: s.power.source is PowerSource.BATTERY,
    ),
    (
        "wrale_tamper_lockdown",
        "1 while a tamper lockdown refuses actuator commands.",
        lambda s: s.security.lockdown,
    ),
    ("wrale_case_open", "1 while the case switch reads open.", lambda s: s.tamper.case_open),
)


def _value(value: float | bool) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(snapshot: Snapshot | None, http_requests: Mapping[tuple[str, int], int]) -> str:
    """The exposition text: HELP and TYPE for every metric, then its samples."""
    lines: list[str] = []
    for name, help_text, read in GAUGES:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        value = None if snapshot is None else read(snapshot)
        if value is not None and (isinstance(value, bool) or math.isfinite(value)):
            lines.append(f"{name} {_value(value)}")
    lines += [
        "# HELP wrale_samples_total Sampling steps taken since metald started.",
        "# TYPE wrale_samples_total counter",
        f"wrale_samples_total {0 if snapshot is None else snapshot.seq}",
        "# HELP wrale_http_requests_total HTTP responses sent, by method and status code.",
        "# TYPE wrale_http_requests_total counter",
    ]
    for (method, code), count in sorted(http_requests.items()):
        lines.append(
            f'wrale_http_requests_total{{method="{_label(method)}",code="{code}"}} {count}'
        )
    return "\n".join(lines) + "\n"
