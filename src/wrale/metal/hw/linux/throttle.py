"""CPU frequency cap through cpufreq ``policy*/scaling_max_freq``, and the firmware's flags.

The cap is written to every policy as a share of ``cpuinfo_max_freq`` (never below
``cpuinfo_min_freq``, which the kernel would clamp to anyway) and read back the same way.
"""

from __future__ import annotations

import contextlib
import math

from wrale.metal.hw.base import ThrottleReading
from wrale.metal.hw.linux.firmware import FirmwareFlags
from wrale.metal.hw.linux.sysfs import HealthLog, Locator, read_int, write_value
from wrale.shared.clock import Clock
from wrale.shared.config import LinuxPaths
from wrale.shared.errors import ActuatorError, InvalidRequestError, UnsupportedError

CPUFREQ = "devices/system/cpu/cpufreq"
MIN_CAP_PCT = 10.0


class LinuxThrottle:
    """``max_freq_pct`` from cpufreq (lowest policy) plus the ``get_throttled`` flags."""

    def __init__(
        self, paths: LinuxPaths, flags: FirmwareFlags, clock: Clock, health: HealthLog
    ) -> None:
        root = paths.sysfs_root
        self._cpufreq = root / CPUFREQ
        self._policies = Locator(lambda: tuple(sorted(root.glob(f"{CPUFREQ}/policy*"))), clock)
        self._flags = flags
        self._health = health

    def read_throttle(self) -> ThrottleReading:
        return ThrottleReading.from_bits(self._flags.bits() or 0, self._max_freq_pct())

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
            with contextlib.suppress(OSError, ValueError):  # no floor known: kernel clamps
                target = max(target, read_int(policy / "cpuinfo_min_freq"))
            write_value(policy / "scaling_max_freq", target)

    def _max_freq_pct(self) -> float:
        source = f"CPU frequency cap ({self._cpufreq})"
        shares, errors = [], []
        for policy in self._policies.all():
            try:
                full = read_int(policy / "cpuinfo_max_freq")
                cap = read_int(policy / "scaling_max_freq")
            except (OSError, ValueError) as exc:
                errors.append(f"cannot read {policy}: {exc}")
                continue
            if full > 0:
                shares.append(min(100.0, cap * 100 / full))
        if errors:
            self._health.failed(source, "; ".join(errors))
        elif not shares:
            self._health.absent(source, "no cpufreq policy; reporting 100 %")
        else:
            self._health.ok(source)
        return round(min(shares), 2) if shares else 100.0
