"""``LinuxBoard``: the sysfs, hwmon, cpufreq, power_supply and libgpiod readers as one Board.

Every path hangs off ``LinuxPaths.sysfs_root`` (tests use a tree in ``tmp_path``); the
GPIO object and the shutdown runner are injectable. Wiring only: no logic of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from wrale.metal.hw.base import (
    Direction,
    Edge,
    Fan,
    Gpio,
    LineConfig,
    Power,
    Pull,
    SimControls,
    Storage,
    Tamper,
    TamperInput,
    TamperWiring,
    ThermalSensors,
    Throttle,
)
from wrale.metal.hw.linux.edges import EdgeTap
from wrale.metal.hw.linux.fan import LinuxFan
from wrale.metal.hw.linux.firmware import FirmwareFlags, ThrottleHistory
from wrale.metal.hw.linux.gpio import GpiodGpio
from wrale.metal.hw.linux.gpiochip import DEV, OpenChip
from wrale.metal.hw.linux.handback import ZoneTakeover, lift_cpu_cap
from wrale.metal.hw.linux.power import LinuxPower, RunCommand
from wrale.metal.hw.linux.pwm import SysfsPwm
from wrale.metal.hw.linux.storage import LinuxStorage
from wrale.metal.hw.linux.sysfs import SYS, HealthLog, read_text
from wrale.metal.hw.linux.tamper import CASE_LINE, MOTION_LINE, LinuxTamper
from wrale.metal.hw.linux.thermal import LinuxThermal
from wrale.metal.hw.linux.throttle import LinuxThrottle
from wrale.metal.hw.linux.ups import OpenBus, UpsConfig, hat_lines, open_linux_bus, open_reader
from wrale.metal.hw.linux.vcgencmd import Vcgencmd
from wrale.shared.clock import Clock, SystemClock
from wrale.shared.config import GpioLineSettings, LinuxPaths
from wrale.shared.errors import ConfigError, WraleError

if TYPE_CHECKING:
    from wrale.metal.hw.base import Board

log = logging.getLogger("wrale.metal.hw.linux")

FALLBACK_MODEL = "Linux board"


def detect_linux_hardware(sysfs_root: Path = SYS) -> bool:
    """True when the kernel exposes a thermal zone with a ``temp`` file."""
    return any(p.is_file() for p in sysfs_root.glob("class/thermal/thermal_zone*/temp"))


def default_model_path(sysfs_root: Path) -> Path:
    """``/proc/device-tree/model``, or ``<root>/proc/device-tree/model`` beside a test tree."""
    base = Path("/") if sysfs_root == SYS else sysfs_root.parent
    return base / "proc/device-tree/model"


def default_boot_id_path(sysfs_root: Path) -> Path:
    """``/proc/sys/kernel/random/boot_id``, or the same beside a test tree."""
    base = Path("/") if sysfs_root == SYS else sysfs_root.parent
    return base / "proc/sys/kernel/random/boot_id"


def read_model(path: Path) -> str:
    try:
        return read_text(path) or FALLBACK_MODEL
    except (OSError, ValueError):
        return FALLBACK_MODEL


def line_config(settings: GpioLineSettings) -> LineConfig:
    return LineConfig(
        direction=Direction(settings.direction),
        pull=Pull(settings.pull),
        edge=Edge(settings.edge),
        debounce_ms=settings.debounce_ms,
    )


class LinuxBoard:
    """A real board read through the kernel's interfaces; ``blocking_io`` is True.

    ``gpio`` replaces the libgpiod chip ``paths.gpio_chip`` names ("auto", a label or a
    path; opened on first use, looked for in ``gpio_dev_dir`` through ``open_gpio_chip``);
    ``tamper_wiring`` says how the case switch and the PIR are wired (NC/NO, high/low);
    ``model_path`` the device-tree model file; ``run_command`` the shutdown runner
    (argv in, raises ``ActuatorError``); ``pwm_chip`` the discovered RP1 PWM0 chip.
    ``state_dir`` keeps the fan takeover record and the throttle history (metald's data
    dir); ``vcgencmd`` replaces the firmware tool (``paths.read_get_throttled_file`` also
    reads the sysfs ``get_throttled`` file: see ``firmware``). A UPS HAT in ``paths.ups`` is
    read through its own reader; ``open_i2c_bus`` opens its I2C bus by number
    (``/dev/i2c-N`` by default).
    """

    backend = "linux"
    blocking_io = True

    def __init__(
        self,
        paths: LinuxPaths = LinuxPaths(),  # noqa: B008 - frozen settings, safe to share
        *,
        name: str = "board",
        gpio_lines: Mapping[str, GpioLineSettings] | None = None,
        clock: Clock | None = None,
        gpio: Gpio | None = None,
        model_path: Path | None = None,
        run_command: RunCommand | None = None,
        pwm_chip: Path | None = None,
        state_dir: Path | None = None,
        boot_id_path: Path | None = None,
        vcgencmd: Vcgencmd | None = None,
        open_i2c_bus: OpenBus = open_linux_bus,
        tamper_wiring: TamperWiring | None = None,
        gpio_dev_dir: Path = DEV,
        open_gpio_chip: OpenChip | None = None,
    ) -> None:
        clock = clock or SystemClock()
        root = paths.sysfs_root
        health = HealthLog()
        self.name = name
        self.model = read_model(model_path or default_model_path(root))
        self.paths = paths
        self.sim: SimControls | None = None
        self.gpio_lines = {n: s.line for n, s in (gpio_lines or {}).items()}
        self.state_dir = state_dir
        boot_id = boot_id_path or default_boot_id_path(root)
        self.vcgencmd = vcgencmd or Vcgencmd(clock, health)
        flags = FirmwareFlags(
            paths,
            clock,
            health,
            vcgencmd=self.vcgencmd,
            history=ThrottleHistory(state_dir, boot_id),
            read_sysfs_word=paths.read_get_throttled_file,
        )
        self.thermal: ThermalSensors = LinuxThermal(paths, clock, health)
        self._takeover = ZoneTakeover(paths, state_dir, boot_id)
        self._throttle = LinuxThrottle(paths, flags, clock, health)
        self.fan: Fan = LinuxFan(paths, clock, health, self._takeover)
        self.throttle: Throttle = self._throttle
        if gpio is None:
            pwm = SysfsPwm(root, chip_dir=pwm_chip, clock=clock)
            gpio = GpiodGpio(
                paths.gpio_chip,
                clock,
                pwm=pwm,
                model=self.model,
                dev_dir=gpio_dev_dir,
                open_chip=open_gpio_chip,
            )
        self._tap = EdgeTap(gpio)
        self.gpio: Gpio = self._tap
        ups = paths.ups
        _check_hat_lines(ups, paths, gpio_lines or {})
        reader = (
            None if ups is None else open_reader(ups, health, gpio=self._tap, open_bus=open_i2c_bus)
        )
        self._power = LinuxPower(
            paths, clock, health, run=run_command, vcgencmd=self.vcgencmd, ups=reader
        )
        self.power: Power = self._power
        self.storage: Storage = LinuxStorage(root, clock, health)
        configs = {s.line: line_config(s) for s in (gpio_lines or {}).values()}
        self._configure_named(gpio_lines or {}, configs)
        tamper_lines = {
            TamperInput.CASE: (paths.case_switch_line, CASE_LINE),
            TamperInput.MOTION: (paths.motion_line, MOTION_LINE),
        }
        self.tamper: Tamper = LinuxTamper(
            self._tap,
            flags,
            clock,
            health,
            lines={
                name: (line, configs.get(line, default))
                for name, (line, default) in tamper_lines.items()
                if line is not None
            },
            wiring=tamper_wiring,
        )
        self._closed = False

    def close(self) -> None:
        """Release the GPIO lines; hand the fan (if this board drove it) and the CPU cap
        (if this board set one) back to the kernel. Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self._tap.close()
        self._power.close()
        restored = self._takeover.hand_back() if self._takeover.driving else []
        if self._throttle.capped:
            restored += lift_cpu_cap(self.paths.sysfs_root)
        for what in restored:
            log.info("handed back to the kernel: %s", what)

    def _configure_named(
        self, gpio_lines: Mapping[str, GpioLineSettings], configs: Mapping[int, LineConfig]
    ) -> None:
        for line_name, settings in gpio_lines.items():
            try:
                self.gpio.configure_line(settings.line, configs[settings.line])
            except WraleError as exc:
                log.error("GPIO line %r (%d) not configured: %s", line_name, settings.line, exc)


def _check_hat_lines(
    ups: UpsConfig | None, paths: LinuxPaths, gpio_lines: Mapping[str, GpioLineSettings]
) -> None:
    """A UPS HAT's lines (X120x: GPIO6 mains, GPIO16 charge control) serve nothing else."""
    claimed: dict[int | None, str] = {s.line: f"gpio line {n!r}" for n, s in gpio_lines.items()}
    claimed[paths.case_switch_line] = "linux.case_switch_line"
    claimed[paths.motion_line] = "linux.motion_line"
    for line, what in (hat_lines(ups) if ups is not None else {}).items():
        if line in claimed:
            raise ConfigError(
                f"setting {claimed[line]}: GPIO {line} is the UPS HAT's {what} line; "
                "move that input to a free GPIO",
                line=line,
            )


if TYPE_CHECKING:

    def _satisfies_board(board: LinuxBoard) -> Board:
        return board  # mypy checks LinuxBoard against the Board protocol
