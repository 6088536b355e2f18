"""The dashboard's policy pages: policies by kind and scope with forms and versions, and a
device's effective policy with where each value comes from (the reads, ``GET``). The writes are
routes of ``policies_actions``; the forms' fields live in ``policies_fields``, the contexts and
answers the pages share in ``policies_common``; the group pages are ``policies_groups``.
Writes call the brain services the REST API calls, with its roles (policies: admins, groups:
operators); the reads the services lack are aggregated in SQL, read-only.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import case, func, select

from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.groups import Group
from wrale.fleet.brain.models.policies import Policy
from wrale.fleet.brain.services import policies
from wrale.user.ui.pages.policies_common import (
    effective_kind,
    find_devices,
    names_of,
    page_count,
    page_number,
    policy_form,
    policy_page_ctx,
    policy_summary,
    resolve_device,
    scope_view,
    search_text,
)
from wrale.user.ui.pages.policies_fields import (
    KIND_TITLES,
    KINDS,
    PAGE_SIZE,
    SCOPE_TITLES,
    document_values,
)
from wrale.user.ui.web import AdminDep, SessionDep, ViewerDep, render

router = APIRouter(include_in_schema=False)


@router.get("/policies/_devices")
async def device_options(
    request: Request, viewer: ViewerDep, session: SessionDep, device: str = ""
) -> Response:
    """``<option>``s of a device picker's ``<datalist>`` (typed name → matches)."""
    found = await find_devices(session, viewer.tenant_id, device)
    return render(request, "policies/_device_options.html", {"devices": found})


@router.get("/policies")
async def policy_list(
    request: Request,
    viewer: ViewerDep,
    session: SessionDep,
    kind: str = "",
    scope: str = "",
    page: str = "1",
) -> Response:
    """Every policy of the tenant by kind and scope, with the fleet's at the top."""
    t = viewer.tenant_id
    kind = kind if kind in policies.KINDS else ""
    scope = scope if scope in SCOPE_TITLES else ""
    number = page_number(page)
    counts = await session.execute(
        select(Policy.kind, Policy.scope_type, func.count())
        .where(Policy.tenant_id == t)
        .group_by(Policy.kind, Policy.scope_type)
    )
    per_kind: dict[str, dict[str, int]] = {k: dict.fromkeys(SCOPE_TITLES, 0) for k in KINDS}
    for k, s, n in counts:
        if k in per_kind and s in SCOPE_TITLES:
            per_kind[k][s] = int(n)
    fleet = {
        p.kind: p
        for p in await session.scalars(
            select(Policy).where(Policy.tenant_id == t, Policy.scope_type == "fleet")
        )
    }
    stmt = select(Policy).where(Policy.tenant_id == t)
    if kind:
        stmt = stmt.where(Policy.kind == kind)
    if scope:
        stmt = stmt.where(Policy.scope_type == scope)
    total = int(await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    kind_rank = case({k: i for i, k in enumerate(KINDS)}, value=Policy.kind, else_=99)
    scope_rank = case({"fleet": 0, "group": 1, "device": 2}, value=Policy.scope_type, else_=9)
    rows = list(
        await session.scalars(
            stmt.order_by(kind_rank, scope_rank, Policy.id)
            .offset((number - 1) * PAGE_SIZE)
            .limit(PAGE_SIZE)
        )
    )
    groups = await names_of(
        session, Group, t, (p.scope_id for p in rows if p.scope_type == "group")
    )
    devices = await names_of(
        session, Device, t, (p.scope_id for p in rows if p.scope_type == "device")
    )
    items = [
        {
            **policies.policy_view(p),
            "scope": scope_view(p.scope_type, p.scope_id, groups, devices),
            "summary": policy_summary(p.kind, p.document),
        }
        for p in rows
    ]
    summary = [
        {
            "kind": k,
            "title": KIND_TITLES[k],
            "fleet": policies.policy_view(fleet[k]) if k in fleet else None,
            "fleet_summary": policy_summary(k, fleet[k].document) if k in fleet else "",
            "groups": per_kind[k]["group"],
            "devices": per_kind[k]["device"],
        }
        for k in KINDS
    ]
    return render(
        request,
        "policies/index.html",
        {
            "summary": summary,
            "policy_rows": items,
            "kind": kind,
            "scope": scope,
            "kinds": KINDS,
            "kind_titles": KIND_TITLES,
            "scope_titles": SCOPE_TITLES,
            "page": number,
            "pages": page_count(total, PAGE_SIZE),
            "total": total,
        },
    )


@router.get("/policies/new")
async def policy_new(
    request: Request,
    viewer: AdminDep,
    session: SessionDep,
    kind: str = "thermal",
    scope_type: str = "fleet",
    scope_id: str = "",
) -> Response:
    """The form of a new policy; ``scope_type``/``scope_id`` preselect where it applies."""
    kind = kind if kind in policies.KINDS else "thermal"
    scope_type = scope_type if scope_type in SCOPE_TITLES else "fleet"
    device = ""
    if scope_type == "device" and scope_id:
        names = await names_of(session, Device, viewer.tenant_id, [scope_id])
        device = names.get(scope_id, "")
    ctx = await policy_form(
        session,
        viewer,
        kind,
        scope_type=scope_type,
        group_id=scope_id if scope_type == "group" else "",
        device=device,
    )
    return render(
        request,
        "policies/new.html",
        {**ctx, "kinds": KINDS, "kind_titles": KIND_TITLES, "scope_id": scope_id},
    )


@router.get("/policies/effective")
async def effective(
    request: Request, viewer: ViewerDep, session: SessionDep, device: str = ""
) -> Response:
    """A device's effective policy, each value with the policy it comes from."""
    t = viewer.tenant_id
    found, candidates = await resolve_device(session, t, device)
    ctx: dict[str, Any] = {
        "query": search_text(device),
        "device": found,
        "candidates": candidates,
        "kinds": [],
        "chain": [],
        "kind_titles": KIND_TITLES,
    }
    if found is not None:
        eff = await policies.effective_policy(session, t, found["id"])
        group_ids = [c["scope_id"] for c in eff["chain"] if c["scope_type"] == "group"]
        groups = await names_of(session, Group, t, group_ids)
        devices = {found["id"]: found["name"]}
        ctx["chain"] = [
            scope_view(c["scope_type"], c["scope_id"], groups, devices) for c in eff["chain"]
        ]
        ctx["kinds"] = [effective_kind(kind, eff["kinds"][kind], groups, devices) for kind in KINDS]
        ctx["own"] = {
            p.kind: p.id
            for p in await session.scalars(
                select(Policy).where(
                    Policy.tenant_id == t,
                    Policy.scope_type == "device",
                    Policy.scope_id == found["id"],
                )
            )
        }
    else:
        ctx["own"] = {}
    return render(request, "policies/effective.html", ctx)


@router.get("/policies/{policy_id}")
async def policy_page(
    request: Request, viewer: ViewerDep, session: SessionDep, policy_id: str, vpage: str = "1"
) -> Response:
    pol = await policies.get_policy(session, viewer.tenant_id, policy_id)
    ctx = await policy_page_ctx(session, viewer, pol, page_number(vpage))
    if viewer.is_admin:
        ctx.update(
            await policy_form(
                session,
                viewer,
                pol.kind,
                policy=pol,
                values=document_values(pol.kind, pol.document),
                expected_version=pol.version,
            )
        )
    return render(request, "policies/detail.html", ctx)
