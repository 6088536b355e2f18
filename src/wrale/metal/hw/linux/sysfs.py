"""Small helpers over sysfs files: read and parse values, write them, find a device by name.

Paths always come from the caller (rooted at ``LinuxPaths.sysfs_root``); nothing here
hard-codes ``/sys``. ``HealthLog`` logs a source once when it fails and once when it recovers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from wrale.shared.clock import Clock
from wrale.shared.errors import ActuatorError

log = logging.getLogger("wrale.metal.hw.linux")

RESCAN_INTERVAL_S = 30.0  # a missing device is looked for again at most this often
SYS = Path("/sys")


def read_text(path: Path) -> str:
    """The stripped ASCII content of a sysfs attribute (``OSError``/``ValueError`` on failure)."""
    return path.read_text(encoding="ascii").strip().rstrip("\x00").strip()


def read_int(path: Path) -> int:
    return int(read_text(path))


def read_optional(path: Path) -> str | None:
    """The attribute's text, or ``None`` when it is missing or unreadable."""
    try:
        return read_text(path)
    except (OSError, ValueError):
        return None


def write_value(path: Path, value: int | str) -> None:
    """Write one attribute in a single ``write``; failures are ``ActuatorError`` naming the path."""
    try:
        with path.open("w", encoding="ascii") as handle:
            handle.write(str(value))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ActuatorError(f"cannot write {value!r} to {path}: {reason}", path=str(path)) from exc


def under_root(sysfs_root: Path, path: Path) -> Path:
    """Resolve a configured path: ``/sys/...`` and relative paths live under ``sysfs_root``."""
    if not path.is_absolute():
        return sysfs_root / path
    if sysfs_root != SYS and path.is_relative_to(SYS):
        return sysfs_root / path.relative_to(SYS)
    return path


def find_named(sysfs_root: Path, pattern: str, name_file: str, wanted: str) -> Path | None:
    """The first directory matching ``pattern`` whose ``name_file`` holds ``wanted``."""
    for directory in sorted(sysfs_root.glob(pattern)):
        try:
            if read_text(directory / name_file) == wanted:
                return directory
        except (OSError, ValueError):
            continue
    return None


def find_hwmon(sysfs_root: Path, name: str) -> Path | None:
    return find_named(sysfs_root, "class/hwmon/hwmon*", "name", name)


def find_thermal_zone(sysfs_root: Path, zone_type: str) -> Path | None:
    return find_named(sysfs_root, "class/thermal/thermal_zone*", "type", zone_type)


class Locator:
    """Paths found by a scan, cached; scanned again when they vanish, at most every 30 s."""

    def __init__(
        self,
        scan: Callable[[], tuple[Path, ...]],
        clock: Clock,
        *,
        interval_s: float = RESCAN_INTERVAL_S,
    ) -> None:
        self._scan = scan
        self._clock = clock
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._paths = scan()
        self._scanned_at = clock.monotonic()

    @classmethod
    def single(cls, scan: Callable[[], Path | None], clock: Clock) -> Locator:
        return cls(lambda: _as_tuple(scan()), clock)

    def all(self) -> tuple[Path, ...]:
        with self._lock:
            if self._paths and all(p.exists() for p in self._paths):
                return self._paths
            vanished = bool(self._paths)
            now = self._clock.monotonic()
            if vanished or now - self._scanned_at >= self._interval_s:
                self._paths = self._scan()
                self._scanned_at = now
            return self._paths

    def one(self) -> Path | None:
        paths = self.all()
        return paths[0] if paths else None


def _as_tuple(path: Path | None) -> tuple[Path, ...]:
    return () if path is None else (path,)


class HealthLog:
    """Per-source availability: a warning when a source fails, one info line when it recovers."""

    def __init__(self) -> None:
        self._failing: set[str] = set()
        self._lock = threading.Lock()

    def failed(self, source: str, reason: str) -> None:
        with self._lock:
            if source in self._failing:
                return
            self._failing.add(source)
        log.warning("%s unavailable: %s", source, reason)

    def absent(self, source: str, reason: str) -> None:
        """An optional interface this board does not have: one info line, not a warning."""
        with self._lock:
            if source in self._failing:
                return
            self._failing.add(source)
        log.info("%s not available: %s", source, reason)

    def ok(self, source: str) -> None:
        with self._lock:
            if source not in self._failing:
                return
            self._failing.discard(source)
        log.info("%s recovered", source)

    def failing(self, source: str) -> bool:
        return source in self._failing


def read_scaled(
    health: HealthLog,
    source: str,
    path: Path | None,
    scale: float,
    valid: Callable[[float], bool] = lambda _: True,
) -> float | None:
    """``int(file) * scale``, or ``None`` (logged through ``health``) when missing or garbage."""
    if path is None:
        health.failed(source, "device not found")
        return None
    try:
        value = read_int(path) * scale
    except FileNotFoundError:
        health.failed(source, f"{path} does not exist")
        return None
    except (OSError, ValueError) as exc:
        health.failed(source, f"cannot read {path}: {exc}")
        return None
    if not valid(value):
        health.failed(source, f"implausible value {value:g} from {path}")
        return None
    health.ok(source)
    return value
