"""``DiagLimits``: the thresholds diagnostics judge by, beyond the board's own policies.

Data only. Thermal, power and security limits come from the core's policy documents.
"""

from __future__ import annotations

import msgspec

from wrale.shared.errors import ConfigError


class DiagLimits(msgspec.Struct, frozen=True):
    """Plausible sensor ranges, sampling, and what counts as stuck, low or disagreeing."""

    cpu_range_c: tuple[float, float] = (-40.0, 125.0)  # silicon junction limits
    gpu_range_c: tuple[float, float] = (-40.0, 125.0)
    ambient_range_c: tuple[float, float] = (-40.0, 85.0)
    samples: int = 3  # fresh snapshots the snapshot checks need, besides the current one
    stuck_samples: int = 4  # identical readings needed to call a sensor stuck
    stuck_tolerance_c: float = 0.0  # readings this close count as identical
    stuck_fan_delta_rpm: float = 500.0  # the fan "changed" when its RPM moved this much
    stuck_fan_delta_pct: float = 10.0  # ... or its duty moved this much
    stuck_power_delta_w: float = 0.5  # the load "changed" when the draw moved this much
    disagreement_c: float = 10.0  # CPU vs GPU (and ambient above CPU)
    voltage_tolerance_pct: float = 5.0  # around the policy's nominal rail voltage
    fan_test_s: float = 3.0  # how long the fan runs at 100 % (a fan spins up in 1-2 s)
    fan_full_rpm: float | None = None  # expected RPM at 100 %; None: learned on this board
    fan_low_ratio: float = 0.7  # below this share of the expected RPM: WARNING
    fan_temp_min_s: float = 3.0  # the temperature is judged only after this long
    fan_temp_rise_c: float = 1.0  # a rise beyond this at 100 % fan: WARNING
    gpio_settle_s: float = 0.01  # between driving a loopback output and reading its input

    def __post_init__(self) -> None:
        for name in ("cpu_range_c", "gpu_range_c", "ambient_range_c"):
            low, high = getattr(self, name)
            if not low < high:
                raise ConfigError(f"diagnostics: {name} must be (low, high) with low < high")
        if self.samples < 1 or self.stuck_samples < 2:
            raise ConfigError("diagnostics: need samples >= 1 and stuck_samples >= 2")
        if not 0.0 < self.fan_low_ratio <= 1.0:
            raise ConfigError("diagnostics: fan_low_ratio must be in (0, 1]")
        if self.fan_test_s <= 0 or self.gpio_settle_s < 0:
            raise ConfigError("diagnostics: fan_test_s must be > 0 and gpio_settle_s >= 0")

    def range_of(self, sensor: str) -> tuple[float, float]:
        ranges = {"cpu": self.cpu_range_c, "gpu": self.gpu_range_c}
        return ranges.get(sensor, self.ambient_range_c)
