"""The dashboard's policy and group pages: policies by kind and scope with forms and versions,
a device's effective policy with where each value comes from, static and dynamic groups with
their members. Writes call the brain services the REST API calls, with its roles (policies:
admins, groups: operators); the reads the services lack are aggregated in SQL here, read-only.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic.fields import FieldInfo
from sqlalchemy import ColumnElement, and_, case, false, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from wrale.fleet.brain.models import Device, Rack, Room, Site, Zone
from wrale.fleet.brain.models.groups import Group, GroupMember
from wrale.fleet.brain.models.policies import Policy, PolicyVersion
from wrale.fleet.brain.services import groups as group_svc
from wrale.fleet.brain.services import policies
from wrale.fleet.brain.services.device_list import selector_clause
from wrale.fleet.brain.services.registry import is_id
from wrale.shared.errors import ConflictError, InvalidRequestError, NotFoundError, WraleError
from wrale.user.api.deps import StateDep
from wrale.user.ui.web import (
    AdminDep,
    OperatorDep,
    SessionDep,
    Viewer,
    ViewerDep,
    is_htmx,
    render,
)

router = APIRouter(include_in_schema=False)

KINDS = tuple(policies.KINDS)
KIND_TITLES = {
    "thermal": "Thermal",
    "power": "Power",
    "security": "Security",
    "sampling": "Sampling",
}
SCOPE_TITLES = {"fleet": "Fleet", "group": "Group", "device": "Device"}
PAGE_SIZE = 50
VERSIONS_PAGE = 20
DEVICE_OPTIONS = 20
CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# ----------------------------------------------------------------------------- form fields

LABELS = {
    "profile": "Fan profile",
    "curve": "Fan curve",
    "min_fan_pct": "Minimum fan duty",
    "hysteresis_c": "Hysteresis",
    "cpu_warning_c": "CPU warning",
    "cpu_critical_c": "CPU critical",
    "cpu_hard_limit_c": "CPU hard limit",
    "gpu_warning_c": "GPU warning",
    "gpu_critical_c": "GPU critical",
    "ambient_warning_c": "Ambient warning",
    "ambient_critical_c": "Ambient critical",
    "max_override_s": "Longest fan override",
    "fan_stall_rpm": "Fan stall below",
    "low_battery_pct": "Low battery",
    "critical_battery_pct": "Critical battery",
    "nominal_voltage_v": "Nominal supply voltage",
    "critical_voltage_v": "Critical supply voltage",
    "ripple_limit_v": "Ripple limit",
    "current_spike_ratio": "Current spike ratio",
    "window_s": "Stability window",
    "prefer_solar_over_battery": "Prefer solar over battery",
    "armed": "Tamper detection armed",
    "level": "Tamper level",
    "debounce_s": "Debounce",
    "rapid_transitions": "Rapid transitions",
    "rapid_window_s": "Rapid-transition window",
    "quiet_hours": "Quiet hours",
    "interval_s": "Sampling interval",
    "report_interval_s": "Report interval",
}
UNITS = (("_pct", "%"), ("_rpm", "rpm"), ("_c", "°C"), ("_s", "s"), ("_v", "V"), ("_w", "W"))
HINTS = {
    "curve": "°C:PWM points (PWM 0–255), rising, e.g. 50:75, 60:125",
    "quiet_hours": "HH:MM-HH:MM, board time; motion tamper counts only then; “none”: always armed",
    "current_spike_ratio": "times the window's mean current",
    "level": "low: an event · medium: an alert · high: a lockdown",
}


@dataclass(frozen=True, slots=True)
class PolicyField:
    """One field of a policy form: how it is entered and what it means."""

    name: str
    label: str
    unit: str
    widget: str  # number | integer | choice | flag | curve | text
    choices: tuple[str, ...]
    default: str  # the default as the form writes it (the placeholder)
    hint: str


def _unit(name: str) -> str:
    if name.endswith("_ratio"):
        return "×"
    return next((unit for suffix, unit in UNITS if name.endswith(suffix)), "")


def _g(value: float) -> str:
    return f"{value:g}"


def _range_hint(info: FieldInfo, unit: str) -> str:
    low = high = ""
    for m in info.metadata:
        if getattr(m, "ge", None) is not None:
            low = _g(m.ge)
        elif getattr(m, "gt", None) is not None:
            low = f"> {_g(m.gt)}"
        if getattr(m, "le", None) is not None:
            high = _g(m.le)
        elif getattr(m, "lt", None) is not None:
            high = f"< {_g(m.lt)}"
    if low and high and not low.startswith(">"):
        text = f"{low} to {high}" if low.startswith("-") else f"{low}–{high}"
    elif low and high:
        text = f"{low}, ≤ {high}"
    elif low:
        text = low if low.startswith(">") else f"≥ {low}"
    elif high:
        text = f"≤ {high}"
    else:
        return ""
    return f"{text} {unit}".rstrip()


def form_text(value: Any) -> str:
    """A document value as the form writes it."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "none"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, int | float):
        return _g(value)
    if isinstance(value, list | tuple):  # the fan curve
        points = [p if isinstance(p, dict) else p.model_dump() for p in value]
        return ", ".join(f"{_g(p['temp_c'])}:{p['pwm']}" for p in points)
    return str(value)


