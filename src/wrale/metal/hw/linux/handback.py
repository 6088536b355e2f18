"""Who drives the fan on a Pi 5, and handing the fan and the CPU cap back to the kernel.

The ``pwm-fan`` cooling device is bound to ``cpu-thermal`` (trips 50/60/67.5/75 °C, levels
0/75/125/175/250, bcm2712-rpi-5-b.dts) and the ``step_wise`` governor rewrites ``pwm1``
whenever a trip instance's target changes. metald takes the zone over before its first
write (``user_space`` where ``available_policies`` offers it, else ``mode=disabled``: the
Raspberry Pi kernels build only ``step_wise``) and records what it replaced first, so
``restore_kernel_control`` can undo it on stop and after a crash (``ExecStopPost=``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from wrale.metal.hw.linux.firmware import BOOT_ID, read_boot_id, read_json, write_json_atomically
from wrale.metal.hw.linux.sysfs import find_hwmon, find_thermal_zone, read_optional, write_value
from wrale.metal.hw.linux.throttle import cpufreq_policies
from wrale.shared.config import LinuxPaths
from wrale.shared.errors import ActuatorError

log = logging.getLogger("wrale.metal.hw.linux")

HANDBACK_FILE = "fan-takeover.json"
USER_SPACE = "user_space"  # drivers/thermal/gov_user_space.c: notifies userspace, drives nothing
DISABLED = "disabled"
HANDBACK_PWM = 255  # pwm-fan maps it to the top cooling state; step_wise then steps it down


@dataclass(frozen=True, slots=True)
class Takeover:
    """What metald changed on the zone: ``attribute`` (``policy`` or ``mode``) was
    ``original`` before, and became ``replaced_by``."""

    zone_type: str
    attribute: str
    original: str
    replaced_by: str
    boot_id: str | None

    def document(self) -> dict[str, object]:
        return {
            "zone_type": self.zone_type,
            "attribute": self.attribute,
            "original": self.original,
            "replaced_by": self.replaced_by,
            "boot_id": self.boot_id,
        }

    @classmethod
    def load(cls, path: Path) -> Takeover | None:
        doc = read_json(path)
        if doc is None:
            return None
        fields = [doc.get(k) for k in ("zone_type", "attribute", "original", "replaced_by")]
        boot_id = doc.get("boot_id")
        if not all(isinstance(f, str) for f in fields) or doc.get("attribute") not in (
            "policy",
            "mode",
        ):
            return None
        zone_type, attribute, original, replaced_by = (str(f) for f in fields)
        return cls(
            zone_type,
            attribute,
            original,
            replaced_by,
            boot_id if isinstance(boot_id, str) else None,
        )


class ZoneTakeover:
    """Takes the fan's thermal zone from the kernel's governor, once, before metald drives
    the fan; ``held()`` says whether metald owns the fan now (re-read from sysfs)."""

    def __init__(
        self, paths: LinuxPaths, state_dir: Path | None, boot_id_path: Path = BOOT_ID
    ) -> None:
        self._paths = paths
        self._root = paths.sysfs_root
        self._zone_type = paths.cpu_thermal_zone
        self._record = None if state_dir is None else state_dir / HANDBACK_FILE
        self._boot_id = read_boot_id(boot_id_path)
        self._lock = threading.Lock()
        self._taken: Takeover | None = None
        self.driving = False  # this process took the fan (so it hands it back on close)
        if self._record is not None:
            saved = Takeover.load(self._record)
            if saved is not None and saved.boot_id == self._boot_id:
                self._taken = saved  # metald restarted without handing back: keep the original

    def zone(self) -> Path | None:
        return find_thermal_zone(self._root, self._zone_type)

    def held(self) -> bool | None:
        """True: metald owns the fan; False: the kernel's governor does; None: no zone."""
        zone = self.zone()
        if zone is None:
            return None
        taken = self._taken
        if taken is None:
            return False
        return read_optional(zone / taken.attribute) == taken.replaced_by

    def take(self) -> None:
        """Make metald the fan's only owner (``ActuatorError`` if the zone refuses)."""
        with self._lock:
            zone = self.zone()
            if zone is None or self.held():
                self.driving = True
                return
            policies = (read_optional(zone / "available_policies") or "").split()
            if USER_SPACE in policies:
                attribute, replaced_by = "policy", USER_SPACE
            else:
                attribute, replaced_by = "mode", DISABLED
            current = read_optional(zone / attribute)
            if current is None:
                raise ActuatorError(
                    f"cannot take the fan from the kernel: {zone / attribute} is unreadable"
                )
            previous = self._taken
            original = (
                previous.original
                if previous is not None and previous.attribute == attribute
                else current
            )
            taken = Takeover(self._zone_type, attribute, original, replaced_by, self._boot_id)
            if self._record is not None:  # write-ahead: a crash after this can be undone
                try:
                    write_json_atomically(self._record, taken.document())
                except OSError as exc:
                    raise ActuatorError(
                        f"cannot record the fan takeover in {self._record}: {exc}"
                    ) from exc
            write_value(zone / attribute, replaced_by)
            self._taken = taken
            self.driving = True
            log.info(
                "fan taken from the kernel: %s %s %r -> %r",
                zone.name,
                attribute,
                original,
                replaced_by,
            )

    def hand_back(self) -> list[str]:
        """Undo the takeover (fan to full speed first, the governor steps it down) and
        forget it; returns what was restored."""
        with self._lock:
            taken, self._taken, self.driving = self._taken, None, False
            done = [] if taken is None else _hand_back_fan(self._paths, taken)
            if self._record is not None and self._record.exists():
                try:
                    self._record.unlink()
                except OSError as exc:
                    log.error("cannot remove %s: %s", self._record, exc)
            return done


