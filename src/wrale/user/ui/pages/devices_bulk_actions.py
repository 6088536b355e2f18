"""The Devices page's bulk actions: the bulk bar redrawn for a selection, and a confirmed
command, tag or group change applied to every selected device (refused when the count no
longer holds), through the brain's services, which check roles and write the audit trail."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from wrale.fleet.brain.models import Device
from wrale.fleet.brain.services import bulk_membership, commands, groups
from wrale.fleet.sync.protocol import COMMAND_OPS
from wrale.shared.errors import ConflictError, InvalidRequestError, NotFoundError
from wrale.user.api.deps import AppState, StateDep
from wrale.user.ui.pages.command_args import op_args
from wrale.user.ui.pages.devices_bulk import ACTIONS, Selection, bar_context, plural, read_selection
from wrale.user.ui.pages.devices_query import ID_RE
from wrale.user.ui.web import OperatorDep, SessionDep, Viewer, render

router = APIRouter(include_in_schema=False)


def _bar(
    request: Request, ctx: dict[str, Any], status_code: int = 200, *, retarget: bool = False
) -> Response:
    headers = {"HX-Retarget": "#bulk-body", "HX-Reswap": "outerHTML"} if retarget else {}
    return render(
        request, "devices/_bulk.html", {"bar": ctx}, status_code=status_code, headers=headers
    )


@router.post("/devices/bulk/bar")
async def bulk_bar(request: Request, viewer: OperatorDep, session: SessionDep) -> Response:
    """The bulk bar again, for the current selection and action (counts, fields, question)."""
    form = await request.form()
    return _bar(request, await bar_context(session, viewer, form))


@router.post("/devices/bulk")
async def bulk_apply(
    request: Request, viewer: OperatorDep, session: SessionDep, state: StateDep
) -> Response:
    """Apply a confirmed bulk action; the answer says what happened to each device."""
    form = await request.form()
    try:
        selection = await read_selection(session, viewer, form)
    except InvalidRequestError as exc:
        ctx = await bar_context(session, viewer, form, {"selection": exc.message})
        return _bar(request, ctx, 422, retarget=True)
    expected = str(form.get("expected") or "")
    if not selection.count:
        ctx = await bar_context(
            session, viewer, form, {"selection": "select devices first"}, selection
        )
        return _bar(request, ctx, 422, retarget=True)
    if not expected:
        problem = "confirm the action first: the confirmation names the devices it touches"
        ctx = await bar_context(session, viewer, form, {"selection": problem}, selection)
        return _bar(request, ctx, 422, retarget=True)
    if expected != str(selection.count):
        ctx = await bar_context(
            session,
            viewer,
            form,
            {
                "selection": f"the selection is now {plural(selection.count)}, not what was "
                "confirmed; check it and apply again"
            },
            selection,
        )
        return _bar(request, ctx, 409, retarget=True)
    action = str(form.get("action") or "")
    try:
        if action == "command":
            result = await _command(session, viewer, state, form, selection)
        elif action in ("tag_add", "tag_remove"):
            result = await _tag(session, viewer, form, selection, add=action == "tag_add")
        elif action == "group_add":
            result = await _group(session, viewer, form, selection)
        else:
            raise InvalidRequestError(f"action: use one of {', '.join(ACTIONS)}", field="action")
    except (InvalidRequestError, ConflictError, NotFoundError) as exc:
        field = str(exc.details.get("field") or "action").replace("args.", "arg_")
        await session.rollback()  # all or nothing: no device is half done
        ctx = await bar_context(session, viewer, form, {field: exc.message}, selection)
        status = 422 if isinstance(exc, InvalidRequestError) else 409
        return _bar(request, ctx, status, retarget=True)
    return render(
        request,
        "devices/_bulk_result.html",
        {"result": result},
        headers={"HX-Trigger": "wrale-devices-changed"},
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a bulk action did: a headline, then the devices it skipped and why."""

    headline: str
    done: int
    skipped: list[tuple[str, str]]  # (device name, why)
    kind: str = "ok"
    detail: str = ""


async def _devices(session: AsyncSession, tenant_id: str, ids: Sequence[str]) -> list[Device]:
    found: dict[str, Device] = {}
    for i in range(0, len(ids), 500):
        rows = await session.scalars(
            select(Device).where(Device.tenant_id == tenant_id, Device.id.in_(ids[i : i + 500]))
        )
        found.update((d.id, d) for d in rows)
    return [found[i] for i in ids if i in found]


async def _command(
    session: AsyncSession, viewer: Viewer, state: AppState, form: FormData, sel: Selection
) -> Outcome:
    op = str(form.get("op") or "")
    if op not in COMMAND_OPS:
        raise InvalidRequestError(f"op: use one of {', '.join(COMMAND_OPS)}", field="op")
    args = op_args(op, form)
    devices = await _devices(session, viewer.tenant_id, sel.ids)
    gone = len(sel.ids) - len(devices)
    batch, made, refused = await commands.create_batch(
        session,
        viewer.principal,
        devices,
        op,
        args,
        bus=state.bus,
        target={"dashboard": "all matching" if sel.all_matching else "selected"},
    )
    skipped = [(str(r["name"]), str(r["reason"])) for r in refused]
    headline = f"{op}: {len(made):,} queued, {len(refused):,} refused"
    if gone:
        headline += f", {gone:,} no longer exist"
    return Outcome(headline, len(made), skipped, "ok" if not refused else "info", f"batch {batch}")


async def _tag(
    session: AsyncSession, viewer: Viewer, form: FormData, sel: Selection, *, add: bool
) -> Outcome:
    tag = str(form.get("tag") or "").strip()
    done = await bulk_membership.change_tag(session, viewer.principal, sel.ids, tag, add=add)
    verb = f'Tag "{tag}" added to' if add else f'Tag "{tag}" removed from'
    headline = f"{verb} {plural(done.changed)}; {len(done.skipped):,} unchanged"
    if done.missing:
        headline += f", {len(done.missing):,} no longer exist"
    return Outcome(headline, done.changed, done.skipped)


async def _group(session: AsyncSession, viewer: Viewer, form: FormData, sel: Selection) -> Outcome:
    group_id = str(form.get("group_id") or "")
    if not ID_RE.match(group_id):
        raise InvalidRequestError("group: choose a static group", field="group_id")
    try:
        group = await groups.get_group(session, viewer.tenant_id, group_id)
        done = await bulk_membership.change_group(
            session, viewer.principal, group.id, sel.ids, add=True
        )
    except (ConflictError, NotFoundError) as exc:  # gone, or dynamic: say so at the field
        raise type(exc)(exc.message, field="group_id") from exc
    return Outcome(
        f'{plural(done.changed)} added to group "{group.name}"; '
        f"{len(done.skipped):,} were members already",
        done.changed,
        done.skipped,
    )