def display(name: str, value: Any) -> str:
    """A document value for reading, with its unit."""
    if name == "quiet_hours" and value is None:
        return "none (always armed)"
    if name == "curve" and isinstance(value, list | tuple):
        points = [p if isinstance(p, dict) else p.model_dump() for p in value]
        return ", ".join(f"{_g(p['temp_c'])} °C → {p['pwm']}" for p in points)
    text = form_text(value)
    unit = _unit(name) if isinstance(value, int | float) and not isinstance(value, bool) else ""
    return f"{text} {unit}".rstrip()


@cache
def policy_fields(kind: str) -> tuple[PolicyField, ...]:
    model = policies.KINDS[kind]
    defaults = policies.defaults(kind)
    out = []
    for name, info in model.model_fields.items():
        ann, unit = info.annotation, _unit(name)
        choices: tuple[str, ...] = ()
        if name == "curve":
            widget = "curve"
        elif isinstance(ann, type) and issubclass(ann, Enum):
            widget, choices = "choice", tuple(str(m.value) for m in ann)
        elif ann is bool:
            widget = "flag"
        elif ann is int:
            widget = "integer"
        elif ann is float:
            widget = "number"
        else:
            widget = "text"
        hint = HINTS.get(name) or _range_hint(info, unit)
        if info.description and name not in HINTS:
            hint = f"{hint}; {info.description}" if hint else info.description
        label = LABELS.get(name, name.replace("_", " ").capitalize())
        out.append(PolicyField(name, label, unit, widget, choices, form_text(defaults[name]), hint))
    return tuple(out)


def _parse_curve(text: str) -> list[dict[str, Any]]:
    points = []
    for part in filter(None, (p.strip() for p in text.replace(";", ",").split(","))):
        temp, sep, pwm = part.partition(":")
        try:
            if not sep:
                raise ValueError
            temp_c = float(temp)
            if not math.isfinite(temp_c):
                raise ValueError
            points.append({"temp_c": temp_c, "pwm": int(pwm)})
        except ValueError:
            raise ValueError(
                f"write each point as °C:PWM, e.g. 50:75, 60:125 (not {part!r})"
            ) from None
    if not points:
        raise ValueError("give at least one °C:PWM point")
    temps = [p["temp_c"] for p in points]
    if any(b <= a for a, b in itertools.pairwise(temps)):
        raise ValueError("the temperatures must rise from one point to the next")
    return points


def _parse_value(f: PolicyField, text: str) -> Any:
    if f.widget == "number":
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"a number, e.g. {f.default}") from None
        if not math.isfinite(value):
            raise ValueError(f"a number, e.g. {f.default}")
        return value
    if f.widget == "integer":
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"a whole number, e.g. {f.default}") from None
    if f.widget == "choice":
        if text not in f.choices:
            raise ValueError(f"one of {', '.join(f.choices)}")
        return text
    if f.widget == "flag":
        if text not in ("yes", "no"):
            raise ValueError("yes or no")
        return text == "yes"
    if f.widget == "curve":
        return _parse_curve(text)
    if text.lower() == "none":
        return None
    return text


