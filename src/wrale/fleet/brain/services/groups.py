"""Groups of devices: static (explicit members) and dynamic (a selector), nested in a
hierarchy without cycles and at most ``MAX_DEPTH`` deep. Dynamic membership is computed in
Python over the tenant's devices (fine for ~10k devices per tenant; push into SQL beyond).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device, Rack, Room
from wrale.fleet.brain.models.groups import Group, GroupMember
from wrale.fleet.brain.services import audit
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.fleet.brain.services.selectors import ID_KEYS as ID_KEYS
from wrale.fleet.brain.services.selectors import LIST_KEYS as LIST_KEYS
from wrale.fleet.brain.services.selectors import SELECTOR_KEYS as SELECTOR_KEYS
from wrale.fleet.brain.services.selectors import STATUSES as STATUSES
from wrale.fleet.brain.services.selectors import Place as Place
from wrale.fleet.brain.services.selectors import matches as matches
from wrale.fleet.brain.services.selectors import parse_selector as parse_selector
from wrale.fleet.brain.services.selectors import validate_selector as validate_selector
from wrale.fleet.brain.services.topology import flush, get
from wrale.shared.errors import ConflictError, InvalidRequestError, NotFoundError

MAX_DEPTH = 10


def group_view(g: Group) -> dict[str, Any]:
    return {
        "id": g.id,
        "name": g.name,
        "description": g.description,
        "kind": g.kind,
        "selector": g.selector,
        "parent_id": g.parent_id,
        "created_at": g.created_at,
    }


async def get_group(session: AsyncSession, tenant_id: str, group_id: str) -> Group:
    return await get(session, Group, tenant_id, group_id, "group")


# ----------------------------------------------------------------------------- selectors


async def _places(session: AsyncSession, tenant_id: str) -> dict[str, Place]:
    """rack id → its room and site, for every rack of the tenant."""
    rows = await session.execute(
        select(Rack.id, Rack.room_id, Room.site_id)
        .join(Room, Room.id == Rack.room_id)
        .where(Rack.tenant_id == tenant_id)
    )
    return {r.id: Place(r.room_id, r.site_id) for r in rows}


async def place_of(session: AsyncSession, device: Device) -> Place | None:
    """The room and site of ``device``'s rack (None when it is in no rack)."""
    if not device.rack_id:
        return None
    row = (
        await session.execute(
            select(Rack.room_id, Room.site_id)
            .join(Room, Room.id == Rack.room_id)
            .where(Rack.id == device.rack_id)
        )
    ).first()
    return Place(row.room_id, row.site_id) if row is not None else None


# ----------------------------------------------------------------------------- hierarchy


async def _tenant_groups(session: AsyncSession, tenant_id: str) -> dict[str, Group]:
    rows = await session.scalars(select(Group).where(Group.tenant_id == tenant_id))
    return {g.id: g for g in rows}


async def group_ancestors(session: AsyncSession, group_id: str) -> list[Group]:
    """The group's parent, grandparent… (nearest first, not itself)."""
    out: list[Group] = []
    group = await session.get(Group, group_id)
    seen = {group_id}
    while group is not None and group.parent_id and group.parent_id not in seen:
        group = await session.get(Group, group.parent_id)
        if group is None:
            break
        seen.add(group.id)
        out.append(group)
    return out


def _descendants(groups: dict[str, Group], root_id: str) -> list[str]:
    children: dict[str | None, list[str]] = defaultdict(list)
    for g in groups.values():
        children[g.parent_id].append(g.id)
    out, todo, seen = [], list(children[root_id]), {root_id}
    while todo:
        gid = todo.pop()
        if gid in seen:
            continue
        seen.add(gid)
        out.append(gid)
        todo.extend(children[gid])
    return out


def _height(groups: dict[str, Group], root_id: str) -> int:
    """Levels in the subtree under and including ``root_id`` (a leaf is 1)."""
    children: dict[str | None, list[str]] = defaultdict(list)
    for g in groups.values():
        children[g.parent_id].append(g.id)

    def h(gid: str, depth: int) -> int:
        if depth > MAX_DEPTH + 1:
            return depth
        return 1 + max((h(c, depth + 1) for c in children[gid]), default=0)

    return h(root_id, 0)


