"""Power sources from ``class/power_supply`` entries, and the board's own shutdown.

A Linux board cannot switch supplies in software: ``select_source`` only records the
preference. ``request_shutdown`` runs the configured command (argv, no shell, timeout).
"""

from __future__ import annotations

import logging
import shlex
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from wrale.metal.hw.base import PowerReading, PowerSource, SourceReading
from wrale.metal.hw.linux.supply import SupplyState, read_supply
from wrale.metal.hw.linux.sysfs import HealthLog, Locator
from wrale.shared.clock import Clock
from wrale.shared.config import LinuxPaths
from wrale.shared.errors import ActuatorError, ConfigError

log = logging.getLogger("wrale.metal.hw.linux")

SUPPLY_CLASS = "class/power_supply"
SHUTDOWN_TIMEOUT_S = 30.0
HEALTHY = frozenset({"Good", "Unknown"})  # "Unknown": the driver cannot tell, not a fault

RunCommand = Callable[[Sequence[str]], None]


def run_command(argv: Sequence[str]) -> None:
    """Run ``argv`` without a shell; any failure is an ``ActuatorError``."""
    try:
        subprocess.run(  # noqa: S603 - argv from the operator's settings, never a shell
            list(argv), check=True, timeout=SHUTDOWN_TIMEOUT_S, capture_output=True
        )
    except subprocess.CalledProcessError as exc:
        stderr = exc.stderr.decode(errors="replace").strip() if exc.stderr else ""
        raise ActuatorError(f"{shlex.join(argv)} failed ({exc.returncode}): {stderr}") from exc
    except (OSError, subprocess.SubprocessError) as exc:
        raise ActuatorError(f"{shlex.join(argv)} could not run: {exc}") from exc


class LinuxPower:
    """Maps ``LinuxPaths.power_supplies`` (main, battery, solar) to a ``PowerReading``.

    Without a mapping the board has only its main supply, present and of unknown voltage
    (a bare Pi 5 measures none in sysfs; under-voltage shows in throttle and tamper).
    An unmapped main supply is inferred available unless a mapped battery discharges.
    """

    def __init__(
        self,
        paths: LinuxPaths,
        clock: Clock,
        health: HealthLog,
        *,
        run: RunCommand | None = None,
    ) -> None:
        root = paths.sysfs_root / SUPPLY_CLASS
        self._health = health
        self._entries: dict[PowerSource, tuple[str, Locator]] = {}
        for key, entry in paths.power_supplies.items():
            try:
                source = PowerSource(key)
            except ValueError:
                raise ConfigError(
                    f"setting 'linux.power_supplies': unknown source {key!r} "
                    f"(expected {', '.join(s.value for s in PowerSource)})",
                    source=key,
                ) from None
            self._entries[source] = (entry, Locator.single(_existing(root / entry), clock))
        if not paths.shutdown_command:
            raise ConfigError("setting 'linux.shutdown_command' must not be empty")
        self._shutdown_command = tuple(paths.shutdown_command)
        self._run = run or run_command
        self.preferred_source: PowerSource | None = None
        self.shutdown_requests: list[str] = []

    def read_power(self) -> PowerReading:
        states = {source: self._read(source) for source in self._entries}
        available = {source: _available(source, state) for source, state in states.items()}
        if PowerSource.MAIN not in states:
            battery = states.get(PowerSource.BATTERY)
            available[PowerSource.MAIN] = not (battery and battery.status == "Discharging")
        active = _active(available, states)
        rail = states.get(active) or SupplyState()
        battery = states.get(PowerSource.BATTERY)
        return PowerReading(
            source=active,
            voltage_v=rail.voltage_v,
            current_a=rail.current_a,
            power_w=rail.rail_power_w,
            battery_pct=None if battery is None else battery.capacity_pct,
            battery_charging=battery is not None and battery.status == "Charging",
            battery_healthy=_battery_healthy(PowerSource.BATTERY in states, battery),
            sources=tuple(
                SourceReading(
                    source=source,
                    available=is_available,
                    voltage_v=_state(states, source).voltage_v,
                    power_w=_state(states, source).rail_power_w,
                )
                for source, is_available in sorted(available.items())
            ),
        )

    def select_source(self, source: PowerSource) -> None:
        """Record the preference only: supplies on a Linux board switch in hardware."""
        self.preferred_source = PowerSource(source)
        log.info(
            "power source %s preferred; the hardware decides which supply feeds the board", source
        )

    def request_shutdown(self, reason: str) -> None:
        log.warning(
            "shutdown requested (%s): running %s", reason, shlex.join(self._shutdown_command)
        )
        self.shutdown_requests.append(reason)
        self._run(self._shutdown_command)

    def _read(self, source: PowerSource) -> SupplyState | None:
        entry, where = self._entries[source]
        name = f"{source.value} power supply ({entry!r})"
        directory = where.one()
        if directory is None:
            self._health.failed(name, f"no {SUPPLY_CLASS}/{entry}")
            return None
        self._health.ok(name)
        return read_supply(directory, self._health)


def _existing(path: Path) -> Callable[[], Path | None]:
    return lambda: path if path.is_dir() else None


def _state(states: dict[PowerSource, SupplyState | None], source: PowerSource) -> SupplyState:
    return states.get(source) or SupplyState()


def _available(source: PowerSource, state: SupplyState | None) -> bool:
    if state is None:
        return False
    if source is PowerSource.BATTERY:
        has_charge = state.capacity_pct is None or state.capacity_pct > 0
        return state.present is not False and state.online is not False and has_charge
    if state.online is not None:
        return state.online
    return state.present is not False


def _active(
    available: dict[PowerSource, bool], states: dict[PowerSource, SupplyState | None]
) -> PowerSource:
    """Main if it is up; else a battery that is supplying; else solar; else any battery."""
    if available.get(PowerSource.MAIN):
        return PowerSource.MAIN
    battery = states.get(PowerSource.BATTERY)
    if (
        available.get(PowerSource.BATTERY)
        and battery
        and (battery.online or battery.status == "Discharging")
    ):
        return PowerSource.BATTERY
    if available.get(PowerSource.SOLAR):
        return PowerSource.SOLAR
    if available.get(PowerSource.BATTERY):
        return PowerSource.BATTERY
    return PowerSource.MAIN  # nothing reports power, yet the board runs: assume its main supply


def _battery_healthy(configured: bool, battery: SupplyState | None) -> bool:
    """No battery: healthy. A configured battery that cannot be read is not to be relied on."""
    if not configured:
        return True
    return battery is not None and (battery.health is None or battery.health in HEALTHY)
