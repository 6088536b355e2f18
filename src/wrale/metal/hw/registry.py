"""Picks the hardware backend by name: the one place that imports ``sim`` or ``linux``.

``auto`` chooses Linux when the board's kernel interfaces are there; otherwise it falls
back to the simulator and says so loudly. It never picks the simulator on real hardware.
"""

from __future__ import annotations

import logging
from pathlib import Path

from wrale.metal.hw.base import Board, CaseContact, MotionActive, TamperWiring
from wrale.shared.clock import Clock
from wrale.shared.config import BackendName, MetalSettings
from wrale.shared.errors import ConfigError

log = logging.getLogger(__name__)


def linux_hardware_present(sysfs_root: Path) -> bool:
    """True when a thermal zone with a temperature file exists (a real board)."""
    from wrale.metal.hw.linux import detect_linux_hardware

    return detect_linux_hardware(sysfs_root)


def resolve_backend(settings: MetalSettings) -> BackendName:
    if settings.backend is not BackendName.AUTO:
        return settings.backend
    if linux_hardware_present(settings.linux.sysfs_root):
        log.info(
            "board hardware found under %s: using the linux backend", settings.linux.sysfs_root
        )
        return BackendName.LINUX
    log.warning(
        "*** NO BOARD HARDWARE FOUND under %s: running the SIMULATED board. "
        "Pass --backend sim to silence this, or --backend linux on a real board. ***",
        settings.linux.sysfs_root,
    )
    return BackendName.SIM


def tamper_wiring(settings: MetalSettings) -> TamperWiring:
    """``[tamper_wiring]`` as the backends decode line levels with it."""
    wiring = settings.tamper_wiring
    return TamperWiring(CaseContact(wiring.case_contact), MotionActive(wiring.motion_active))


def create_board(settings: MetalSettings, clock: Clock) -> Board:
    """Build the board the settings ask for, wired to ``clock``."""
    backend = resolve_backend(settings)
    if backend is BackendName.SIM:
        from wrale.metal.hw.sim import SimBoard

        return SimBoard(
            settings.sim,
            name=settings.device_name,
            clock=clock,
            gpio_lines=settings.gpio,
            tamper_wiring=tamper_wiring(settings),
        )
    if backend is BackendName.LINUX:
        from wrale.metal.hw.linux import LinuxBoard

        return LinuxBoard(
            settings.linux,
            name=settings.device_name,
            gpio_lines=settings.gpio,
            clock=clock,
            state_dir=settings.data_dir,  # fan takeover record + throttle history
            tamper_wiring=tamper_wiring(settings),
        )
    raise ConfigError(f"setting 'backend': unknown backend {backend!r}")  # pragma: no cover