async def _check_parent(
    session: AsyncSession, tenant_id: str, group: Group | None, parent_id: str
) -> None:
    parent = await get_group(session, tenant_id, parent_id)
    chain = [parent, *await group_ancestors(session, parent.id)]
    if group is not None and any(g.id == group.id for g in chain):
        raise ConflictError(
            f"group {group.name!r} cannot go under {parent.name!r}: that would make a cycle",
            parent_id=parent_id,
        )
    height = _height(await _tenant_groups(session, tenant_id), group.id) if group else 1
    if len(chain) + height > MAX_DEPTH:
        raise ConflictError(
            f"groups nest at most {MAX_DEPTH} levels deep; under {parent.name!r} this would "
            f"reach {len(chain) + height}",
            max_depth=MAX_DEPTH,
        )


# ----------------------------------------------------------------------------- CRUD


async def _unique_name(session: AsyncSession, tenant_id: str, name: str) -> None:
    taken = await session.scalar(
        select(func.count())
        .select_from(Group)
        .where(Group.tenant_id == tenant_id, Group.name == name)
    )
    if taken:
        raise ConflictError(f"a group named {name!r} already exists", name=name)


async def create_group(
    session: AsyncSession,
    p: Principal,
    name: str,
    *,
    kind: str = "static",
    selector: dict[str, Any] | None = None,
    parent_id: str | None = None,
    description: str | None = None,
) -> Group:
    p.require(Role.OPERATOR, "creating groups")
    if kind not in ("static", "dynamic"):
        raise InvalidRequestError("kind: static or dynamic")
    if kind == "static" and selector is not None:
        raise InvalidRequestError("selector: only dynamic groups have one")
    clean = (
        await validate_selector(session, p.tenant_id, selector or {}) if kind == "dynamic" else None
    )
    await _unique_name(session, p.tenant_id, name)
    if parent_id is not None:
        await _check_parent(session, p.tenant_id, None, parent_id)
    group = Group(
        tenant_id=p.tenant_id,
        name=name,
        kind=kind,
        selector=clean,
        parent_id=parent_id,
        description=description,
    )
    session.add(group)
    await flush(session)
    audit.record(
        session,
        p,
        "group.create",
        resource_type="group",
        resource_id=group.id,
        after=group_view(group),
    )
    return group


async def update_group(
    session: AsyncSession, p: Principal, group_id: str, changes: dict[str, Any]
) -> Group:
    p.require(Role.OPERATOR, "changing groups")
    group = await get_group(session, p.tenant_id, group_id)
    before = group_view(group)
    if "name" in changes and changes["name"] != group.name:
        await _unique_name(session, p.tenant_id, changes["name"])
        group.name = changes["name"]
    if "description" in changes:
        group.description = changes["description"]
    if "selector" in changes and (changes["selector"] is not None or group.kind == "dynamic"):
        if group.kind != "dynamic":
            raise InvalidRequestError("selector: only dynamic groups have one")
        group.selector = await validate_selector(session, p.tenant_id, changes["selector"] or {})
    if "parent_id" in changes and changes["parent_id"] != group.parent_id:
        if changes["parent_id"] is not None:
            await _check_parent(session, p.tenant_id, group, changes["parent_id"])
        group.parent_id = changes["parent_id"]
    if before != group_view(group):
        audit.record(
            session,
            p,
            "group.update",
            resource_type="group",
            resource_id=group.id,
            before=before,
            after=group_view(group),
        )
    await flush(session)
    return group


async def delete_group(session: AsyncSession, p: Principal, group_id: str) -> None:
    p.require(Role.OPERATOR, "deleting groups")
    group = await get_group(session, p.tenant_id, group_id)
    children = await session.scalar(
        select(func.count()).select_from(Group).where(Group.parent_id == group.id)
    )
    if children:
        raise ConflictError(
            f"group {group.name!r} has {children} subgroup(s); move or delete them first",
            subgroups=children,
        )
    audit.record(
        session,
        p,
        "group.delete",
        resource_type="group",
        resource_id=group.id,
        before=group_view(group),
    )
    await session.execute(delete(GroupMember).where(GroupMember.group_id == group.id))
    await session.delete(group)


# ----------------------------------------------------------------------------- members


async def add_member(
    session: AsyncSession, principal: Principal | None, group_id: str, device_id: str
) -> bool:
    """Put a device in a static group; False when it was already there. ``principal`` None
    is the system (enrollment), which acts in the group's tenant."""
    if principal is not None:
        principal.require(Role.OPERATOR, "changing group members")
        tenant_id = principal.tenant_id
    else:
        found = await session.get(Group, group_id)
        if found is None:
            raise NotFoundError(f"no group {group_id}")
        tenant_id = found.tenant_id
    group = await _static(session, tenant_id, group_id)
    device = await get(session, Device, tenant_id, device_id, "device")
    exists = await session.scalar(
        select(GroupMember.id).where(
            GroupMember.group_id == group.id, GroupMember.device_id == device.id
        )
    )
    if exists:
        return False
    session.add(GroupMember(tenant_id=tenant_id, group_id=group.id, device_id=device.id))
    audit.record(
        session,
        principal,
        "group.member_add",
        resource_type="group",
        resource_id=group.id,
        after={"device_id": device.id, "device_name": device.name},
        tenant_id=tenant_id,
        actor_name=None if principal else "system",
    )
    await flush(session)
    return True