def restore_kernel_control(
    paths: LinuxPaths, state_dir: Path, *, boot_id_path: Path = BOOT_ID
) -> list[str]:
    """Hand the fan back to the kernel's governor and lift the CPU cap to 100 %.

    Safe to run any number of times, after a clean stop or a crash (the unit's
    ``ExecStopPost=``). Returns what it restored; a step that fails is logged and the
    others still run.
    """
    done = ZoneTakeover(paths, state_dir, boot_id_path).hand_back()
    return done + lift_cpu_cap(paths.sysfs_root)


def _hand_back_fan(paths: LinuxPaths, taken: Takeover) -> list[str]:
    done: list[str] = []
    root = paths.sysfs_root
    fan = find_hwmon(root, paths.fan_hwmon)
    try:
        if fan is not None:
            write_value(fan / "pwm1", HANDBACK_PWM)
            done.append(f"fan at full speed ({HANDBACK_PWM}/255) for the governor to step down")
        zone = find_thermal_zone(root, taken.zone_type)
        if zone is None:
            log.error("cannot hand the fan back: no thermal zone of type %r", taken.zone_type)
            return done
        write_value(zone / taken.attribute, taken.original)
        done.append(f"thermal zone {taken.zone_type} {taken.attribute} back to {taken.original}")
    except ActuatorError as exc:
        log.error("cannot hand the fan back to the kernel: %s", exc)
    return done


def lift_cpu_cap(sysfs_root: Path) -> list[str]:
    """Every cpufreq policy's ``scaling_max_freq`` back to ``cpuinfo_max_freq``."""
    done: list[str] = []
    for policy in cpufreq_policies(sysfs_root):
        full = read_optional(policy / "cpuinfo_max_freq")
        if full is None or read_optional(policy / "scaling_max_freq") == full:
            continue
        try:
            write_value(policy / "scaling_max_freq", full)
        except ActuatorError as exc:
            log.error("cannot lift the CPU cap: %s", exc)
            continue
        done.append(f"CPU cap of {policy.name} back to {full} kHz (100 %)")
    return done
