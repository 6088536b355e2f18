"""What the policy and group pages share: the answers after a change, the address bar's
texts, the device search, the policy form's and page's contexts, a policy kind's effective
values with where each comes from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.groups import Group
from wrale.fleet.brain.models.policies import Policy, PolicyVersion
from wrale.fleet.brain.services import policies
from wrale.fleet.brain.services.registry import is_id
from wrale.shared.errors import InvalidRequestError
from wrale.user.ui.pages.policies_fields import (
    CONTROL,
    DEVICE_OPTIONS,
    KIND_TITLES,
    KINDS,
    VERSIONS_PAGE,
    cross_field_problems,
    display,
    policy_fields,
)
from wrale.user.ui.pages.policies_scope import scope_device_count
from wrale.user.ui.web import Viewer, is_htmx

# ----------------------------------------------------------------------------- helpers


def redirect(request: Request, location: str) -> Response:
    """After a change: htmx follows ``HX-Redirect``, a plain form the 303."""
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": location})
    return Response(status_code=303, headers={"Location": location})


def form_str(form: FormData, name: str, max_len: int = 500) -> str:
    value = form.get(name)
    return value.strip()[:max_len] if isinstance(value, str) else ""


def search_text(text: str | None, max_len: int = 100) -> str:
    """A search text from the address bar: trimmed, without control characters."""
    return CONTROL.sub("", text or "").strip()[:max_len]


def page_number(text: str | None) -> int:
    try:
        return max(1, min(int(text or 1), 100_000))
    except ValueError:
        return 1


def page_count(total: int, size: int) -> int:
    return max(1, -(-total // size))


async def names_of(
    session: AsyncSession, model: type[Device] | type[Group], tenant_id: str, ids: Iterable[str]
) -> dict[str, str]:
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    rows = await session.execute(
        select(model.id, model.name).where(model.tenant_id == tenant_id, model.id.in_(wanted))
    )
    return dict(rows.all())


def scope_view(
    scope_type: str, scope_id: str | None, groups: Mapping[str, str], devices: Mapping[str, str]
) -> dict[str, Any]:
    """How a policy's scope is shown: a title, a name and where it links to."""
    if scope_type == "group" and scope_id:
        return {
            "type": "group",
            "id": scope_id,
            "name": groups.get(scope_id, scope_id),
            "href": f"/groups/{scope_id}",
        }
    if scope_type == "device" and scope_id:
        return {
            "type": "device",
            "id": scope_id,
            "name": devices.get(scope_id, scope_id),
            "href": f"/devices/{scope_id}",
        }
    return {"type": "fleet", "id": None, "name": "Whole fleet", "href": None}


def policy_summary(kind: str, document: Mapping[str, Any], limit: int = 4) -> str:
    labels = {f.name: f.label for f in policy_fields(kind)}
    parts = [f"{labels.get(k, k)} {display(k, v)}" for k, v in document.items()]
    if not parts:
        return "sets nothing (inherits everything)"
    more = f" · +{len(parts) - limit} more" if len(parts) > limit else ""
    return " · ".join(parts[:limit]) + more


# ----------------------------------------------------------------------------- device search


async def find_devices(
    session: AsyncSession, tenant_id: str, text: str, limit: int = DEVICE_OPTIONS
) -> list[dict[str, Any]]:
    """Devices whose name contains ``text`` (case-insensitive), by name."""
    text = search_text(text)
    stmt = select(Device.id, Device.name, Device.status, Device.model).where(
        Device.tenant_id == tenant_id
    )
    if text:
        stmt = stmt.where(func.lower(Device.name).contains(text.lower(), autoescape=True))
    rows = await session.execute(stmt.order_by(Device.name).limit(limit))
    return [dict(r._mapping) for r in rows]