async def remove_member(session: AsyncSession, p: Principal, group_id: str, device_id: str) -> None:
    p.require(Role.OPERATOR, "changing group members")
    group = await _static(session, p.tenant_id, group_id)
    device = await get(session, Device, p.tenant_id, device_id, "device")
    member = await session.scalar(
        select(GroupMember).where(
            GroupMember.group_id == group.id, GroupMember.device_id == device.id
        )
    )
    if member is None:
        raise NotFoundError(f"device {device_id} is not a member of group {group.name!r}")
    audit.record(
        session,
        p,
        "group.member_remove",
        resource_type="group",
        resource_id=group.id,
        before={"device_id": device_id},
    )
    await session.delete(member)


async def _static(session: AsyncSession, tenant_id: str, group_id: str) -> Group:
    group = await get_group(session, tenant_id, group_id)
    if group.kind != "static":
        raise ConflictError(
            f"group {group.name!r} is dynamic: its members come from its selector "
            "(see /groups/{id}/devices)"
        )
    return group


async def static_members(session: AsyncSession, tenant_id: str, group_id: str) -> list[Device]:
    group = await _static(session, tenant_id, group_id)
    rows = await session.scalars(
        select(Device)
        .join(GroupMember, GroupMember.device_id == Device.id)
        .where(GroupMember.group_id == group.id)
        .order_by(Device.id)
    )
    return list(rows)


# ----------------------------------------------------------------------------- resolution


async def devices_in_group(
    session: AsyncSession, tenant_id: str, group_id: str, recursive: bool = False
) -> list[Device]:
    """The group's devices (static members or selector matches), ordered by id;
    ``recursive`` adds every subgroup's."""
    group = await get_group(session, tenant_id, group_id)
    ids = [group.id]
    groups = {group.id: group}
    if recursive:
        groups = await _tenant_groups(session, tenant_id)
        ids += _descendants(groups, group.id)
    return await _resolve(session, tenant_id, [groups[i] for i in ids])


async def _resolve(session: AsyncSession, tenant_id: str, groups: Iterable[Group]) -> list[Device]:
    groups = list(groups)
    found: dict[str, Device] = {}
    static_ids = [g.id for g in groups if g.kind == "static"]
    if static_ids:
        rows = await session.scalars(
            select(Device)
            .join(GroupMember, GroupMember.device_id == Device.id)
            .where(GroupMember.group_id.in_(static_ids))
        )
        found.update((d.id, d) for d in rows)
    dynamic = [g for g in groups if g.kind == "dynamic"]
    if dynamic:
        places = await _places(session, tenant_id)
        for d in await session.scalars(select(Device).where(Device.tenant_id == tenant_id)):
            place = places.get(d.rack_id) if d.rack_id else None
            if any(matches(g.selector or {}, d, place) for g in dynamic):
                found[d.id] = d
    return [found[k] for k in sorted(found)]


async def groups_of_device(session: AsyncSession, device: Device) -> list[Group]:
    """The groups a device is directly in (static membership or a matching selector)."""
    rows = await session.scalars(
        select(Group)
        .join(GroupMember, GroupMember.group_id == Group.id)
        .where(GroupMember.device_id == device.id)
    )
    found = {g.id: g for g in rows}
    dynamic = await session.scalars(
        select(Group).where(Group.tenant_id == device.tenant_id, Group.kind == "dynamic")
    )
    place = await place_of(session, device)
    for g in dynamic:
        if matches(g.selector or {}, device, place):
            found[g.id] = g
    return [found[k] for k in sorted(found)]


async def device_groups_with_ancestors(
    session: AsyncSession, tenant_id: str, device_id: str
) -> list[tuple[Group, bool]]:
    """Every group a device belongs to, directly (True) or through a subgroup (False)."""
    device = await get(session, Device, tenant_id, device_id, "device")
    direct = await groups_of_device(session, device)
    out: dict[str, tuple[Group, bool]] = {g.id: (g, True) for g in direct}
    for g in direct:
        for a in await group_ancestors(session, g.id):
            out.setdefault(a.id, (a, False))
    return [out[k] for k in sorted(out)]