def parse_document(
    kind: str, form: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """The policy document a form sets (an empty field inherits), the error of each field
    that is wrong (every one, not only the first) and the texts as typed."""
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    document: dict[str, Any] = {}
    for f in policy_fields(kind):
        raw = form.get(f.name)
        text = raw.strip()[:500] if isinstance(raw, str) else ""
        values[f.name] = text
        if not text:
            continue
        try:
            value = _parse_value(f, text)
            document.update(policies.check_document(kind, {f.name: value}))
        except ValueError as exc:
            errors[f.name] = str(exc)
        except InvalidRequestError as exc:
            errors[f.name] = _plain(exc.message.removeprefix(f"document.{f.name}: "), f.unit)
    return document, errors, values


LIMITS = (
    ("Input should be greater than or equal to ", "at least "),
    ("Input should be less than or equal to ", "at most "),
    ("Input should be greater than ", "more than "),
    ("Input should be less than ", "less than "),
)


def _plain(message: str, unit: str) -> str:
    """pydantic's range messages in the form's words, with the unit."""
    for prefix, words in LIMITS:
        if message.startswith(prefix):
            return f"{words}{message.removeprefix(prefix)} {unit}".rstrip()
    return message


def document_values(kind: str, document: Mapping[str, Any]) -> dict[str, str]:
    return {
        f.name: form_text(document[f.name]) if f.name in document else ""
        for f in policy_fields(kind)
    }


def cross_field_problems(kind: str, document: Mapping[str, Any]) -> list[str]:
    """What the document breaks on top of the defaults (warning < critical…)."""
    return policies.check_merged(kind, policies.merge(kind, [({}, dict(document))]))


# ----------------------------------------------------------------------------- helpers


def _redirect(request: Request, location: str) -> Response:
    """After a change: htmx follows ``HX-Redirect``, a plain form the 303."""
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": location})
    return Response(status_code=303, headers={"Location": location})


def _form_str(form: FormData, name: str, max_len: int = 500) -> str:
    value = form.get(name)
    return value.strip()[:max_len] if isinstance(value, str) else ""


def _query(text: str | None, max_len: int = 100) -> str:
    """A search text from the address bar: trimmed, without control characters."""
    return CONTROL.sub("", text or "").strip()[:max_len]


def _page_number(text: str | None) -> int:
    try:
        return max(1, min(int(text or 1), 100_000))
    except ValueError:
        return 1


def _pages(total: int, size: int) -> int:
    return max(1, -(-total // size))


async def _names(
    session: AsyncSession, model: type[Device] | type[Group], tenant_id: str, ids: Iterable[str]
) -> dict[str, str]:
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    rows = await session.execute(
        select(model.id, model.name).where(model.tenant_id == tenant_id, model.id.in_(wanted))
    )
    return dict(rows.all())


def _scope(
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


def _summary(kind: str, document: Mapping[str, Any], limit: int = 4) -> str:
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
    text = _query(text)
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
    text = _query(text)
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


@router.get("/policies/_devices")
async def device_options(
    request: Request, viewer: ViewerDep, session: SessionDep, device: str = ""
) -> Response:
    """``<option>``s of a device picker's ``<datalist>`` (typed name → matches)."""
    found = await find_devices(session, viewer.tenant_id, device)
    return render(request, "policies/_device_options.html", {"devices": found})


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


def _location_names(locs: Mapping[str, list[dict[str, str]]]) -> dict[str, str]:
    return {item["id"]: item["name"] for items in locs.values() for item in items}


# ----------------------------------------------------------------------------- /policies


async def _group_choices(session: AsyncSession, tenant_id: str) -> list[dict[str, str]]:
    rows = await session.execute(
        select(Group.id, Group.name).where(Group.tenant_id == tenant_id).order_by(Group.name)
    )
    return [{"id": i, "name": n} for i, n in rows]


def _kind(text: str | None) -> str:
    if text not in policies.KINDS:
        raise InvalidRequestError(f"kind: use one of {', '.join(KINDS)}", field="kind")
    return text


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
    number = _page_number(page)
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
    groups = await _names(session, Group, t, (p.scope_id for p in rows if p.scope_type == "group"))
    devices = await _names(
        session, Device, t, (p.scope_id for p in rows if p.scope_type == "device")
    )
    items = [
        {
            **policies.policy_view(p),
            "scope": _scope(p.scope_type, p.scope_id, groups, devices),
            "summary": _summary(p.kind, p.document),
        }
        for p in rows
    ]
    summary = [
        {
            "kind": k,
            "title": KIND_TITLES[k],
            "fleet": policies.policy_view(fleet[k]) if k in fleet else None,
            "fleet_summary": _summary(k, fleet[k].document) if k in fleet else "",
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
            "pages": _pages(total, PAGE_SIZE),
            "total": total,
        },
    )


async def _policy_form(
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
        names = await _names(session, Device, viewer.tenant_id, [scope_id])
        device = names.get(scope_id, "")
    ctx = await _policy_form(
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


@router.post("/policies")
async def policy_create(
    request: Request, viewer: AdminDep, session: SessionDep, state: StateDep
) -> Response:
    """Create a policy (the REST route's service call, twins refreshed by it)."""
    form = await request.form()
    kind = _kind(_form_str(form, "kind"))
    scope_type = _form_str(form, "scope_type") or "fleet"
    group_id, device = _form_str(form, "group_id", 32), _form_str(form, "device", 100)
    document, errors, values = parse_document(kind, form)
    scope_id: str | None = None
    if scope_type == "group":
        scope_id = group_id if is_id(group_id) else None
        if not scope_id:
            errors["scope"] = "pick the group the policy is for"
    elif scope_type == "device":
        found, candidates = await resolve_device(session, viewer.tenant_id, device)
        if found is not None:
            scope_id = found["id"]
        elif candidates:
            names = ", ".join(c["name"] for c in candidates[:5])
            errors["scope"] = f"{len(candidates)} devices match {device!r} ({names}…): pick one"
        else:
            errors["scope"] = f"no device named {device!r}" if device else "name the device"
    elif scope_type != "fleet":
        errors["scope"] = "a policy is for the fleet, a group or a device"
    message, existing = "", None
    if not errors:
        try:
            pol = await policies.create_policy(
                session, viewer.principal, scope_type, scope_id, kind, document, state.bus
            )
        except ConflictError as exc:
            message, existing = exc.message, exc.details.get("policy_id")
        except (InvalidRequestError, NotFoundError) as exc:
            errors["scope"] = exc.message.removeprefix("scope_id: ")
        else:
            return _redirect(request, f"/policies/{pol.id}")
    await session.rollback()  # nothing of a refused form is kept
    ctx = await _policy_form(
        session,
        viewer,
        kind,
        values=values,
        errors=errors,
        message=message or "The policy was not saved: correct the fields marked below.",
        existing_id=existing,
        scope_type=scope_type if scope_type in SCOPE_TITLES else "fleet",
        group_id=group_id,
        device=device,
    )
    if is_htmx(request):
        return render(request, "policies/_form.html", ctx, status_code=422)
    return render(
        request,
        "policies/new.html",
        {**ctx, "kinds": KINDS, "kind_titles": KIND_TITLES, "scope_id": scope_id or ""},
        status_code=422,
    )


@router.get("/policies/effective")
async def effective(
    request: Request, viewer: ViewerDep, session: SessionDep, device: str = ""
) -> Response:
    """A device's effective policy, each value with the policy it comes from."""
    t = viewer.tenant_id
    found, candidates = await resolve_device(session, t, device)
    ctx: dict[str, Any] = {
        "query": _query(device),
        "device": found,
        "candidates": candidates,
        "kinds": [],
        "chain": [],
        "kind_titles": KIND_TITLES,
    }
    if found is not None:
        eff = await policies.effective_policy(session, t, found["id"])
        group_ids = [c["scope_id"] for c in eff["chain"] if c["scope_type"] == "group"]
        groups = await _names(session, Group, t, group_ids)
        devices = {found["id"]: found["name"]}
        ctx["chain"] = [
            _scope(c["scope_type"], c["scope_id"], groups, devices) for c in eff["chain"]
        ]
        ctx["kinds"] = [
            _effective_kind(kind, eff["kinds"][kind], groups, devices) for kind in KINDS
        ]
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


def _effective_kind(
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
                "scope": _scope(src["scope_type"], src["scope_id"], groups, devices),
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


@router.get("/policies/{policy_id}")
async def policy_page(
    request: Request, viewer: ViewerDep, session: SessionDep, policy_id: str, vpage: str = "1"
) -> Response:
    pol = await policies.get_policy(session, viewer.tenant_id, policy_id)
    ctx = await _policy_page_ctx(session, viewer, pol, _page_number(vpage))
    if viewer.is_admin:
        ctx.update(
            await _policy_form(
                session,
                viewer,
                pol.kind,
                policy=pol,
                values=document_values(pol.kind, pol.document),
                expected_version=pol.version,
            )
        )
    return render(request, "policies/detail.html", ctx)


async def _policy_page_ctx(
    session: AsyncSession, viewer: Viewer, pol: Policy, vpage: int
) -> dict[str, Any]:
    t = viewer.tenant_id
    groups = await _names(session, Group, t, [pol.scope_id] if pol.scope_type == "group" else [])
    devices = await _names(session, Device, t, [pol.scope_id] if pol.scope_type == "device" else [])
    scope = _scope(pol.scope_type, pol.scope_id, groups, devices)
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
                "summary": _summary(pol.kind, v.document, limit=6),
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


@router.post("/policies/{policy_id}")
async def policy_update(
    request: Request, viewer: AdminDep, session: SessionDep, state: StateDep, policy_id: str
) -> Response:
    """Save the edited document as the next version (stale edits are kept and explained)."""
    form = await request.form()
    pol = await policies.get_policy(session, viewer.tenant_id, policy_id)
    kind = pol.kind
    document, errors, values = parse_document(kind, form)
    try:
        expected: int | None = int(_form_str(form, "expected_version", 12))
    except ValueError:
        expected = None
    message = ""
    if not errors:
        try:
            await policies.update_policy(
                session, viewer.principal, pol.id, document, expected, state.bus
            )
        except ConflictError as exc:
            message = (
                f"Not saved: someone changed this policy while you edited it ({exc.message}). "
                "Your values are still below; compare them with the current version and save "
                "again to replace it."
            )
        except InvalidRequestError as exc:
            message = exc.message
        else:
            return _redirect(request, f"/policies/{pol.id}")
    await session.rollback()  # nothing of a refused form is kept
    pol = await policies.get_policy(session, viewer.tenant_id, policy_id)
    ctx = await _policy_form(
        session,
        viewer,
        kind,
        policy=pol,
        values=values,
        errors=errors,
        message=message or "The policy was not saved: correct the fields marked below.",
        expected_version=pol.version,
    )
    if is_htmx(request):
        return render(request, "policies/_form.html", ctx, status_code=422)
    page = await _policy_page_ctx(session, viewer, pol, 1)
    return render(request, "policies/detail.html", {**page, **ctx}, status_code=422)


@router.post("/policies/{policy_id}/delete")
async def policy_delete(
    request: Request, viewer: AdminDep, session: SessionDep, state: StateDep, policy_id: str
) -> Response:
    await policies.delete_policy(session, viewer.principal, policy_id, state.bus)
    return _redirect(request, "/policies")


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


async def _group_list_page(
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
    ctx: dict[str, Any] = {"tree": await _tree(session, t, groups, _location_names(locs))}
    if viewer.can_operate:
        ctx |= await _group_form(
            session, viewer, groups=groups, locs=locs, values=values, errors=errors, message=message
        )
    return render(request, "groups/index.html", ctx, status_code=status_code)


@router.get("/groups")
async def group_list(request: Request, viewer: ViewerDep, session: SessionDep) -> Response:
    """Every group as a tree with its members and policies; operators create groups here."""
    return await _group_list_page(request, session, viewer)


async def _group_form(
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


def _group_input(form: FormData) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """The group fields of a form, the values as typed and the errors seen here."""
    selector, values, errors = selector_input(
        form, [s for s in form.getlist("status") if isinstance(s, str)]
    )
    name = _form_str(form, "name", 200)
    description = _form_str(form, "description", 400)
    values |= {
        "name": name,
        "description": description,
        "kind": _form_str(form, "kind") or "static",
        "parent_id": _form_str(form, "parent_id", 32),
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


def _group_errors(exc: InvalidRequestError | NotFoundError | ConflictError) -> dict[str, str]:
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


@router.post("/groups")
async def group_create(request: Request, viewer: OperatorDep, session: SessionDep) -> Response:
    form = await request.form()
    fields, values, errors = _group_input(form)
    if not errors:
        try:
            g = await group_svc.create_group(
                session,
                viewer.principal,
                fields["name"],
                kind=fields["kind"],
                selector=fields["selector"] if fields["kind"] == "dynamic" else None,
                parent_id=fields["parent_id"],
                description=fields["description"],
            )
        except (InvalidRequestError, NotFoundError, ConflictError) as exc:
            errors = _group_errors(exc)
        else:
            return _redirect(request, f"/groups/{g.id}")
    await session.rollback()  # nothing of a refused form is kept
    message = errors.pop("form", "") or "The group was not created: correct the fields marked."
    if is_htmx(request):
        ctx = await _group_form(session, viewer, values=values, errors=errors, message=message)
        return render(request, "groups/_form.html", ctx, status_code=422)
    return await _group_list_page(
        request, session, viewer, values=values, errors=errors, message=message, status_code=422
    )


@router.get("/groups/_preview")
async def selector_preview(request: Request, viewer: ViewerDep, session: SessionDep) -> Response:
    """How many devices a selector being typed matches (and a few of their names)."""
    q = request.query_params
    selector, _, errors = selector_input(q, q.getlist("status"))
    ctx: dict[str, Any] = {"count": None, "sample": [], "error": ""}
    if errors:
        ctx["error"] = next(iter(errors.values()))
    else:
        try:
            clean = await group_svc.validate_selector(session, viewer.tenant_id, selector)
        except (InvalidRequestError, NotFoundError) as exc:
            ctx["error"] = selector_error(exc)[1]
        else:
            clause = selector_clause(session, dict(clean))
            ctx["count"] = await count_devices(session, viewer.tenant_id, clause)
            ctx["sample"] = (await device_page(session, viewer.tenant_id, clause, 1))[:5]
    return render(request, "groups/_preview.html", ctx)


async def _group_ctx(
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
        "selector": selector_text(group.selector, _location_names(locs)),
        "members": await _members_ctx(session, viewer, group, page, count=counts[group.id]),
        "policies": [
            {
                "kind": k,
                "title": KIND_TITLES[k],
                "policy": policies.policy_view(own[k]) if k in own else None,
                "summary": _summary(k, own[k].document) if k in own else "",
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
        eff = _effective_kind(kind, data, names, {})
        eff["rows"] = [r for r in eff["rows"] if r["source"]]
        out.append(eff)
    return out


async def _members_ctx(
    session: AsyncSession, viewer: Viewer, group: Group, page: int, *, count: int | None = None
) -> dict[str, Any]:
    t = viewer.tenant_id
    clause = group_clause(session, group)
    total = count if count is not None else await count_devices(session, t, clause)
    pages = _pages(total, PAGE_SIZE)
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


@router.get("/groups/{group_id}")
async def group_page(
    request: Request, viewer: ViewerDep, session: SessionDep, group_id: str, page: str = "1"
) -> Response:
    group = await group_svc.get_group(session, viewer.tenant_id, group_id)
    ctx = await _group_ctx(session, viewer, group, _page_number(page))
    if viewer.can_operate:
        ctx.update(await _group_form(session, viewer, group=group))
    return render(request, "groups/detail.html", ctx)


@router.get("/groups/{group_id}/_members")
async def group_members(
    request: Request, viewer: ViewerDep, session: SessionDep, group_id: str, page: str = "1"
) -> Response:
    group = await group_svc.get_group(session, viewer.tenant_id, group_id)
    members = await _members_ctx(session, viewer, group, _page_number(page))
    return render(request, "groups/_members.html", {"members": members})


@router.post("/groups/{group_id}")
async def group_update(
    request: Request, viewer: OperatorDep, session: SessionDep, group_id: str
) -> Response:
    group = await group_svc.get_group(session, viewer.tenant_id, group_id)
    form = await request.form()
    fields, values, errors = _group_input(form)
    values["kind"] = group.kind
    errors.pop("kind", None)
    if not errors:
        changes: dict[str, Any] = {
            "name": fields["name"],
            "description": fields["description"],
            "parent_id": fields["parent_id"],
        }
        if group.kind == "dynamic":
            changes["selector"] = fields["selector"]
        try:
            await group_svc.update_group(session, viewer.principal, group.id, changes)
        except (InvalidRequestError, NotFoundError, ConflictError) as exc:
            errors = _group_errors(exc)
        else:
            return _redirect(request, f"/groups/{group.id}")
    await session.rollback()  # a half-applied change (a new name, then a bad parent) is undone
    group = await group_svc.get_group(session, viewer.tenant_id, group_id)
    message = errors.pop("form", "") or "The group was not saved: correct the fields marked."
    ctx = await _group_form(
        session, viewer, group=group, values=values, errors=errors, message=message
    )
    if is_htmx(request):
        return render(request, "groups/_form.html", ctx, status_code=422)
    page = await _group_ctx(session, viewer, group, 1)
    return render(request, "groups/detail.html", {**page, **ctx}, status_code=422)


@router.post("/groups/{group_id}/delete")
async def group_delete(
    request: Request, viewer: OperatorDep, session: SessionDep, group_id: str
) -> Response:
    await group_svc.delete_group(session, viewer.principal, group_id)
    return _redirect(request, "/groups")


async def _members_answer(
    request: Request, members: dict[str, Any], status_code: int = 200
) -> Response:
    if is_htmx(request):
        return render(
            request, "groups/_members.html", {"members": members}, status_code=status_code
        )
    if status_code >= 400:
        raise InvalidRequestError(members["error"] or "the member was not changed")
    return _redirect(request, f"/groups/{members['group_id']}")


@router.post("/groups/{group_id}/members")
async def member_add(
    request: Request, viewer: OperatorDep, session: SessionDep, group_id: str
) -> Response:
    """Add a device, named (or searched) in the form, to a static group."""
    group = await group_svc.get_group(session, viewer.tenant_id, group_id)
    form = await request.form()
    text = _form_str(form, "device", 100)
    found, candidates = await resolve_device(session, viewer.tenant_id, text)
    error = notice = ""
    if found is None:
        if candidates:
            names = ", ".join(c["name"] for c in candidates[:5])
            error = f"{len(candidates)} devices match {text!r} ({names}…): pick one"
        else:
            error = f"no device named {text!r}" if text else "name the device to add"
    else:
        try:
            added = await group_svc.add_member(session, viewer.principal, group.id, found["id"])
        except (ConflictError, NotFoundError) as exc:
            error = exc.message
        else:
            verb = "added to" if added else "was already in"
            notice = f"{found['name']} {verb} {group.name}."
    if error:
        await session.rollback()
        group = await group_svc.get_group(session, viewer.tenant_id, group_id)
    members = await _members_ctx(session, viewer, group, 1)
    members.update(device=text if error else "", error=error, notice=notice)
    return await _members_answer(request, members, 422 if error else 200)


@router.post("/groups/{group_id}/members/{device_id}/remove")
async def member_remove(
    request: Request,
    viewer: OperatorDep,
    session: SessionDep,
    group_id: str,
    device_id: str,
    page: str = "1",
) -> Response:
    group = await group_svc.get_group(session, viewer.tenant_id, group_id)
    names = await _names(session, Device, viewer.tenant_id, [device_id])
    await group_svc.remove_member(session, viewer.principal, group.id, device_id)
    await session.flush()
    members = await _members_ctx(session, viewer, group, _page_number(page))
    members["notice"] = f"{names.get(device_id, device_id)} removed from {group.name}."
    return await _members_answer(request, members)
