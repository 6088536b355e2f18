"""CPU frequency cap through cpufreq ``policy*/scaling_max_freq``, and the firmware's flags.

The cap is a share of ``cpuinfo_max_freq``; the kernel clamps ``scaling_max_freq`` to
``cpuinfo_min_freq`` (a Pi 5: 1.5 of 2.4 GHz = 62.5 %), so that floor is reported as
``min_freq_pct``, a lower cap is written as the floor, and an unchanged cap writes nothing.
"""

from __future__ import annotations

import math
from pathlib import Path

from wrale.metal.hw.base import ThrottleReading
from wrale.metal.hw.linux.firmware import FirmwareFlags
from wrale.metal.hw.linux.sysfs import HealthLog, Locator, read_int, write_value
from wrale.shared.clock import Clock
from wrale.shared.config import LinuxPaths
from wrale.shared.errors import ActuatorError, InvalidRequestError, UnsupportedError

CPUFREQ = "devices/system/cpu/cpufreq"
MIN_CAP_PCT = 10.0


def cpufreq_policies(sysfs_root: Path) -> tuple[Path, ...]:
    return tuple(sorted(sysfs_root.glob(f"{CPUFREQ}/policy*")))


class LinuxThrottle:
    """``max_freq_pct`` from cpufreq (lowest policy), its floor, and the firmware's flags."""

    def __init__(
        self, paths: LinuxPaths, flags: FirmwareFlags, clock: Clock, health: HealthLog
    ) -> None:
        root = paths.sysfs_root
        self._cpufreq = root / CPUFREQ
        self._policies = Locator(lambda: cpufreq_policies(root), clock)
        self._flags = flags
        self._health = health
        self.capped = False  # this process wrote a cap (so it lifts it on close)

    def read_throttle(self) -> ThrottleReading:
        cap, floor = self._shares()
        return ThrottleReading.from_bits(self._flags.bits() or 0, cap, floor)

    def set_max_freq(self, percent: float) -> None:
        if not math.isfinite(percent) or not MIN_CAP_PCT <= percent <= 100:
            raise InvalidRequestError(
                f"frequency cap must be {MIN_CAP_PCT:g}-100 %, got {percent}", max_freq_pct=percent
            )
        policies = self._policies.all()
        if not policies:
            raise UnsupportedError(f"no cpufreq policies under {self._cpufreq}")
        for policy in policies:
            try:
                full = read_int(policy / "cpuinfo_max_freq")
            except (OSError, ValueError) as exc:
                raise ActuatorError(f"cannot read {policy / 'cpuinfo_max_freq'}: {exc}") from exc
            target = round(full * percent / 100)
            floor = _read_or_none(policy / "cpuinfo_min_freq")
            if floor is not None:
                target = max(target, floor)  # what the kernel would clamp it to anyway
            if _read_or_none(policy / "scaling_max_freq") != target:
                self.capped = True
                write_value(policy / "scaling_max_freq", target)

    def _shares(self) -> tuple[float, float]:
        """(cap in force, floor) in % of full speed, the lowest cap over the policies."""
        source = f"CPU frequency cap ({self._cpufreq})"
        caps: list[float] = []
        floors: list[float] = []
        errors = []
        for policy in self._policies.all():
            try:
                full = read_int(policy / "cpuinfo_max_freq")
                cap = read_int(policy / "scaling_max_freq")
            except (OSError, ValueError) as exc:
                errors.append(f"cannot read {policy}: {exc}")
                continue
            if full <= 0:
                continue
            caps.append(min(100.0, cap * 100 / full))
            floor = _read_or_none(policy / "cpuinfo_min_freq")
            if floor is not None:
                floors.append(min(100.0, floor * 100 / full))
        if errors:
            self._health.failed(source, "; ".join(errors))
        elif not caps:
            self._health.absent(source, "no cpufreq policy; reporting 100 %")
        else:
            self._health.ok(source)
        cap_pct = round(min(caps), 2) if caps else 100.0
        floor_pct = round(max(floors), 2) if floors else 0.0
        return cap_pct, floor_pct


def _read_or_none(path: Path) -> int | None:
    try:
        return read_int(path)
    except (OSError, ValueError):
        return None
