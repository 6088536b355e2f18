"""Disruptive commands wait for a maintenance window (``docs/maintenance.md``).

A disruptive command (``DISRUPTIVE_OPS``) stays queued while ``may_disrupt`` says no, its
``reason`` reading ``waiting for maintenance window: …``; the device channel delivers it
once the answer is yes (``deliverable``, asked through a per-board cache so a sweep over
thousands of boards costs no query per command). Its deadline still applies. An operator
may let one command through with a reason: the override is stored, audited and written
into the command's reason, which the gate reads (no query).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.commands import Command
from wrale.fleet.brain.models.maintenance import WindowOverride
from wrale.fleet.brain.services import audit
from wrale.fleet.brain.services.maintenance import windows
from wrale.fleet.brain.services.maintenance.conditions import DISRUPTIVE_OPS
from wrale.fleet.brain.services.principal import Principal
from wrale.shared.errors import InvalidRequestError

WAITING = "waiting for maintenance window: "
OVERRIDDEN = "maintenance window overridden by "
MAX_OVERRIDE_REASON = 500


def overridden(c: Command) -> bool:
    return (c.reason or "").startswith(OVERRIDDEN)


async def on_create(
    session: AsyncSession,
    p: Principal,
    device: Device,
    cmd: Command,
    override_reason: str | None,
    now: float,
) -> None:
    """A new command, before it is added: an override is checked, recorded and audited; a
    disruptive command outside its windows says what it waits for."""
    if override_reason is not None:
        text = override_reason.strip()
        if not 0 < len(text) <= MAX_OVERRIDE_REASON:
            raise InvalidRequestError(
                f"override_reason: 1-{MAX_OVERRIDE_REASON} characters", field="override_reason"
            )
        if cmd.op not in DISRUPTIVE_OPS:
            raise InvalidRequestError(
                f"override_window: only {', '.join(sorted(DISRUPTIVE_OPS))} wait for a window",
                field="override_window",
            )
        session.add(
            WindowOverride(
                tenant_id=cmd.tenant_id, command_id=cmd.id, reason=text, created_by=p.name
            )
        )
        cmd.reason = f"{OVERRIDDEN}{p.name}: {text}"[:2000]
        audit.record(
            session,
            p,
            "command.override_window",
            resource_type="command",
            resource_id=cmd.id,
            details={"device_id": device.id, "op": cmd.op, "reason": text},
        )
        return
    if cmd.op in DISRUPTIVE_OPS:
        ok, why = await windows.may_disrupt(session, device, now)
        if not ok:
            cmd.reason = f"{WAITING}{why}"[:2000]


async def _set_reason(session: AsyncSession, ids: Sequence[str], text: str | None) -> None:
    if ids:
        await session.execute(
            update(Command)
            .where(Command.id.in_(list(ids)), Command.status == "queued")
            .values(reason=text)
            .execution_options(synchronize_session=False)
        )


async def deliverable(
    session: AsyncSession, device: Device, due: Sequence[Command], now: float
) -> list[Command]:
    """``due`` without the disruptive commands that must wait; their reason says why
    (written only when it changes). No query unless a disruptive command is due."""
    waiting = [c for c in due if c.op in DISRUPTIVE_OPS and not overridden(c)]
    if not waiting:
        return list(due)
    ok, why = await windows.cached_may_disrupt(session, device, now)
    if ok:
        await _set_reason(
            session, [c.id for c in waiting if (c.reason or "").startswith(WAITING)], None
        )
        return list(due)
    text = f"{WAITING}{why}"[:2000]
    await _set_reason(session, [c.id for c in waiting if c.reason != text], text)
    held = {c.id for c in waiting}
    return [c for c in due if c.id not in held]
