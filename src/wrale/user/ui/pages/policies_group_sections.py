"""The group pages' contexts and answers: the tree, the group form, a group's
page with its effective policy, and its members.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from wrale.fleet.brain.models.groups import Group
from wrale.fleet.brain.models.policies import Policy
from wrale.fleet.brain.services import groups as group_svc
from wrale.fleet.brain.services import policies
from wrale.shared.errors import ConflictError, InvalidRequestError, NotFoundError
from wrale.user.ui.pages.policies_common import (
    effective_kind,
    form_str,
    page_count,
    policy_summary,
    redirect,
)
from wrale.user.ui.pages.policies_fields import CONTROL, KIND_TITLES, KINDS, PAGE_SIZE
from wrale.user.ui.pages.policies_scope import (
    ancestors,
    children_of,
    count_devices,
    device_page,
    group_clause,
    location_names,
    locations,
    member_counts,
    selector_error,
    selector_input,
    selector_text,
    selector_values,
    subtree,
    tenant_groups,
    tree_order,
)
from wrale.user.ui.web import Viewer, is_htmx, render

# ----------------------------------------------------------------------------- /groups


async def _tree(
    session: AsyncSession, tenant_id: str, groups: Mapping[str, Group], names: Mapping[str, str]
) -> list[dict[str, Any]]:
    """The groups as a tree (parents above children) with member and policy counts."""
    counts = await member_counts(session, tenant_id, groups.values())
    rows = await session.execute(
        select(Policy.scope_id, func.count())
        .where(Policy.tenant_id == tenant_id, Policy.scope_type == "group")
        .group_by(Policy.scope_id)
    )
    policy_counts = dict(rows.all())
    return [
        {
            "group": g,
            "depth": depth,
            "members": counts.get(g.id, 0),
            "policies": int(policy_counts.get(g.id, 0)),
            "selector": selector_text(g.selector, names) if g.kind == "dynamic" else "",
        }
        for g, depth in tree_order(groups)
    ]


async def group_list_page(
    request: Request,
    session: AsyncSession,
    viewer: Viewer,
    *,
    values: Mapping[str, Any] | None = None,
    errors: Mapping[str, str] | None = None,
    message: str = "",
    status_code: int = 200,
) -> Response:
    t = viewer.tenant_id
    groups = await tenant_groups(session, t)
    locs = await locations(session, t)
    ctx: dict[str, Any] = {"tree": await _tree(session, t, groups, location_names(locs))}
    if viewer.can_operate:
        ctx |= await group_form(
            session, viewer, groups=groups, locs=locs, values=values, errors=errors, message=message
        )
    return render(request, "groups/index.html", ctx, status_code=status_code)


async def group_form(
    session: AsyncSession,
    viewer: Viewer,
    *,
    group: Group | None = None,
    groups: Mapping[str, Group] | None = None,
    locs: Mapping[str, list[dict[str, str]]] | None = None,
    values: Mapping[str, Any] | None = None,
    errors: Mapping[str, str] | None = None,
    message: str = "",
) -> dict[str, Any]:
    """What ``groups/_form.html`` needs (a new group, or ``group`` edited)."""
    t = viewer.tenant_id
    groups = groups if groups is not None else await tenant_groups(session, t)
    locs = locs if locs is not None else await locations(session, t)
    barred = {g.id for g in subtree(groups, group.id)} if group else set()
    if values is None:
        values = {"name": "", "description": "", "kind": "static", "parent_id": ""}
        values |= selector_values(None)
        if group is not None:
            values = {
                "name": group.name,
                "description": group.description or "",
                "kind": group.kind,
                "parent_id": group.parent_id or "",
                **selector_values(group.selector),
            }
    return {
        "gform": {
            "group_id": group.id if group else None,
            "action": f"/groups/{group.id}" if group else "/groups",
            "values": dict(values),
            "errors": dict(errors or {}),
            "message": message,
            "parents": [
                {"id": g.id, "name": g.name} for g, _ in tree_order(groups) if g.id not in barred
            ],
            "locations": locs,
            "statuses": group_svc.STATUSES,
        }
    }


def group_input(form: FormData) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """The group fields of a form, the values as typed and the errors seen here."""
    selector, values, errors = selector_input(
        form, [s for s in form.getlist("status") if isinstance(s, str)]
    )
    name = form_str(form, "name", 200)
    description = form_str(form, "description", 400)
    values |= {
        "name": name,
        "description": description,
        "kind": form_str(form, "kind") or "static",
        "parent_id": form_str(form, "parent_id", 32),
    }
    if not name:
        errors["name"] = "give the group a name"
    elif len(name) > 100 or CONTROL.search(name):
        errors["name"] = "1–100 characters, no control characters"
    if len(description) > 255 or CONTROL.search(description):
        errors["description"] = "at most 255 characters, no control characters"
    if values["kind"] not in ("static", "dynamic"):
        errors["kind"] = "static or dynamic"
    fields = {
        "name": name,
        "description": description or None,
        "kind": values["kind"],
        "parent_id": values["parent_id"] or None,
        "selector": selector,
    }
    return fields, values, errors


def group_errors(exc: InvalidRequestError | NotFoundError | ConflictError) -> dict[str, str]:
    if exc.message.startswith("selector"):
        key, text = selector_error(exc)
        return {key: text}
    if isinstance(exc, ConflictError) and "name" in exc.details:
        return {"name": exc.message}
    if isinstance(exc, NotFoundError) and "group_id" in exc.details:
        return {"parent_id": exc.message}
    if "parent_id" in exc.details or "max_depth" in exc.details:
        return {"parent_id": exc.message}
    if isinstance(exc, NotFoundError):
        key, text = selector_error(exc)
        return {key: text}
    return {"form": exc.message}


async def group_ctx(
    session: AsyncSession, viewer: Viewer, group: Group, page: int
) -> dict[str, Any]:
    t = viewer.tenant_id
    groups = await tenant_groups(session, t)
    locs = await locations(session, t)
    chain = ancestors(groups, group)
    kids = children_of(groups).get(group.id, [])
    counts = await member_counts(session, t, [group, *kids])
    own = {
        p.kind: p
        for p in await session.scalars(
            select(Policy).where(
                Policy.tenant_id == t, Policy.scope_type == "group", Policy.scope_id == group.id
            )
        )
    }
    return {
        "group": group,
        "ancestors": list(reversed(chain)),
        "children": [{"group": g, "members": counts.get(g.id, 0)} for g in kids],
        "selector": selector_text(group.selector, location_names(locs)),
        "members": await members_ctx(session, viewer, group, page, count=counts[group.id]),
        "policies": [
            {
                "kind": k,
                "title": KIND_TITLES[k],
                "policy": policies.policy_view(own[k]) if k in own else None,
                "summary": policy_summary(k, own[k].document) if k in own else "",
            }
            for k in KINDS
        ],
        "effective": await _group_effective(session, t, group, chain, own),
        "delete_confirm": _delete_confirm(group, counts[group.id]),
        "subgroups": len(kids),
    }


def _delete_confirm(group: Group, members: int) -> str:
    noun = "member" if members == 1 else "members"
    if group.kind == "dynamic":
        return (
            f"Delete the dynamic group “{group.name}” ({members} matching device"
            f"{'' if members == 1 else 's'})? The devices stay in the fleet."
        )
    return (
        f"Delete the group “{group.name}” with its {members} {noun}? The devices stay in the fleet."
    )


async def _group_effective(
    session: AsyncSession,
    tenant_id: str,
    group: Group,
    chain: Sequence[Group],
    own: Mapping[str, Policy],
) -> list[dict[str, Any]]:
    """What a device of this group inherits (fleet → ancestors → this group), per kind: the
    values that are not defaults, each with its source."""
    ids = [g.id for g in reversed(chain)]  # farthest first
    rows = await session.scalars(
        select(Policy).where(
            Policy.tenant_id == tenant_id,
            or_(
                Policy.scope_type == "fleet",
                and_(Policy.scope_type == "group", Policy.scope_id.in_(ids or [""])),
            ),
        )
    )
    rank = {("fleet", ""): 0, **{("group", gid): i + 1 for i, gid in enumerate(ids)}}
    found = sorted(
        [p for p in rows if (p.scope_type, p.scope_id) in rank],
        key=lambda p: rank[(p.scope_type, p.scope_id)],
    )
    found += list(own.values())
    names = {g.id: g.name for g in [*chain, group]}
    out = []
    for kind, data in policies.merge_policies(found).items():
        eff = effective_kind(kind, data, names, {})
        eff["rows"] = [r for r in eff["rows"] if r["source"]]
        out.append(eff)
    return out


async def members_ctx(
    session: AsyncSession, viewer: Viewer, group: Group, page: int, *, count: int | None = None
) -> dict[str, Any]:
    t = viewer.tenant_id
    clause = group_clause(session, group)
    total = count if count is not None else await count_devices(session, t, clause)
    pages = page_count(total, PAGE_SIZE)
    page = min(page, pages)
    return {
        "group_id": group.id,
        "group_name": group.name,
        "static": group.kind == "static",
        "total": total,
        "page": page,
        "pages": pages,
        "rows": await device_page(session, t, clause, page),
        "device": "",
        "error": "",
        "notice": "",
    }


async def members_answer(
    request: Request, members: dict[str, Any], status_code: int = 200
) -> Response:
    if is_htmx(request):
        return render(
            request, "groups/_members.html", {"members": members}, status_code=status_code
        )
    if status_code >= 400:
        raise InvalidRequestError(members["error"] or "the member was not changed")
    return redirect(request, f"/groups/{members['group_id']}")
