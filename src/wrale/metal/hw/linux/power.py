"""Power sources from ``class/power_supply`` entries or a UPS HAT reader, the Pi 5's input
voltage from its PMIC (``vcgencmd pmic_read_adc`` EXT5V_V), and the board's own shutdown.

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
from wrale.metal.hw.linux.ups import UpsReader, power_from_ups
from wrale.metal.hw.linux.vcgencmd import Vcgencmd
from wrale.shared.clock import Clock
from wrale.shared.config import LinuxPaths
from wrale.shared.errors import ActuatorError, ConfigError

log = logging.getLogger("wrale.metal.hw.linux")

SUPPLY_CLASS = "class/power_supply"
SHUTDOWN_TIMEOUT_S = 30.0
HEALTHY = frozenset({"Good", "Unknown"})  # "Unknown": the driver cannot tell, not a fault
EXT5V = "EXT5V_V"  # the Pi 5 PMIC's ADC channel on the USB-C input
EXT5V_RANGE_V = (0.0, 7.0)  # the channel's plausible span; outside it the answer is garbage

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
    """Maps ``LinuxPaths.power_supplies`` (main, battery, solar) or a UPS HAT (``ups``, which
    replaces the mapping) to a ``PowerReading``.

    Without either the board has only its main supply, present. The rail voltage is the
    PMIC's EXT5V_V where ``vcgencmd`` answers it (a Pi 5), else the main supply's own.
    An unmapped main supply is inferred available unless a mapped battery discharges.
    The PMIC's per-rail currents are not summed into ``power_w``: they leave out the USB
    ports, the fan and the PMIC's own losses, so the sum is no measure of the board's draw.
    """

    def __init__(
        self,
        paths: LinuxPaths,
        clock: Clock,
        health: HealthLog,
        *,
        run: RunCommand | None = None,
        vcgencmd: Vcgencmd | None = None,
        ups: UpsReader | None = None,
    ) -> None:
        root = paths.sysfs_root / SUPPLY_CLASS
        self._health = health
        self._vcgencmd = vcgencmd
        self._ups = ups
        if ups is not None and paths.power_supplies:
            raise ConfigError(
                "setting 'linux.power_supplies': a UPS HAT reader is configured, and it "
                "replaces the power_supply mapping; keep one of the two"
            )
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
        rail_v = self._ext5v()
        if self._ups is not None:
            return power_from_ups(self._ups.read_ups(), rail_v)
        states = {source: self._read(source) for source in self._entries}
        available = {source: _available(source, state) for source, state in states.items()}
        if PowerSource.MAIN not in states:
            battery = states.get(PowerSource.BATTERY)
            available[PowerSource.MAIN] = not (battery and battery.status == "Discharging")
        active = _active(available, states)
        rail = states.get(active) or SupplyState()
        if rail_v is None and active is not PowerSource.BATTERY:
            rail_v = rail.voltage_v  # a battery entry's voltage is its cell's, not the rail's
        battery = states.get(PowerSource.BATTERY)
        main_state = _state(states, PowerSource.MAIN)
        return PowerReading(
            source=active,
            voltage_v=rail_v,
            current_a=rail.current_a,
            power_w=rail.rail_power_w,
            battery_pct=None if battery is None else battery.capacity_pct,
            battery_charging=battery is not None and battery.status == "Charging",
            battery_healthy=_battery_healthy(PowerSource.BATTERY in states, battery),
            battery_health_pct=None if battery is None else battery.health_pct,
            sources=tuple(
                SourceReading(
                    source=source,
                    available=is_available,
                    voltage_v=(
                        _main_v(main_state, rail_v, is_available)
                        if source is PowerSource.MAIN
                        else _state(states, source).voltage_v
                    ),
                    power_w=_state(states, source).rail_power_w,
                )
                for source, is_available in sorted(available.items())
            ),
        )

    def _ext5v(self) -> float | None:
        """The Pi 5's USB-C input voltage from its PMIC; ``None`` without ``vcgencmd``."""
        if self._vcgencmd is None:
            return None
        channels = self._vcgencmd.pmic_adc()
        if channels is None:
            return None  # vcgencmd logged why
        source = f"PMIC {EXT5V} (vcgencmd pmic_read_adc)"
        volts = channels.get(EXT5V)
        if volts is None or not EXT5V_RANGE_V[0] <= volts <= EXT5V_RANGE_V[1]:
            self._health.failed(source, f"no plausible {EXT5V} in the answer ({volts!r})")
            return None
        self._health.ok(source)
        return volts

    def close(self) -> None:
        if self._ups is not None:
            self._ups.close()

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


def _main_v(main: SupplyState, rail_v: float | None, available: bool) -> float | None:
    """The main supply's own voltage, else the rail's while main feeds it."""
    if main.voltage_v is not None:
        return main.voltage_v
    return rail_v if available else None


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
