"""Who may change which part of a device's desired document, and what a tamper lockdown
freezes: the twin's side of the rules commands follow (``services/commands.py``), derived
from what the agent does with each section (``fleet/edge/reconcile.py``). Pure; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from wrale.fleet.brain.services.principal import Principal, Role
from wrale.fleet.sync.twin import diff as doc_diff
from wrale.shared.errors import LockdownError

# Section (or dotted path) -> the least role that may change it. The longest entry that
# is a prefix of a path wins, so a path can be given a stricter rule than its section.
SECTION_ROLES: dict[str, Role] = {
    # SetPolicy: metal refuses a curve or limit that weakens the safety rules.
    "thermal": Role.OPERATOR,
    "power": Role.OPERATOR,
    # The agent's own sampling and report intervals, bounded by check_sampling.
    "sampling": Role.OPERATOR,
    # Held by the agent and reported back; it drives no actuator (config templates).
    "config": Role.OPERATOR,
    # SetFanOverride / ClearFan: the set_fan and clear_fan commands (operator), floor kept.
    "fan": Role.OPERATOR,
    # GpioWrite / GpioPwm: pins the operator drives; metal refuses them in a lockdown.
    "gpio": Role.OPERATOR,
    # SetPolicy security: tamper detection itself (armed at start, level, debounce,
    # quiet hours that turn motion into a mere note): weakening it is disarming.
    "security": Role.ADMIN,
    # Arm / Disarm: disarming (which lifts a lockdown) is the admin-only disarm command;
    # a level change can turn off the lockdown response, so the whole section is admin.
    "tamper": Role.ADMIN,
}

# Sections no twin change may touch while the device reports a tamper lockdown: the
# security actions (a lockdown is lifted only by the audited disarm command) and the
# actuators the board refuses in a lockdown (set_fan and clear_fan are refused too).
LOCKDOWN_FROZEN = frozenset({"tamper", "security", "fan", "gpio"})


def role_for(path: str) -> Role:
    """The least role that may change ``path`` (a section or a dotted path in it)."""
    best, best_len = Role.ADMIN, -1  # a path no entry covers is admin-only
    for prefix, role in SECTION_ROLES.items():
        if (path == prefix or path.startswith(prefix + ".")) and len(prefix) > best_len:
            best, best_len = role, len(prefix)
    return best


def changed_paths(before: Mapping[str, Any], after: Mapping[str, Any]) -> set[str]:
    """Dotted paths whose value differs between two override documents. A section that
    appears or goes away empty counts as a change of the section itself."""
    paths = set(doc_diff(before, after))
    for name in set(before) | set(after):
        if (name in before) != (name in after):
            paths.add(name)
    return paths


def in_lockdown(reported: Mapping[str, Any]) -> bool:
    """The device's last report says its tamper response locked it down."""
    tamper = reported.get("tamper")
    return isinstance(tamper, Mapping) and tamper.get("lockdown") is True


def _section(path: str) -> str:
    return path.split(".", 1)[0]


def authorise(
    p: Principal,
    paths: Iterable[str],
    reported: Mapping[str, Any],
    device_id: str,
    device_name: str,
) -> None:
    """Raise ``ForbiddenError`` when ``p`` may not change one of ``paths``, then
    ``LockdownError`` when the device is locked down and one of them is frozen."""
    changed = sorted(paths)
    for path in changed:
        p.require(role_for(path), f"changing desired.{path}")
    frozen = sorted({_section(path) for path in changed} & LOCKDOWN_FROZEN)
    if frozen and in_lockdown(reported):
        raise LockdownError(
            f"device {device_name!r} is in tamper lockdown: the twin's "
            f"{', '.join(sorted(LOCKDOWN_FROZEN))} sections cannot change until an admin "
            "lifts the lockdown with the disarm command",
            device_id=device_id,
            refused="lockdown",
            sections=frozen,
        )
