"""What metald's systemd units need from it: sd_notify wiring (``READY=1`` once sampling and
listening, ``WATCHDOG=1`` from the sampler's own progress, ``STATUS=``, ``STOPPING=1``) and
the unit's privileged steps around the daemon: grant the service's group the sysfs files
metald drives (``ExecStartPre=+``) and hand the hardware back to the kernel
(``ExecStopPost=``). Entry-point code: reaches the Linux backend only here and in daemon.py.
"""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import stat
from pathlib import Path

from wrale.metal.core.engine import MetalCore
from wrale.metal.core.snapshot import Snapshot
from wrale.shared.config import LinuxPaths
from wrale.shared.sdnotify import Notifier

log = logging.getLogger("wrale.metald")

STATUS_EVERY_S = 60.0  # how often the STATUS= line follows the readings


def status_line(snap: Snapshot) -> str:
    t = snap.thermal
    temp = "cpu n/a" if t.cpu_temp_c is None else f"cpu {t.cpu_temp_c:.1f} °C"
    return (
        f"{temp}, fan {snap.decision.fan_pct:.0f} %, cap {snap.decision.max_freq_pct:.0f} %, "
        f"sample {snap.seq}"
    )


async def follow_sampler(
    core: MetalCore, notifier: Notifier, *, status_every_s: float = STATUS_EVERY_S
) -> None:
    """Ping the watchdog each time the sampler takes a sample (at most four times per
    watchdog period) and refresh ``STATUS=``; runs until cancelled. A sampler that hangs
    or dies takes no sample, so no ping reaches systemd, which restarts the service."""
    if not notifier.enabled:
        return
    wd = notifier.watchdog_s
    min_gap = 0.0 if wd is None else wd / 4
    loop = asyncio.get_running_loop()
    last_ping = last_status = loop.time()
    seq = core.snapshot.seq if core.snapshot is not None else 0
    while True:
        snap = await core.wait_snapshot(seq)
        seq = snap.seq
        now = loop.time()
        if wd is not None and now - last_ping >= min_gap:
            notifier.watchdog()
            last_ping = now
        if now - last_status >= status_every_s:
            notifier.status(status_line(snap))
            last_status = now


# ---------------------------------------------------------------------- privileged steps


def driven_files(paths: LinuxPaths) -> list[Path]:
    """The sysfs files metald writes on a Pi: the fan's ``pwm1``/``pwm1_enable``, its
    thermal zone's ``policy``/``mode`` (taken over from the governor) and every cpufreq
    policy's ``scaling_max_freq``. Missing ones are left out."""
    from wrale.metal.hw.linux.sysfs import find_hwmon, find_thermal_zone
    from wrale.metal.hw.linux.throttle import cpufreq_policies

    root = paths.sysfs_root
    found: list[Path] = []
    fan = find_hwmon(root, paths.fan_hwmon)
    if fan is not None:
        found += [fan / "pwm1", fan / "pwm1_enable"]
    zone = find_thermal_zone(root, paths.cpu_thermal_zone)
    if zone is not None:
        found += [zone / "policy", zone / "mode"]
    found += [p / "scaling_max_freq" for p in cpufreq_policies(root)]
    return [f for f in found if f.exists()]


def grant_hardware(paths: LinuxPaths, group: str) -> list[str]:
    """Give ``group`` write access to :func:`driven_files` (the unit runs this as root
    before metald starts as an unprivileged user; sysfs keeps it until the next boot)."""
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise LookupError(f"no group named {group!r}") from None
    done = []
    for f in driven_files(paths):
        try:
            os.chown(f, -1, gid)
            f.chmod(stat.S_IMODE(f.stat().st_mode) | stat.S_IWGRP | stat.S_IRGRP)
        except OSError as exc:
            log.error("cannot grant %s to group %s: %s", f, group, exc)
            continue
        done.append(str(f))
    return done


def release_hardware(paths: LinuxPaths, state_dir: Path) -> list[str]:
    """Fan back to the kernel's governor, CPU cap back to the maximum (``ExecStopPost=``)."""
    from wrale.metal.hw.linux.handback import restore_kernel_control

    return restore_kernel_control(paths, state_dir)
