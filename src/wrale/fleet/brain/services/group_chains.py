"""The groups many devices belong to, with their ancestors, in a constant number of queries
(the tenant's groups, the batch's static memberships, the racks of the batch when dynamic
groups exist): what a batched twin recomposition reads instead of walking each device's
groups one query at a time. Reads only; the same order as ``policy_effective``'s chain.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device, Rack, Room
from wrale.fleet.brain.models.groups import Group, GroupMember
from wrale.fleet.brain.services.selectors import Place, matches

CHUNK = 1000  # ids per IN (...): well under every driver's parameter limit


def ancestors(groups: dict[str, Group], group_id: str) -> list[Group]:
    """Pure ``groups.group_ancestors`` over an in-memory map: parent first, stopping at a
    missing parent or a cycle."""
    out: list[Group] = []
    seen = {group_id}
    group = groups.get(group_id)
    while group is not None and group.parent_id and group.parent_id not in seen:
        group = groups.get(group.parent_id)
        if group is None:
            break
        seen.add(group.id)
        out.append(group)
    return out


def chain(groups: dict[str, Group], direct: Sequence[Group]) -> list[Group]:
    """``direct`` groups and their ancestors, farthest (shallowest) first; groups at the
    same depth in id order (the first direct group, by id, decides a shared one's depth)."""
    depth: dict[str, tuple[int, Group]] = {}
    for g in sorted(direct, key=lambda x: x.id):
        line = [g, *ancestors(groups, g.id)]  # nearest first
        for i, member in enumerate(line):
            depth.setdefault(member.id, (len(line) - 1 - i, member))
    return [g for _, g in sorted(depth.values(), key=lambda x: (x[0], x[1].id))]


async def _places(session: AsyncSession, rack_ids: set[str]) -> dict[str, Place]:
    out: dict[str, Place] = {}
    ids = sorted(rack_ids)
    for i in range(0, len(ids), CHUNK):
        rows = await session.execute(
            select(Rack.id, Rack.room_id, Room.site_id)
            .join(Room, Room.id == Rack.room_id)
            .where(Rack.id.in_(ids[i : i + CHUNK]))
        )
        out.update((r.id, Place(r.room_id, r.site_id)) for r in rows)
    return out


async def group_chains(
    session: AsyncSession, tenant_id: str, devices: Sequence[Device]
) -> dict[str, list[Group]]:
    """device id → its groups (static membership or a matching selector) and their
    ancestors, farthest first."""
    groups = {
        g.id: g for g in await session.scalars(select(Group).where(Group.tenant_id == tenant_id))
    }
    if not groups:
        return {d.id: [] for d in devices}
    static: dict[str, list[Group]] = defaultdict(list)
    ids = [d.id for d in devices]
    for i in range(0, len(ids), CHUNK):
        rows = await session.execute(
            select(GroupMember.device_id, GroupMember.group_id).where(
                GroupMember.device_id.in_(ids[i : i + CHUNK])
            )
        )
        for device_id, group_id in rows:
            if group_id in groups:
                static[device_id].append(groups[group_id])
    dynamic = [g for g in groups.values() if g.kind == "dynamic"]
    places: dict[str, Place] = {}
    if dynamic:
        places = await _places(session, {d.rack_id for d in devices if d.rack_id})
    out: dict[str, list[Group]] = {}
    for d in devices:
        place = places.get(d.rack_id) if d.rack_id else None
        direct = {g.id: g for g in static.get(d.id, ())}
        direct.update((g.id, g) for g in dynamic if matches(g.selector or {}, d, place))
        out[d.id] = chain(groups, list(direct.values()))
    return out
