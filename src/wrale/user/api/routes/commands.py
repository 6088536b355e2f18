"""``/commands``, ``/devices/{id}/commands`` and ``/groups/{id}/commands``: send an
operation to a device, a group or the devices matching a selector (operators; disarm
needs an admin), follow each command's lifecycle, and cancel one still queued."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.bus import BusEvent
from wrale.fleet.brain.models.commands import Command
from wrale.fleet.brain.services import commands as svc
from wrale.fleet.brain.services import groups, registry
from wrale.user.api.deps import OperatorDep, PageDep, SessionDep, StateDep, ViewerDep
from wrale.user.api.schemas.commands import (
    CommandBatch,
    CommandCreate,
    CommandPublic,
    CommandStatus,
    DeviceCommandCreate,
    Op,
    RefusedDevice,
    SelectorCommandCreate,
)
from wrale.user.api.schemas.common import Page, fetch_page, page_of
from wrale.user.api.schemas.registry import ID

router = APIRouter(tags=["commands"])
WAIT_MAX_S = 30.0  # a long poll's longest wait (below proxies' usual 60 s idle timeout)
WAIT_READ_S = 1.0  # while waiting, the command is read again at least this often
StatusQ = Annotated[list[CommandStatus] | None, Query(description="any of (repeatable)")]


def command_public(c: Command) -> CommandPublic:
    return CommandPublic.model_validate(svc.command_view(c))


def _batch(batch_id: str, made: list[Command], refused: list[dict[str, Any]]) -> CommandBatch:
    return CommandBatch(
        batch_id=batch_id,
        count=len(made),
        commands=[command_public(c) for c in made],
        refused=[RefusedDevice.model_validate(r) for r in refused],
    )


@router.post("/devices/{device_id}/commands", status_code=201)
async def send_to_device(
    device_id: str,
    body: DeviceCommandCreate,
    p: OperatorDep,
    session: SessionDep,
    state: StateDep,
) -> CommandPublic:
    """Queue a command for one device (409 when it cannot take it now: maintenance,
    decommissioned, tamper lockdown, or a sim_* op on a real board). A reboot or shutdown
    waits for the device's maintenance window (its reason says so) unless
    ``override_window`` with ``override_reason`` lets it through (audited)."""
    cmd = await svc.create_command(
        session,
        p,
        device_id,
        body.op,
        body.args,
        deadline=body.deadline,
        timeout_s=body.timeout_s,
        bus=state.bus,
        override_reason=body.override_reason if body.override_window else None,
    )
    return command_public(cmd)


@router.get("/devices/{device_id}/commands")
async def device_commands(
    device_id: str,
    p: ViewerDep,
    session: SessionDep,
    page: PageDep,
    status: StatusQ = None,
) -> Page[CommandPublic]:
    """The device's commands, oldest first."""
    device = await registry.get_device(session, p.tenant_id, device_id)
    stmt = select(Command).where(Command.tenant_id == p.tenant_id, Command.device_id == device.id)
    if status:
        stmt = stmt.where(Command.status.in_(status))
    return page_of(await fetch_page(session, stmt, Command.id, page), page, command_public)


@router.post("/groups/{group_id}/commands", status_code=201)
async def send_to_group(
    group_id: str, body: CommandCreate, p: OperatorDep, session: SessionDep, state: StateDep
) -> CommandBatch:
    """Queue a command for every device of the group and its subgroups; devices that
    cannot take it are listed under ``refused`` with the reason."""
    devices = await groups.devices_in_group(session, p.tenant_id, group_id, recursive=True)
    batch_id, made, refused = await svc.create_batch(
        session,
        p,
        devices,
        body.op,
        body.args,
        deadline=body.deadline,
        timeout_s=body.timeout_s,
        bus=state.bus,
        target={"group_id": group_id},
    )
    return _batch(batch_id, made, refused)


@router.post("/commands", status_code=201)
async def send_to_selector(
    body: SelectorCommandCreate, p: OperatorDep, session: SessionDep, state: StateDep
) -> CommandBatch:
    """Queue a command for every device matching the selector (tags, status, site, room,
    rack, zone, model); devices that cannot take it are listed under ``refused``."""
    selector = body.selector.model_dump(exclude_none=True)
    tags = selector.pop("tags", None)
    if tags:
        selector["tags_all"] = sorted({*selector.get("tags_all", []), *tags})
    devices = await svc.select_devices(session, p.tenant_id, selector)
    batch_id, made, refused = await svc.create_batch(
        session,
        p,
        devices,
        body.op,
        body.args,
        deadline=body.deadline,
        timeout_s=body.timeout_s,
        bus=state.bus,
        target={"selector": selector},
    )
    return _batch(batch_id, made, refused)


@router.get("/commands")
async def list_commands(
    p: ViewerDep,
    session: SessionDep,
    page: PageDep,
    device_id: Annotated[str | None, Query(pattern=ID)] = None,
    batch_id: Annotated[str | None, Query(pattern=ID)] = None,
    status: StatusQ = None,
    op: Op | None = None,
) -> Page[CommandPublic]:
    """Commands of the organisation, oldest first, filtered."""
    stmt = select(Command).where(Command.tenant_id == p.tenant_id)
    if device_id:
        stmt = stmt.where(Command.device_id == device_id)
    if batch_id:
        stmt = stmt.where(Command.batch_id == batch_id)
    if status:
        stmt = stmt.where(Command.status.in_(status))
    if op:
        stmt = stmt.where(Command.op == op)
    return page_of(await fetch_page(session, stmt, Command.id, page), page, command_public)


@router.get("/commands/{command_id}")
async def get_command(
    command_id: str,
    p: ViewerDep,
    session: SessionDep,
    state: StateDep,
    wait_s: Annotated[
        float,
        Query(
            ge=0,
            le=WAIT_MAX_S,
            description="if the command has not finished, answer when it does, or after "
            "this many seconds as it then is (a long poll in place of polling)",
        ),
    ] = 0,
) -> CommandPublic:
    """One command with its result."""
    if wait_s <= 0:
        return command_public(await svc.get_command(session, p.tenant_id, command_id))
    return command_public(await _finished(state, session, p.tenant_id, command_id, wait_s))


async def _finished(
    state: StateDep, session: AsyncSession, tenant_id: str, command_id: str, wait_s: float
) -> Command:
    """The command once finished, or after ``wait_s`` as it then is. Woken by its
    ``command.updated`` event (from any replica whose events reach this one), and read again
    every ``WAIT_READ_S`` too, so an event lost or never relayed costs at most that long.
    No database connection is held while waiting."""
    finished = asyncio.Event()

    def heard(ev: BusEvent) -> None:
        data = ev.data
        ours = ev.tenant_id == tenant_id and data.get("command_id") == command_id
        if ours and data.get("status") not in svc.OPEN:
            finished.set()

    stop = state.bus.listen(["command.updated"], heard, remote=True)
    try:
        c = await svc.get_command(session, tenant_id, command_id)  # listening: none missed
        await session.close()
        end = time.monotonic() + wait_s
        while c.status in svc.OPEN and (left := end - time.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), min(left, WAIT_READ_S))
            async with state.db.session() as fresh:
                c = await svc.get_command(fresh, tenant_id, command_id)
        return c
    finally:
        stop()


@router.post("/commands/{command_id}/cancel")
async def cancel_command(
    command_id: str, p: OperatorDep, session: SessionDep, state: StateDep
) -> CommandPublic:
    """Cancel a queued command (it ends as failed, "cancelled by <you>"); 409 once sent."""
    return command_public(await svc.cancel(session, p, command_id, state.bus))