async def resolve_device(
    session: AsyncSession, tenant_id: str, text: str
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The device named (or with the id) ``text``; else the unique one whose name contains
    it; else None and the candidates to pick from."""
    text = search_text(text)
    if not text:
        return None, []
    cols = (Device.id, Device.name, Device.status, Device.model)
    exact = or_(Device.name == text, Device.id == text) if is_id(text) else Device.name == text
    row = (await session.execute(select(*cols).where(Device.tenant_id == tenant_id, exact))).first()
    if row is not None:
        return dict(row._mapping), []
    found = await find_devices(session, tenant_id, text)
    if len(found) == 1:
        return found[0], []
    return None, found


# ----------------------------------------------------------------------------- /policies


async def _group_choices(session: AsyncSession, tenant_id: str) -> list[dict[str, str]]:
    rows = await session.execute(
        select(Group.id, Group.name).where(Group.tenant_id == tenant_id).order_by(Group.name)
    )
    return [{"id": i, "name": n} for i, n in rows]


def checked_kind(text: str | None) -> str:
    if text not in policies.KINDS:
        raise InvalidRequestError(f"kind: use one of {', '.join(KINDS)}", field="kind")
    return text


async def policy_form(
    session: AsyncSession,
    viewer: Viewer,
    kind: str,
    *,
    policy: Policy | None = None,
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    message: str = "",
    existing_id: str | None = None,
    scope_type: str = "fleet",
    group_id: str = "",
    device: str = "",
    expected_version: int | None = None,
) -> dict[str, Any]:
    """What ``policies/_form.html`` needs (a new policy, or ``policy`` edited)."""
    return {
        "form": {
            "kind": kind,
            "kind_title": KIND_TITLES[kind],
            "fields": policy_fields(kind),
            "values": dict(values or {}),
            "errors": dict(errors or {}),
            "message": message,
            "existing_id": existing_id,
            "policy_id": policy.id if policy else None,
            "action": f"/policies/{policy.id}" if policy else "/policies",
            "scope_type": scope_type,
            "group_id": group_id,
            "device": device,
            "groups": [] if policy else await _group_choices(session, viewer.tenant_id),
            "expected_version": expected_version,
        }
    }


def effective_kind(
    kind: str, data: Mapping[str, Any], groups: Mapping[str, str], devices: Mapping[str, str]
) -> dict[str, Any]:
    labels = {f.name: f for f in policy_fields(kind)}
    rows = []
    for name, f in data["fields"].items():
        src = f["source"]
        source = None
        if src:
            source = {
                **src,
                "scope": scope_view(src["scope_type"], src["scope_id"], groups, devices),
                "href": f"/policies/{src['policy_id']}",
            }
        field = labels.get(name)
        rows.append(
            {
                "path": f"{kind}.{name}",
                "label": field.label if field else name,
                "value": display(name, f["value"]),
                "source": source,
            }
        )
    return {
        "kind": kind,
        "title": KIND_TITLES[kind],
        "rows": rows,
        "errors": data["errors"],
        "overridden": sum(1 for r in rows if r["source"]),
    }


async def policy_page_ctx(
    session: AsyncSession, viewer: Viewer, pol: Policy, vpage: int
) -> dict[str, Any]:
    t = viewer.tenant_id
    groups = await names_of(session, Group, t, [pol.scope_id] if pol.scope_type == "group" else [])
    devices = await names_of(
        session, Device, t, [pol.scope_id] if pol.scope_type == "device" else []
    )
    scope = scope_view(pol.scope_type, pol.scope_id, groups, devices)
    defaults = policies.defaults(pol.kind)
    rows = [
        {
            "name": f.name,
            "label": f.label,
            "set": f.name in pol.document,
            "value": display(f.name, pol.document[f.name]) if f.name in pol.document else "",
            "default": display(f.name, defaults[f.name]),
        }
        for f in policy_fields(pol.kind)
    ]
    found = list(
        await session.scalars(
            select(PolicyVersion)
            .where(PolicyVersion.tenant_id == t, PolicyVersion.policy_id == pol.id)
            .order_by(PolicyVersion.version.desc())
            .offset((vpage - 1) * VERSIONS_PAGE)
            .limit(VERSIONS_PAGE + 1)
        )
    )
    versions = []
    for i, v in enumerate(found[:VERSIONS_PAGE]):
        before = found[i + 1].document if i + 1 < len(found) else None
        versions.append(
            {
                "version": v.version,
                "author": v.author,
                "created_at": v.created_at,
                "summary": policy_summary(pol.kind, v.document, limit=6),
                "changed": _changed(pol.kind, before, v.document),
            }
        )
    reach = await scope_device_count(session, t, pol.scope_type, pol.scope_id or None)
    what = f"the {pol.kind} policy of {scope['name'] if scope['id'] else 'the whole fleet'}"
    return {
        "policy": policies.policy_view(pol),
        "title": f"{KIND_TITLES[pol.kind]} policy",
        "scope": scope,
        "rows": rows,
        "problems": cross_field_problems(pol.kind, pol.document),
        "versions": versions,
        "vpage": vpage,
        "more_versions": len(found) > VERSIONS_PAGE,
        "reach": reach,
        "delete_confirm": (
            f"Delete {what} (version {pol.version})? Its {reach} device"
            f"{'' if reach == 1 else 's'} fall back to the policies above it."
        ),
    }


def _changed(kind: str, before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> str:
    if before is None:
        return "created"
    labels = {f.name: f.label for f in policy_fields(kind)}
    parts = []
    for name in dict.fromkeys([*before, *after]):
        if name not in after:
            parts.append(f"{labels.get(name, name)}: now inherited")
        elif before.get(name) != after[name] or name not in before:
            parts.append(f"{labels.get(name, name)} → {display(name, after[name])}")
    return "; ".join(parts) or "no change"
