"""``/groups`` (static and dynamic, nested), their members and resolved devices,
``/devices/{id}/groups``, and bulk tag changes (``/devices/tags``: tags are what dynamic
groups select on). Reads for every role; writes for operators and admins. Bulk changes are
set statements (``bulk_membership``); their twins are recomposed in the background."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from sqlalchemy import select

from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.groups import Group
from wrale.fleet.brain.services import bulk_membership
from wrale.fleet.brain.services import groups as svc
from wrale.user.api.deps import OperatorDep, PageDep, PageParams, PrincipalDep, SessionDep
from wrale.user.api.schemas.common import Page, fetch_page, page_of
from wrale.user.api.schemas.groups import (
    DeviceGroupPublic,
    DynamicGroupCreate,
    GroupCreate,
    GroupDevice,
    GroupPublic,
    GroupUpdate,
    MembersAdd,
    MembersAdded,
    MembersRemoved,
    TagsBulk,
    TagsBulkResult,
)
from wrale.user.api.schemas.topology import Id

router = APIRouter()
NameQ = Annotated[
    str | None, Query(max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$", description="exact name")
]


def _group(g: Group) -> GroupPublic:
    return GroupPublic.model_validate(svc.group_view(g))


def _device(d: Device) -> GroupDevice:
    return GroupDevice(
        id=d.id,
        name=d.name,
        status=d.status,
        model=d.model,
        tags=list(d.tags or []),
        rack_id=d.rack_id,
        slot_u=d.slot_u,
        zone_id=d.zone_id,
    )


def _slice(rows: Sequence[Any], page: PageParams) -> list[Any]:
    """A page out of rows already sorted by id (resolved in Python)."""
    after = [r for r in rows if page.after is None or r.id > page.after]
    return after[: page.limit + 1]


@router.get("/groups", tags=["groups"])
async def list_groups(
    p: PrincipalDep,
    session: SessionDep,
    page: PageDep,
    parent_id: Annotated[Id | None, Query(description="children of this group")] = None,
    root: Annotated[bool, Query(description="only top-level groups")] = False,
    kind: Annotated[Literal["static", "dynamic"] | None, Query()] = None,
    name: NameQ = None,
) -> Page[GroupPublic]:
    stmt = select(Group).where(Group.tenant_id == p.tenant_id)
    if name:
        stmt = stmt.where(Group.name == name)
    if parent_id:
        stmt = stmt.where(Group.parent_id == parent_id)
    if root:
        stmt = stmt.where(Group.parent_id.is_(None))
    if kind:
        stmt = stmt.where(Group.kind == kind)
    rows = await fetch_page(session, stmt, Group.id, page)
    return page_of(rows, page, _group)


@router.post("/groups", status_code=201, tags=["groups"])
async def create_group(body: GroupCreate, p: OperatorDep, session: SessionDep) -> GroupPublic:
    selector = (
        body.selector.model_dump(exclude_none=True)
        if isinstance(body, DynamicGroupCreate)
        else None
    )
    group = await svc.create_group(
        session,
        p,
        body.name,
        kind=body.kind,
        selector=selector,
        parent_id=body.parent_id,
        description=body.description,
    )
    return _group(group)


@router.get("/groups/{group_id}", tags=["groups"])
async def get_group(group_id: str, p: PrincipalDep, session: SessionDep) -> GroupPublic:
    return _group(await svc.get_group(session, p.tenant_id, group_id))


@router.patch("/groups/{group_id}", tags=["groups"])
async def update_group(
    group_id: str, body: GroupUpdate, p: OperatorDep, session: SessionDep
) -> GroupPublic:
    """Rename, describe, change the selector (dynamic groups) or move under another parent
    (``parent_id`` null makes it top-level); a move that would make a cycle is a 409."""
    changes = body.model_dump(exclude_unset=True)
    if changes.get("name", "") is None:
        changes.pop("name")
    if body.selector is not None:
        changes["selector"] = body.selector.model_dump(exclude_none=True)
    return _group(await svc.update_group(session, p, group_id, changes))


@router.delete("/groups/{group_id}", status_code=204, tags=["groups"])
async def delete_group(group_id: str, p: OperatorDep, session: SessionDep) -> Response:
    await svc.delete_group(session, p, group_id)
    return Response(status_code=204)


# ----------------------------------------------------------------------------- members


@router.get("/groups/{group_id}/members", tags=["groups"])
async def list_members(
    group_id: str, p: PrincipalDep, session: SessionDep, page: PageDep
) -> Page[GroupDevice]:
    """Explicit members of a static group (409 for a dynamic one: see ``/devices``)."""
    rows = await svc.static_members(session, p.tenant_id, group_id)
    return page_of(_slice(rows, page), page, _device)


@router.post("/groups/{group_id}/members", tags=["groups"])
async def add_members(
    group_id: str, body: MembersAdd, p: OperatorDep, session: SessionDep
) -> MembersAdded:
    """Add devices to a static group; devices already in it are counted, not an error.
    An unknown device is 404 and nothing is added. One audit entry with the count."""
    done = await bulk_membership.change_group(
        session, p, group_id, body.device_ids, add=True, missing_ok=False
    )
    return MembersAdded.model_validate(
        {"added": done.changed, "already": len(done.skipped), "recompose": done.recompose}
    )


@router.post("/groups/{group_id}/members/remove", tags=["groups"])
async def remove_members(
    group_id: str, body: MembersAdd, p: OperatorDep, session: SessionDep
) -> MembersRemoved:
    """Take devices out of a static group; devices not in it are counted, not an error."""
    done = await bulk_membership.change_group(
        session, p, group_id, body.device_ids, add=False, missing_ok=False
    )
    return MembersRemoved.model_validate(
        {"removed": done.changed, "absent": len(done.skipped), "recompose": done.recompose}
    )


@router.post("/devices/tags", tags=["devices"])
async def change_tags(body: TagsBulk, p: OperatorDep, session: SessionDep) -> TagsBulkResult:
    """Add a tag to (or remove it from) many devices in one change: one audit entry with
    the count; an unknown device is 404 and nothing changes."""
    done = await bulk_membership.change_tag(
        session, p, body.device_ids, body.tag, add=not body.remove, missing_ok=False
    )
    return TagsBulkResult.model_validate(
        {"changed": done.changed, "unchanged": len(done.skipped), "recompose": done.recompose}
    )


@router.delete("/groups/{group_id}/members/{device_id}", status_code=204, tags=["groups"])
async def remove_member(
    group_id: str, device_id: str, p: OperatorDep, session: SessionDep
) -> Response:
    await svc.remove_member(session, p, group_id, device_id)
    return Response(status_code=204)


@router.get("/groups/{group_id}/devices", tags=["groups"])
async def group_devices(
    group_id: str,
    p: PrincipalDep,
    session: SessionDep,
    page: PageDep,
    recursive: Annotated[bool, Query(description="include every subgroup's devices")] = False,
) -> Page[GroupDevice]:
    """The group's devices: static members or selector matches (``recursive`` adds subgroups)."""
    rows = await svc.devices_in_group(session, p.tenant_id, group_id, recursive=recursive)
    return page_of(_slice(rows, page), page, _device)


@router.get("/devices/{device_id}/groups", tags=["groups"])
async def device_groups(
    device_id: str, p: PrincipalDep, session: SessionDep, page: PageDep
) -> Page[DeviceGroupPublic]:
    """Every group a device is in: directly (static or dynamic) or through a subgroup."""
    pairs = await svc.device_groups_with_ancestors(session, p.tenant_id, device_id)
    rows = _slice([g for g, _ in pairs], page)
    direct = {g.id: d for g, d in pairs}
    return page_of(
        rows,
        page,
        lambda g: DeviceGroupPublic(**svc.group_view(g), direct=direct[g.id]),
    )
