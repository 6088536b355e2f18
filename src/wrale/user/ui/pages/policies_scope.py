"""The reads behind scopes: a tenant's groups as a tree, their members (static and
dynamic), device counts and pages, locations, and the dynamic groups' selector forms.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, false, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device, Rack, Room, Site, Zone
from wrale.fleet.brain.models.groups import Group, GroupMember
from wrale.fleet.brain.services.device_list import selector_clause
from wrale.shared.errors import WraleError
from wrale.user.ui.pages.policies_fields import CONTROL, PAGE_SIZE

# ----------------------------------------------------------------------------- group reads


def group_clause(session: AsyncSession, group: Group) -> ColumnElement[bool]:
    """The devices of one group (its static members or its selector's matches)."""
    if group.kind == "static":
        return Device.id.in_(select(GroupMember.device_id).where(GroupMember.group_id == group.id))
    return selector_clause(session, dict(group.selector or {}))


async def count_devices(session: AsyncSession, tenant_id: str, clause: ColumnElement[bool]) -> int:
    stmt = select(func.count()).select_from(Device).where(Device.tenant_id == tenant_id, clause)
    return int(await session.scalar(stmt) or 0)


async def tenant_groups(session: AsyncSession, tenant_id: str) -> dict[str, Group]:
    rows = await session.scalars(
        select(Group).where(Group.tenant_id == tenant_id).order_by(Group.name)
    )
    return {g.id: g for g in rows}


def children_of(groups: Mapping[str, Group]) -> dict[str | None, list[Group]]:
    out: dict[str | None, list[Group]] = defaultdict(list)
    for g in groups.values():  # already by name
        parent = g.parent_id if g.parent_id in groups else None
        out[parent].append(g)
    return out


def tree_order(groups: Mapping[str, Group]) -> list[tuple[Group, int]]:
    """Every group once, each under its parent (depth-first, by name), with its depth."""
    kids = children_of(groups)
    out: list[tuple[Group, int]] = []
    seen: set[str] = set()

    def walk(parent: str | None, depth: int) -> None:
        for g in kids.get(parent, []):
            if g.id not in seen:
                seen.add(g.id)
                out.append((g, depth))
                walk(g.id, depth + 1)

    walk(None, 0)
    out += [(g, 0) for g in groups.values() if g.id not in seen]  # a cycle: never, but shown
    return out


def subtree(groups: Mapping[str, Group], root_id: str) -> list[Group]:
    """The group and every group under it."""
    kids = children_of(groups)
    out, todo, seen = [], [root_id], set()
    while todo:
        gid = todo.pop()
        if gid in seen or gid not in groups:
            continue
        seen.add(gid)
        out.append(groups[gid])
        todo += [c.id for c in kids.get(gid, [])]
    return out


def ancestors(groups: Mapping[str, Group], group: Group) -> list[Group]:
    """Parent, grandparent… nearest first."""
    out: list[Group] = []
    seen = {group.id}
    while group.parent_id and group.parent_id in groups and group.parent_id not in seen:
        group = groups[group.parent_id]
        seen.add(group.id)
        out.append(group)
    return out


async def member_counts(
    session: AsyncSession, tenant_id: str, groups: Iterable[Group]
) -> dict[str, int]:
    """Direct devices of each group: static ones in one GROUP BY, dynamic ones each counted
    in SQL (no device rows loaded)."""
    groups = list(groups)
    rows = await session.execute(
        select(GroupMember.group_id, func.count())
        .where(GroupMember.tenant_id == tenant_id)
        .group_by(GroupMember.group_id)
    )
    static = dict(rows.all())
    out: dict[str, int] = {}
    for g in groups:
        if g.kind == "static":
            out[g.id] = int(static.get(g.id, 0))
        else:
            out[g.id] = await count_devices(session, tenant_id, group_clause(session, g))
    return out


async def scope_device_count(
    session: AsyncSession, tenant_id: str, scope_type: str, scope_id: str | None
) -> int:
    """How many devices a policy on this scope reaches (a group: with its subgroups)."""
    if scope_type == "device":
        return 1
    if scope_type == "fleet":
        return await count_devices(session, tenant_id, true())
    groups = await tenant_groups(session, tenant_id)
    if not scope_id or scope_id not in groups:
        return 0
    clauses = [group_clause(session, g) for g in subtree(groups, scope_id)]
    return await count_devices(session, tenant_id, or_(false(), *clauses))


async def device_page(
    session: AsyncSession, tenant_id: str, clause: ColumnElement[bool], page: int
) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(Device.id, Device.name, Device.status, Device.model, Device.tags, Device.rack_id)
        .where(Device.tenant_id == tenant_id, clause)
        .order_by(Device.name, Device.id)
        .offset((page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    )
    return [dict(r._mapping) for r in rows]


async def locations(session: AsyncSession, tenant_id: str) -> dict[str, list[dict[str, str]]]:
    """Sites, rooms, racks and zones to pick in a selector (ids with readable names)."""
    rows = await session.execute(select(Site.id, Site.name).where(Site.tenant_id == tenant_id))
    sites: dict[str, str] = {r.id: r.name for r in rows}
    rooms = (
        await session.execute(
            select(Room.id, Room.name, Room.site_id).where(Room.tenant_id == tenant_id)
        )
    ).all()
    room_names = {r.id: f"{sites.get(r.site_id, '?')} / {r.name}" for r in rooms}
    racks = (
        await session.execute(
            select(Rack.id, Rack.name, Rack.room_id).where(Rack.tenant_id == tenant_id)
        )
    ).all()
    zones = (
        await session.execute(select(Zone.id, Zone.name).where(Zone.tenant_id == tenant_id))
    ).all()

    def sort(items: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
        return [{"id": i, "name": n} for i, n in sorted(items, key=lambda x: x[1].lower())]

    return {
        "site_id": sort(sites.items()),
        "room_id": sort(room_names.items()),
        "rack_id": sort((r.id, f"{room_names.get(r.room_id, '?')} / {r.name}") for r in racks),
        "zone_id": sort((z.id, z.name) for z in zones),
    }


# ----------------------------------------------------------------------------- selector forms

LOCATION_KEYS = ("site_id", "room_id", "rack_id", "zone_id")


def _tags(text: str) -> list[str]:
    return sorted({t.strip() for t in text.split(",") if t.strip()})


def selector_input(
    form: Mapping[str, Any], statuses: Sequence[str]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """A selector from form fields (empty ones left out), the values as typed, and the
    errors the form itself can see (control characters)."""
    values: dict[str, Any] = {"status": [s for s in statuses if isinstance(s, str)]}
    selector: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key in ("tags_all", "tags_any", "model", *LOCATION_KEYS):
        raw = form.get(key)
        values[key] = raw.strip()[:2000] if isinstance(raw, str) else ""
    for key in ("tags_all", "tags_any"):
        if CONTROL.search(values[key]):
            errors[key] = "tags cannot hold control characters"
        elif tags := _tags(values[key]):
            selector[key] = tags
    if values["status"]:
        selector["status"] = sorted(set(values["status"]))
    if values["model"]:
        if CONTROL.search(values["model"]):
            errors["model"] = "the model cannot hold control characters"
        else:
            selector["model"] = values["model"]
    for key in LOCATION_KEYS:
        if values[key]:
            selector[key] = values[key]
    return selector, values, errors


def selector_values(selector: Mapping[str, Any] | None) -> dict[str, Any]:
    s = selector or {}
    return {
        "tags_all": ", ".join(s.get("tags_all") or []),
        "tags_any": ", ".join(s.get("tags_any") or []),
        "status": list(s.get("status") or []),
        "model": s.get("model") or "",
        **{k: s.get(k) or "" for k in LOCATION_KEYS},
    }


def selector_error(exc: WraleError) -> tuple[str, str]:
    """The form field a service's selector error is about, and its message."""
    m = re.match(r"selector\.(\w+): (.*)", exc.message)
    if m and m.group(1) in ("tags_all", "tags_any", "status", "model", *LOCATION_KEYS):
        return m.group(1), m.group(2)
    for key in LOCATION_KEYS:
        if f"{key}_id" in exc.details or key in exc.details:
            return key, exc.message
    return "selector", exc.message.removeprefix("selector: ")


def selector_text(selector: Mapping[str, Any] | None, names: Mapping[str, str]) -> str:
    """A selector in words ("every device" when empty)."""
    s = selector or {}
    parts = []
    if s.get("tags_all"):
        parts.append("tags all of " + ", ".join(s["tags_all"]))
    if s.get("tags_any"):
        parts.append("tags any of " + ", ".join(s["tags_any"]))
    if s.get("status"):
        parts.append("status " + " or ".join(s["status"]))
    if "model" in s:
        parts.append(f"model {s['model']}")
    for key in LOCATION_KEYS:
        if s.get(key):
            parts.append(f"{key.removesuffix('_id')} {names.get(s[key], s[key])}")
    return " · ".join(parts) if parts else "every device"


def location_names(locs: Mapping[str, list[dict[str, str]]]) -> dict[str, str]:
    return {item["id"]: item["name"] for items in locs.values() for item in items}
