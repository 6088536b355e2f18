"""Bulk tag and static-group changes over a selection of boards as set statements: one
read of the selection (who has the tag / is a member already), then one UPDATE (tags, a
JSON list changed in SQL) or one INSERT ... ON CONFLICT DO NOTHING / DELETE (group
members) per ``CHUNK`` ids, audited as one entry with the count (none when nothing
changed). When the change moves boards in or out of a group that carries policies,
their twins are recomposed in the background (``twin_recompose``), never board by board
in the request.

Unknown or foreign ids are returned as ``missing`` (the caller decides: the API refuses
the change, the dashboard reports them); the same call twice changes nothing the second
time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.base import new_id
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.models.groups import Group, GroupMember
from wrale.fleet.brain.models.policies import Policy
from wrale.fleet.brain.services import audit, twin_recompose
from wrale.fleet.brain.services.group_chains import CHUNK, ancestors
from wrale.fleet.brain.services.groups import get_group
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.shared.errors import ConflictError, InvalidRequestError, NotFoundError

MAX_TAGS = 50  # per device, as the API allows
TAG_RE = re.compile(r"^[A-Za-z0-9_.:=/@+-]{1,64}$")
MAX_SELECTION = twin_recompose.MAX_LISTED_DEVICES


@dataclass
class BulkResult:
    """What a bulk change did: boards changed, boards skipped (name, why), ids unknown,
    and the recomposition of their twins when policies depend on the change."""

    changed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # ids not of the tenant's devices
    recompose: dict[str, Any] | None = None


def _chunks(ids: Sequence[str]) -> list[list[str]]:
    return [list(ids[i : i + CHUNK]) for i in range(0, len(ids), CHUNK)]


def _selection(device_ids: Sequence[str]) -> list[str]:
    ids = list(dict.fromkeys(device_ids))
    if not ids:
        raise InvalidRequestError("device_ids: select devices first", field="device_ids")
    if len(ids) > MAX_SELECTION:
        raise InvalidRequestError(
            f"device_ids: at most {MAX_SELECTION:,} devices at once", field="device_ids"
        )
    return ids


async def _rows(
    session: AsyncSession, tenant_id: str, ids: Sequence[str]
) -> list[tuple[str, str, list[str]]]:
    """(id, name, tags) of the selected devices of the tenant, in id order."""
    out: list[tuple[str, str, list[str]]] = []
    for chunk in _chunks(ids):
        rows = await session.execute(
            select(Device.id, Device.name, Device.tags).where(
                Device.tenant_id == tenant_id, Device.id.in_(chunk)
            )
        )
        out.extend((i, n, list(t or [])) for i, n, t in rows)
    return sorted(out)


def _result(
    ids: Sequence[str], rows: Sequence[tuple[str, str, Any]], missing_ok: bool
) -> BulkResult:
    """A result naming the selected ids that are not the tenant's devices (404 unless
    ``missing_ok``: nothing is changed then)."""
    known = {r[0] for r in rows}
    missing = [i for i in ids if i not in known]
    if missing and not missing_ok:
        raise NotFoundError(f"no device {missing[0]}", missing=len(missing))
    return BulkResult(missing=missing)


async def _policies_on(session: AsyncSession, tenant_id: str, group_ids: set[str]) -> bool:
    if not group_ids:
        return False
    found = await session.scalar(
        select(Policy.id)
        .where(
            Policy.tenant_id == tenant_id,
            Policy.scope_type == "group",
            Policy.scope_id.in_(sorted(group_ids)),
        )
        .limit(1)
    )
    return found is not None


async def _recompose(
    session: AsyncSession, p: Principal, ids: list[str], groups: set[str], reason: str
) -> dict[str, Any] | None:
    """Queue the twins of ``ids`` when a policy sits on one of ``groups``."""
    if not ids or not await _policies_on(session, p.tenant_id, groups):
        return None
    return await twin_recompose.enqueue(
        session, p.tenant_id, "devices", device_ids=ids, reason=reason, by=p.name
    )


# ----------------------------------------------------------------------------- tags


def _tag_sql(dialect: str, add: bool) -> tuple[str, str]:
    """(new value, condition) of ``devices.tags`` for adding / removing ``:tag``."""
    if dialect == "postgresql":
        has = "COALESCE(devices.tags::jsonb, '[]'::jsonb) @> jsonb_build_array(CAST(:t1 AS text))"
        if add:
            value = (
                "(COALESCE(devices.tags::jsonb, '[]'::jsonb) "
                "|| jsonb_build_array(CAST(:t2 AS text)))::json"
            )
            room = f"json_array_length(COALESCE(devices.tags, '[]'::json)) < {MAX_TAGS}"
            return value, f"NOT ({has}) AND {room}"
        return "(devices.tags::jsonb - CAST(:t2 AS text))::json", has
    has = "EXISTS (SELECT 1 FROM json_each(COALESCE(devices.tags, '[]')) WHERE value = :t1)"
    if add:
        value = "json_insert(COALESCE(devices.tags, '[]'), '$[#]', :t2)"
        room = f"json_array_length(COALESCE(devices.tags, '[]')) < {MAX_TAGS}"
        return value, f"NOT {has} AND {room}"
    value = "(SELECT json_group_array(value) FROM json_each(devices.tags) WHERE value != :t2)"
    return value, has


async def change_tag(
    session: AsyncSession,
    p: Principal,
    device_ids: Sequence[str],
    tag: str,
    *,
    add: bool,
    missing_ok: bool = True,
) -> BulkResult:
    """Add ``tag`` to (or remove it from) the selected devices: one UPDATE per chunk."""
    p.require(Role.OPERATOR, "changing devices")
    tag = tag.strip()
    if not TAG_RE.match(tag):
        raise InvalidRequestError(
            "tag: letters, digits and _.:=/@+- (1 to 64 characters)", field="tag"
        )
    ids = _selection(device_ids)
    rows = await _rows(session, p.tenant_id, ids)
    out = _result(ids, rows, missing_ok)
    todo: list[str] = []
    for device_id, name, tags in rows:
        if (tag in tags) == add:
            out.skipped.append((name, "has it already" if add else "does not have it"))
        elif add and len(tags) >= MAX_TAGS:
            out.skipped.append((name, f"has {MAX_TAGS} tags already"))
        else:
            todo.append(device_id)
    value, condition = _tag_sql(session.get_bind().dialect.name, add)
    for chunk in _chunks(todo):
        result = await session.execute(
            update(Device)
            .where(Device.tenant_id == p.tenant_id, Device.id.in_(chunk))
            .where(text(condition).bindparams(t1=tag))
            .values(tags=text(value).bindparams(t2=tag))
            .execution_options(synchronize_session=False)
        )
        out.changed += int(result.rowcount or 0)  # type: ignore[attr-defined]
    verb = "add" if add else "remove"
    if out.changed:
        audit.record(
            session,
            p,
            f"device.bulk_tag_{verb}",
            resource_type="device",
            details={
                "tag": tag,
                "count": out.changed,
                "selected": len(ids),
                "missing": len(out.missing),
            },
        )
    out.recompose = await _recompose(
        session, p, todo, await _tag_groups(session, p.tenant_id, tag), f"tag.{verb} {tag}"
    )
    return out


async def _tag_groups(session: AsyncSession, tenant_id: str, tag: str) -> set[str]:
    """The dynamic groups whose selector names ``tag``, and their ancestors: the groups
    a board may enter or leave when the tag changes."""
    groups = {
        g.id: g for g in await session.scalars(select(Group).where(Group.tenant_id == tenant_id))
    }
    out: set[str] = set()
    for g in groups.values():
        sel = g.selector or {}
        if g.kind == "dynamic" and tag in {*sel.get("tags_all", ()), *sel.get("tags_any", ())}:
            out |= {g.id, *(a.id for a in ancestors(groups, g.id))}
    return out


# ----------------------------------------------------------------------------- groups


async def change_group(
    session: AsyncSession,
    p: Principal,
    group_id: str,
    device_ids: Sequence[str],
    *,
    add: bool,
    missing_ok: bool = True,
) -> BulkResult:
    """Put the selected devices in a static group (or take them out): one INSERT ...
    ON CONFLICT DO NOTHING (or DELETE) per chunk."""
    p.require(Role.OPERATOR, "changing group members")
    group = await get_group(session, p.tenant_id, group_id)
    if group.kind != "static":
        raise ConflictError(
            f"group {group.name!r} is dynamic: its members come from its selector",
            field="group_id",
        )
    ids = _selection(device_ids)
    rows = await _rows(session, p.tenant_id, ids)
    out = _result(ids, rows, missing_ok)
    members: set[str] = set()
    for chunk in _chunks([r[0] for r in rows]):
        members |= set(
            await session.scalars(
                select(GroupMember.device_id).where(
                    GroupMember.group_id == group.id, GroupMember.device_id.in_(chunk)
                )
            )
        )
    todo = [i for i, _, _ in rows if (i in members) != add]
    why = "is a member already" if add else "is not a member"
    out.skipped = [(name, why) for i, name, _ in rows if (i in members) == add]
    is_pg = session.get_bind().dialect.name == "postgresql"
    at = wall_now()
    for chunk in _chunks(todo):
        if add:
            values = [
                {
                    "id": new_id(),
                    "tenant_id": p.tenant_id,
                    "group_id": group.id,
                    "device_id": i,
                    "created_at": at,
                }
                for i in chunk
            ]
            stmt: Any = (pg_insert if is_pg else sqlite_insert)(GroupMember).values(values)
            stmt = stmt.on_conflict_do_nothing(index_elements=["group_id", "device_id"])
        else:
            stmt = delete(GroupMember).where(
                GroupMember.group_id == group.id, GroupMember.device_id.in_(chunk)
            )
        result = await session.execute(stmt.execution_options(synchronize_session=False))
        out.changed += int(result.rowcount or 0)  # type: ignore[attr-defined]
    verb = "add" if add else "remove"
    if out.changed:
        audit.record(
            session,
            p,
            f"group.bulk_member_{verb}",
            resource_type="group",
            resource_id=group.id,
            details={"count": out.changed, "selected": len(ids), "missing": len(out.missing)},
        )
    groups = {
        g.id: g for g in await session.scalars(select(Group).where(Group.tenant_id == p.tenant_id))
    }
    chain = {group.id, *(a.id for a in ancestors(groups, group.id))}
    out.recompose = await _recompose(session, p, todo, chain, f"group.{verb} {group.name}")
    return out
