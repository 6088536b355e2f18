"""The dashboard's Alerts pages: alerts by state (acknowledge, assign, clear, history) and the
alert-rule editor, whose form is checked field by field with the brain's own rule checks
before ``services.alerts`` saves it. Reads only what one page shows; never writes directly."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from wrale.fleet.brain.models import Device, Rack, Room, Site, User, Zone
from wrale.fleet.brain.models.alerts import Alert, AlertRule, NotificationChannel
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.models.groups import Group
from wrale.fleet.brain.services import alerts
from wrale.fleet.brain.services.alert_rules import (
    METRIC_RE,
    OPS,
    SCOPES,
    SEVERITIES,
    UNIT_RANGES,
    Condition,
    check_for,
    check_threshold,
    describe,
    parse_duration,
)
from wrale.shared.errors import ConflictError, InvalidRequestError
from wrale.user.api.deps import StateDep
from wrale.user.ui.web import (
    OperatorDep,
    SessionDep,
    Viewer,
    ViewerDep,
    is_htmx,
    page_number,
    render,
)

router = APIRouter(include_in_schema=False)

STATES = ("active", "acknowledged", "cleared")
PAGE_SIZE = 50
RULES_PAGE_SIZE = 100
NOTE_MAX = 1000
OPTIONS_MAX = 500  # users, racks, groups, zones offered in one select

# The metrics the agents report (fleet.edge.telemetry), with what they measure.
METRICS: tuple[tuple[str, str], ...] = (
    ("cpu_temp_c", "CPU temperature"),
    ("gpu_temp_c", "GPU temperature"),
    ("ambient_temp_c", "Ambient temperature"),
    ("fan_pct", "Fan duty"),
    ("fan_rpm", "Fan speed"),
    ("power_w", "Power draw"),
    ("battery_pct", "Battery charge"),
    ("on_battery", "On battery"),
    ("voltage_v", "Supply voltage"),
    ("current_a", "Supply current"),
    ("cpu_freq_pct", "CPU frequency cap"),
    ("throttled", "Throttled"),
    ("charging", "Charging"),
    ("case_open", "Case open"),
    ("motion", "Motion detected"),
    ("lockdown", "Tamper lockdown"),
)
RACK_PREFIX = "rack:"
RACK_POWER = RACK_PREFIX + "power_w"
RACK_METRICS: tuple[tuple[str, str], ...] = ((RACK_POWER, "Rack power draw, summed (W)"),)
UNITS: tuple[tuple[str, str], ...] = (
    ("_c", "°C"),
    ("_pct", "%"),
    ("_rpm", "rpm"),
    ("_wh", "Wh"),
    ("_w", "W"),
    ("_v", "V"),
    ("_a", "A"),
    ("_hz", "Hz"),
    ("_s", "s"),
)
OP_WORDS = {
    ">": "above",
    ">=": "at or above",
    "<": "below",
    "<=": "at or below",
    "==": "equal to",
    "!=": "not equal to",
}
SCOPE_WORDS = {
    "fleet": "The whole fleet",
    "group": "A group",
    "rack": "A rack",
    "zone": "A zone",
    "device": "One device",
}
RULE_FORM_FIELDS = (
    "name",
    "description",
    "metric",
    "op",
    "threshold",
    "for_s",
    "severity",
    "scope_type",
    "scope_id",
    "channel_ids",
)
_FIELD_RE = re.compile(r"^(\w+): (.*)$", re.DOTALL)


def unit_of(metric: str) -> str:
    """The unit a metric's name says (``cpu_temp_c`` → °C); '' for flags and counts."""
    for suffix, unit in UNITS:
        if metric.endswith(suffix):
            return unit
    return ""


def metric_label(metric: str, what: str) -> str:
    """``CPU temperature (°C, -40..150)``: what it is, its unit and the thresholds allowed."""
    for suffix, low, high, _ in UNIT_RANGES:
        if metric.endswith(suffix):
            return f"{what} ({unit_of(metric)}, {low:,.0f}..{high:,.0f})"
    return f"{what} (0 or 1)"


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _safe_next(target: str | None, default: str) -> str:
    """A path on this server only (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def _redirect(request: Request, location: str) -> Response:
    """After a change: htmx follows ``HX-Redirect``, a plain form the 303."""
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": location})
    return Response(status_code=303, headers={"Location": location})


def _form_str(form: FormData, name: str, max_len: int = 1000) -> str:
    value = form.get(name)
    return value[:max_len] if isinstance(value, str) else ""


# ----------------------------------------------------------------------------- names


async def _device_names(
    session: AsyncSession, tenant_id: str, ids: Iterable[str]
) -> dict[str, str]:
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    rows = await session.execute(
        select(Device.id, Device.name).where(Device.tenant_id == tenant_id, Device.id.in_(wanted))
    )
    return dict(rows.all())


async def _rack_options(
    session: AsyncSession, tenant_id: str, ids: Iterable[str] | None = None
) -> list[tuple[str, str]]:
    """(id, "site / room / rack") of the tenant's racks, or of ``ids`` only."""
    stmt = (
        select(Rack.id, Site.name, Room.name, Rack.name)
        .join(Room, Room.id == Rack.room_id)
        .join(Site, Site.id == Room.site_id)
        .where(Rack.tenant_id == tenant_id)
    )
    if ids is not None:
        wanted = sorted({i for i in ids if i})
        if not wanted:
            return []
        stmt = stmt.where(Rack.id.in_(wanted))
    rows = await session.execute(stmt.order_by(Site.name, Room.name, Rack.name).limit(OPTIONS_MAX))
    return [(i, f"{site} / {room} / {rack}") for i, site, room, rack in rows.all()]


async def _user_options(session: AsyncSession, tenant_id: str) -> list[tuple[str, str]]:
    """The tenant's active users, to assign alerts to (any of them may be assigned)."""
    rows = await session.execute(
        select(User.id, User.username)
        .where(User.tenant_id == tenant_id, User.disabled.is_(False))
        .order_by(User.username)
        .limit(OPTIONS_MAX)
    )
    return [(i, n) for i, n in rows.all()]


async def _user_names(session: AsyncSession, tenant_id: str, ids: Iterable[str]) -> dict[str, str]:
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    rows = await session.execute(
        select(User.id, User.username).where(User.tenant_id == tenant_id, User.id.in_(wanted))
    )
    return dict(rows.all())


async def _find_device(session: AsyncSession, tenant_id: str, text: str) -> str | None:
    """The id of the tenant's device named ``text`` (or with that id)."""
    stmt = select(Device.id).where(
        Device.tenant_id == tenant_id, or_(Device.name == text, Device.id == text)
    )
    return await session.scalar(stmt.limit(1))


# ----------------------------------------------------------------------------- alert list


@dataclass(frozen=True)
class AlertFilters:
    """The list's query: a tab (state), filters, and the page number."""

    state: str = "active"
    severity: str = ""
    device: str = ""  # as typed: a device's name or id
    rack: str = ""
    page: int = 1

    @classmethod
    def parse(
        cls,
        state: str | None,
        severity: str | None,
        device: str | None,
        rack: str | None,
        page: str | None,
    ) -> AlertFilters:
        sev = (severity or "").upper()
        return cls(
            state=state if state in STATES else "active",
            severity=sev if sev in SEVERITIES else "",
            device=(device or "").strip()[:100],
            rack=(rack or "").strip()[:32],
            page=page_number(page),
        )

    def query(self, **change: Any) -> str:
        f = replace(self, **change)
        params = {
            "state": f.state,
            "severity": f.severity,
            "device": f.device,
            "rack": f.rack,
            "page": f.page if f.page > 1 else "",
        }
        return urlencode({k: v for k, v in params.items() if v})


async def _alert_rows(
    session: AsyncSession, viewer: Viewer, rows: Sequence[Alert]
) -> list[dict[str, Any]]:
    """What each row shows: the alert with its device, rack and assignee names."""
    tenant = viewer.tenant_id
    devices = await _device_names(session, tenant, (a.device_id or "" for a in rows))
    racks = dict(await _rack_options(session, tenant, (a.rack_id or "" for a in rows)))
    users = await _user_names(session, tenant, (a.assignee_id or "" for a in rows))
    return [
        {
            **alerts.alert_view(a),
            "device_name": devices.get(a.device_id or ""),
            "rack_name": racks.get(a.rack_id or ""),
            "assignee_name": users.get(a.assignee_id or ""),
            "unit": unit_of(a.metric),
        }
        for a in rows
    ]


async def _table_context(session: AsyncSession, viewer: Viewer, f: AlertFilters) -> dict[str, Any]:
    tenant = viewer.tenant_id
    where: list[ColumnElement[bool]] = [Alert.tenant_id == tenant]
    unknown_device = False
    if f.severity:
        where.append(Alert.severity == f.severity)
    if f.device:
        device_id = await _find_device(session, tenant, f.device)
        unknown_device = device_id is None
        where.append(Alert.device_id == (device_id or "-"))
    if f.rack:
        where.append(Alert.rack_id == f.rack)
    grouped = await session.execute(
        select(Alert.state, func.count()).where(*where).group_by(Alert.state)
    )
    counts = dict.fromkeys(STATES, 0) | {s: int(n) for s, n in grouped.all()}
    total = counts.get(f.state, 0)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    f = replace(f, page=min(f.page, pages))
    rows = await session.scalars(
        select(Alert)
        .where(*where, Alert.state == f.state)
        .order_by(Alert.raised_at.desc(), Alert.id.desc())
        .limit(PAGE_SIZE)
        .offset((f.page - 1) * PAGE_SIZE)
    )
    return {
        "f": f,
        "states": STATES,
        "counts": counts,
        "total": total,
        "pages": pages,
        "first": (f.page - 1) * PAGE_SIZE + 1,
        "unknown_device": unknown_device,
        "rows": await _alert_rows(session, viewer, list(rows)),
        "users": await _user_options(session, tenant) if viewer.can_operate else [],
    }


@router.get("/alerts")
async def alert_list(
    request: Request,
    viewer: ViewerDep,
    session: SessionDep,
    state: str | None = None,
    severity: str | None = None,
    device: str | None = None,
    rack: str | None = None,
    page: str | None = None,
) -> Response:
    f = AlertFilters.parse(state, severity, device, rack, page)
    ctx = await _table_context(session, viewer, f)
    ctx.update(severities=SEVERITIES, racks=await _rack_options(session, viewer.tenant_id))
    return render(request, "alerts/index.html", ctx)


@router.get("/alerts/_table")
async def alert_table(
    request: Request,
    viewer: ViewerDep,
    session: SessionDep,
    state: str | None = None,
    severity: str | None = None,
    device: str | None = None,
    rack: str | None = None,
    page: str | None = None,
) -> Response:
    """The tabs, table and pager (refreshed live on alert events)."""
    f = AlertFilters.parse(state, severity, device, rack, page)
    return render(request, "alerts/_table.html", await _table_context(session, viewer, f))


@router.get("/alerts/_devices")
async def device_options(
    request: Request,
    viewer: ViewerDep,
    session: SessionDep,
    device: str | None = None,
    scope_id: str | None = None,
) -> Response:
    """A datalist of up to 20 device names containing what was typed (device filter, scope)."""
    typed = (device if device is not None else scope_id or "").strip()[:100]
    list_id = "device-options" if device is not None else "scope-options"
    names: list[str] = []
    if typed:
        rows = await session.scalars(
            select(Device.name)
            .where(Device.tenant_id == viewer.tenant_id, Device.name.ilike(_like(typed), "\\"))
            .order_by(Device.name)
            .limit(20)
        )
        names = list(rows)
    return render(request, "alerts/_device_options.html", {"list_id": list_id, "names": names})


# ----------------------------------------------------------------------------- rule editor
# (declared before /alerts/{alert_id} so that "rules" is never read as an alert id)


@dataclass
class RuleForm:
    """The rule form as typed (kept as text so a refused form comes back unchanged)."""

    name: str = ""
    description: str = ""
    metric: str = "cpu_temp_c"  # RACK_PREFIX + metric for a rack's summed value
    op: str = ">"
    threshold: str = ""
    budget: bool = False
    for_s: str = ""
    severity: str = "WARNING"
    scope_type: str = "fleet"
    scope_id: str = ""  # a device scope: the device's name
    enabled: bool = True
    channel_ids: list[str] = field(default_factory=list)

    @property
    def is_rack(self) -> bool:
        return self.metric.startswith(RACK_PREFIX)

    @classmethod
    def of_form(cls, form: FormData) -> RuleForm:
        return cls(
            name=_form_str(form, "name", 200),
            description=_form_str(form, "description", 1000),
            metric=_form_str(form, "metric", 100).strip(),
            op=_form_str(form, "op", 4).strip(),
            threshold=_form_str(form, "threshold", 100).strip(),
            budget=bool(_form_str(form, "budget")),
            for_s=_form_str(form, "for_s", 100).strip(),
            severity=_form_str(form, "severity", 16).strip().upper(),
            scope_type=_form_str(form, "scope_type", 16).strip(),
            scope_id=_form_str(form, "scope_id", 100).strip(),
            enabled=bool(_form_str(form, "enabled")),
            channel_ids=[v[:32] for v in form.getlist("channel_ids") if isinstance(v, str)][:20],
        )

    @classmethod
    def of_rule(cls, r: AlertRule, scope_text: str) -> RuleForm:
        budget = r.threshold is None
        return cls(
            name=r.name,
            description=r.description or "",
            metric=(RACK_PREFIX if r.aggregate == "rack_sum" else "") + r.metric,
            op=r.op,
            threshold="" if budget else f"{r.threshold:g}",
            budget=budget,
            for_s=format_duration(r.for_s),
            severity=r.severity,
            scope_type=r.scope_type,
            scope_id=scope_text,
            enabled=r.enabled,
            channel_ids=list(r.channel_ids or []),
        )


def format_duration(seconds: float) -> str:
    """300 → "5m", 5400 → "1h30m", 0 → "" (the inverse of ``parse_duration``)."""
    if seconds <= 0:
        return ""
    if seconds != int(seconds):
        return f"{seconds:g}s"
    s, out = int(seconds), ""
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= size:
            out += f"{s // size}{unit}"
            s %= size
    return out


def _message(exc: InvalidRequestError | ConflictError) -> tuple[str | None, str]:
    """(form field, message without its "field: " prefix) of a service error."""
    m = _FIELD_RE.match(exc.message)
    name = str(exc.details.get("field") or (m.group(1) if m else ""))
    text = m.group(2) if m else exc.message
    name = {"for": "for_s", "expression": "metric", "aggregate": "metric"}.get(name, name)
    if isinstance(exc, ConflictError) and "named" in exc.message:
        name = "name"
    return (name if name in RULE_FORM_FIELDS else None), text[:1].upper() + text[1:]


def _check_condition(f: RuleForm) -> tuple[Condition | None, dict[str, str]]:
    """The condition of the form and each field's error, with ``alert_rules``' own checks
    (per-metric threshold ranges, minimum durations). Pure: no database."""
    errors: dict[str, str] = {}
    metric = f.metric.removeprefix(RACK_PREFIX)
    summed = f.is_rack
    if not METRIC_RE.match(metric):
        errors["metric"] = "Choose a metric (lower case letters, digits and _)."
    if f.op not in OPS:
        errors["op"] = f"Choose one of {' '.join(OPS)}."
    threshold: float | None = None
    if (f.budget and summed) or f.threshold.lower() == "budget":
        if not (summed and metric == "power_w"):
            errors["threshold"] = (
                "Only the rack power rule (rack power_w) can compare with the rack's budget; "
                "give a number."
            )
    elif not f.threshold:
        errors["threshold"] = "Give a threshold (a number)."
    else:
        try:
            threshold = float(f.threshold)
        except ValueError:
            errors["threshold"] = f"{f.threshold!r} is not a number."
        else:
            if "metric" not in errors:
                try:
                    check_threshold(metric, threshold, summed=summed)
                except InvalidRequestError as exc:
                    errors["threshold"] = _message(exc)[1]
    for_s = 0.0
    try:
        for_s = parse_duration(f.for_s) if f.for_s else 0.0
        check_for(for_s)
    except InvalidRequestError as exc:
        errors["for_s"] = _message(exc)[1]
    if errors:
        return None, errors
    aggregate = "rack_sum" if summed else "device"
    return Condition(metric, f.op, threshold, for_s, aggregate), {}


async def _check_form(
    session: AsyncSession, viewer: Viewer, f: RuleForm
) -> tuple[dict[str, Any], dict[str, str]]:
    """The service's fields for the form, and every field's error (empty: fit to save)."""
    cond, errors = _check_condition(f)
    name = f.name.strip()
    if not name:
        errors["name"] = "Give the rule a name."
    elif len(name) > 100:
        errors["name"] = "At most 100 characters."
    if len(f.description) > 255:
        errors["description"] = "At most 255 characters."
    if f.severity not in SEVERITIES:
        errors["severity"] = f"Choose one of {', '.join(SEVERITIES)}."
    scope_id: str | None = None
    if f.scope_type not in SCOPES:
        errors["scope_type"] = f"Choose one of {', '.join(SCOPES)}."
    elif f.is_rack and f.scope_type not in ("rack", "fleet"):
        errors["scope_type"] = "A rack rule applies to one rack or to the whole fleet."
    elif f.scope_type != "fleet":
        scope_id, problem = await _scope_id(session, viewer.tenant_id, f.scope_type, f.scope_id)
        if problem:
            errors["scope_id"] = problem
    fields: dict[str, Any] = {
        "name": name,
        "description": f.description.strip() or None,
        "severity": f.severity,
        "scope_type": f.scope_type,
        "scope_id": scope_id,
        "enabled": f.enabled,
    }
    if cond is not None:
        fields.update(
            metric=cond.metric,
            op=cond.op,
            threshold="budget" if cond.threshold is None else cond.threshold,
            aggregate=cond.aggregate,
            for_s=cond.for_s,
        )
    if viewer.is_admin:  # channels are the admins' (as in the API); others keep them as they are
        fields["channel_ids"] = f.channel_ids
    return fields, errors


SCOPE_MODELS: dict[str, type[Group] | type[Rack] | type[Zone]] = {
    "group": Group,
    "rack": Rack,
    "zone": Zone,
}


async def _scope_id(
    session: AsyncSession, tenant_id: str, scope_type: str, typed: str
) -> tuple[str | None, str | None]:
    """(the scope object's id, or the problem with what was chosen)."""
    what = scope_type
    if not typed:
        return None, f"Choose the {what} the rule watches."
    if scope_type == "device":
        found = await _find_device(session, tenant_id, typed)
        return (found, None) if found else (None, f"No device named {typed!r}.")
    model = SCOPE_MODELS[scope_type]
    owner = await session.scalar(select(model.tenant_id).where(model.id == typed))
    return (typed, None) if owner == tenant_id else (None, f"No such {what}.")


async def _scope_options(
    session: AsyncSession, tenant_id: str, scope_type: str
) -> list[tuple[str, str]]:
    if scope_type == "rack":
        return await _rack_options(session, tenant_id)
    if scope_type in ("group", "zone"):
        model = Group if scope_type == "group" else Zone
        rows = await session.execute(
            select(model.id, model.name)
            .where(model.tenant_id == tenant_id)
            .order_by(model.name)
            .limit(OPTIONS_MAX)
        )
        return [(i, n) for i, n in rows.all()]
    return []


async def _scope_labels(
    session: AsyncSession, tenant_id: str, rules: Sequence[AlertRule]
) -> dict[str, str]:
    """The names of the rules' scope objects (one query per scope type in use)."""
    by_type: dict[str, set[str]] = {}
    for r in rules:
        if r.scope_id:
            by_type.setdefault(r.scope_type, set()).add(r.scope_id)
    labels: dict[str, str] = {}
    for scope_type, ids in by_type.items():
        if scope_type == "device":
            labels |= await _device_names(session, tenant_id, ids)
        elif scope_type == "rack":
            labels |= dict(await _rack_options(session, tenant_id, ids))
        elif scope_type in ("group", "zone"):
            model = Group if scope_type == "group" else Zone
            rows = await session.execute(
                select(model.id, model.name).where(
                    model.tenant_id == tenant_id, model.id.in_(sorted(ids))
                )
            )
            labels |= dict(rows.all())
    return labels


async def _channel_options(session: AsyncSession, viewer: Viewer) -> list[tuple[str, str]]:
    if not viewer.is_admin:
        return []
    rows = await session.execute(
        select(NotificationChannel.id, NotificationChannel.name)
        .where(NotificationChannel.tenant_id == viewer.tenant_id)
        .order_by(NotificationChannel.name)
    )
    return [(i, n) for i, n in rows.all()]


def _rule_row(r: AlertRule, labels: dict[str, str]) -> dict[str, Any]:
    view = alerts.rule_view(r)
    label = labels.get(r.scope_id or "", r.scope_id or "")
    view["scope_text"] = "fleet" if r.scope_type == "fleet" else f"{r.scope_type}: {label}"
    view["for_text"] = format_duration(r.for_s)
    return view


def _preview_text(f: RuleForm) -> tuple[str, str | None]:
    """(the condition in the rule language, or the first thing to fix)."""
    cond, errors = _check_condition(f)
    if cond is None:
        return "", next(iter(errors.values()))
    text = describe(cond)
    unit = unit_of(cond.metric)
    limit = "the rack's power budget" if cond.threshold is None else f"{cond.threshold:g} {unit}"
    words = f"{cond.metric} {OP_WORDS[cond.op]} {limit.strip()}"
    if cond.for_s:
        words += f" for {format_duration(cond.for_s)}"
    return f"{text}  ({words})", None


async def _form_page(
    request: Request,
    session: AsyncSession,
    viewer: Viewer,
    f: RuleForm,
    *,
    rule: AlertRule | None,
    errors: dict[str, str] | None = None,
    form_error: str | None = None,
    status_code: int = 200,
) -> Response:
    preview, problem = _preview_text(f)
    ctx = {
        "form": f,
        "rule": rule,
        "action": f"/alerts/rules/{rule.id}/edit" if rule else "/alerts/rules/new",
        "errors": errors or {},
        "form_error": form_error,
        "metrics": [(m, metric_label(m, what)) for m, what in METRICS],
        "rack_metrics": RACK_METRICS,
        "custom_metric": f.metric
        if f.metric and f.metric not in dict(METRICS) and f.metric not in dict(RACK_METRICS)
        else None,
        "ops": [(op, OP_WORDS[op]) for op in OPS],
        "severities": SEVERITIES,
        "scopes": [(s, SCOPE_WORDS[s]) for s in ("fleet", "group", "rack", "zone", "device")],
        "scope_options": await _scope_options(session, viewer.tenant_id, f.scope_type),
        "channels": await _channel_options(session, viewer),
        "preview": preview,
        "preview_problem": problem,
        "rack_power": RACK_POWER,
    }
    template = "alerts/_rule_form.html" if is_htmx(request) else "alerts/rule_edit.html"
    return render(request, template, ctx, status_code=status_code)


async def _save_rule(
    request: Request, session: AsyncSession, viewer: Viewer, rule: AlertRule | None
) -> Response:
    """Check the posted form; save it through the service only when every field is right."""
    rule_id = rule.id if rule is not None else None  # the object expires on a rollback
    f = RuleForm.of_form(await request.form())
    fields, errors = await _check_form(session, viewer, f)
    form_error = None
    if not errors:
        try:
            if rule_id is None:
                saved = await alerts.create_rule(session, viewer.principal, fields)
            else:
                saved = await alerts.update_rule(
                    session, viewer.principal, rule_id, fields, wall_now()
                )
        except (InvalidRequestError, ConflictError) as exc:
            name, text = _message(exc)
            if name:
                errors[name] = text
            else:
                form_error = text
        else:
            return _redirect(request, f"/alerts/rules?saved={quote(saved.name)}")
    await session.rollback()  # nothing of a refused form is kept
    if rule_id is not None:
        rule = await alerts.get_rule(session, viewer.tenant_id, rule_id)
    return await _form_page(
        request,
        session,
        viewer,
        f,
        rule=rule,
        errors=errors,
        form_error=form_error or "The rule was not saved: correct the fields marked below.",
        status_code=422,
    )


@router.get("/alerts/rules")
async def rule_list(
    request: Request,
    viewer: ViewerDep,
    session: SessionDep,
    page: str | None = None,
    saved: str | None = None,
    deleted: str | None = None,
) -> Response:
    tenant = viewer.tenant_id
    total = int(
        await session.scalar(select(func.count()).where(AlertRule.tenant_id == tenant)) or 0
    )
    pages = max(1, math.ceil(total / RULES_PAGE_SIZE))
    number = min(page_number(page), pages)
    rules = list(
        await session.scalars(
            select(AlertRule)
            .where(AlertRule.tenant_id == tenant)
            .order_by(AlertRule.name, AlertRule.id)
            .limit(RULES_PAGE_SIZE)
            .offset((number - 1) * RULES_PAGE_SIZE)
        )
    )
    labels = await _scope_labels(session, tenant, rules)
    notice = None
    if saved:
        notice = f"Rule “{saved[:100]}” saved."
    elif deleted:
        notice = f"Rule “{deleted[:100]}” deleted; its open alerts were cleared."
    ctx = {
        "rules": [_rule_row(r, labels) for r in rules],
        "total": total,
        "page": number,
        "pages": pages,
        "notice": notice,
    }
    return render(request, "alerts/rules.html", ctx)


@router.get("/alerts/rules/new")
async def rule_new(request: Request, viewer: OperatorDep, session: SessionDep) -> Response:
    return await _form_page(request, session, viewer, RuleForm(), rule=None)


@router.post("/alerts/rules/new")
async def rule_create(request: Request, viewer: OperatorDep, session: SessionDep) -> Response:
    return await _save_rule(request, session, viewer, None)


@router.post("/alerts/rules/_preview")
async def rule_preview(request: Request, viewer: OperatorDep) -> Response:
    """The condition as the form stands (a live preview while typing)."""
    preview, problem = _preview_text(RuleForm.of_form(await request.form()))
    return render(
        request, "alerts/_rule_preview.html", {"preview": preview, "preview_problem": problem}
    )


@router.get("/alerts/rules/_scope")
async def rule_scope_field(
    request: Request,
    viewer: OperatorDep,
    session: SessionDep,
    scope_type: str = "fleet",
) -> Response:
    """The scope_id field for a scope type (a select, or a device name with suggestions)."""
    f = RuleForm(scope_type=scope_type if scope_type in SCOPES else "fleet")
    ctx = {
        "form": f,
        "errors": {},
        "scope_options": await _scope_options(session, viewer.tenant_id, f.scope_type),
    }
    return render(request, "alerts/_scope_field.html", ctx)


@router.get("/alerts/rules/{rule_id}/edit")
async def rule_edit(
    request: Request, rule_id: str, viewer: OperatorDep, session: SessionDep
) -> Response:
    rule = await alerts.get_rule(session, viewer.tenant_id, rule_id)
    scope_text = rule.scope_id or ""
    if rule.scope_type == "device" and rule.scope_id:
        names = await _device_names(session, viewer.tenant_id, [rule.scope_id])
        scope_text = names.get(rule.scope_id, rule.scope_id)
    return await _form_page(request, session, viewer, RuleForm.of_rule(rule, scope_text), rule=rule)


@router.post("/alerts/rules/{rule_id}/edit")
async def rule_update(
    request: Request, rule_id: str, viewer: OperatorDep, session: SessionDep
) -> Response:
    rule = await alerts.get_rule(session, viewer.tenant_id, rule_id)
    return await _save_rule(request, session, viewer, rule)


@router.post("/alerts/rules/{rule_id}/enabled")
async def rule_enable(
    request: Request, rule_id: str, viewer: OperatorDep, session: SessionDep
) -> Response:
    """Turn a rule on or off (``enabled`` = "1" / "0"); disabling clears its open alerts."""
    form = await request.form()
    on = _form_str(form, "enabled") in ("1", "true", "on")
    rule = await alerts.update_rule(session, viewer.principal, rule_id, {"enabled": on}, wall_now())
    if not is_htmx(request):
        return _redirect(request, "/alerts/rules")
    labels = await _scope_labels(session, viewer.tenant_id, [rule])
    return render(request, "alerts/_rule_row.html", {"r": _rule_row(rule, labels)})


@router.post("/alerts/rules/{rule_id}/delete")
async def rule_delete(
    request: Request, rule_id: str, viewer: OperatorDep, session: SessionDep
) -> Response:
    """Delete a rule; its open alerts are cleared and kept."""
    rule = await alerts.get_rule(session, viewer.tenant_id, rule_id)
    name = rule.name
    await alerts.delete_rule(session, viewer.principal, rule_id, wall_now())
    if is_htmx(request):
        return Response(status_code=200, content="")  # the row goes
    return _redirect(request, f"/alerts/rules?deleted={quote(name)}")


# ----------------------------------------------------------------------------- one alert


async def _detail_context(session: AsyncSession, viewer: Viewer, a: Alert) -> dict[str, Any]:
    [row] = await _alert_rows(session, viewer, [a])
    events = [alerts.event_view(e) for e in await alerts.history(session, a.id)]
    actors = await _user_names(
        session,
        viewer.tenant_id,
        (m.group(1) for e in events if (m := re.match(r"^assigned to (\w+)$", e["note"] or ""))),
    )
    for e in events:
        m = re.match(r"^assigned to (\w+)$", e["note"] or "")
        if m and m.group(1) in actors:
            e["note"] = f"assigned to {actors[m.group(1)]}"
    rule_exists = bool(
        a.rule_id
        and await session.scalar(
            select(AlertRule.id).where(
                AlertRule.id == a.rule_id, AlertRule.tenant_id == viewer.tenant_id
            )
        )
    )
    return {
        "a": row,
        "history": events,
        "rule_exists": rule_exists,
        "users": await _user_options(session, viewer.tenant_id) if viewer.can_operate else [],
    }


@router.get("/alerts/{alert_id}")
async def alert_detail(
    request: Request, alert_id: str, viewer: ViewerDep, session: SessionDep
) -> Response:
    a = await alerts.get_alert(session, viewer.tenant_id, alert_id)
    return render(request, "alerts/detail.html", await _detail_context(session, viewer, a))


async def _after_action(
    request: Request, session: AsyncSession, viewer: Viewer, a: Alert, form: FormData
) -> Response:
    """htmx: the changed row (or the detail panel); a plain form: back where it came from."""
    if not is_htmx(request):
        target = _safe_next(_form_str(form, "next", 2000), f"/alerts/{a.id}")
        return Response(status_code=303, headers={"Location": target})
    if _form_str(form, "view") == "detail":
        ctx = await _detail_context(session, viewer, a)
        return render(request, "alerts/_detail.html", ctx)
    [row] = await _alert_rows(session, viewer, [a])
    users = await _user_options(session, viewer.tenant_id)
    return render(request, "alerts/_row.html", {"a": row, "users": users, "changed": True})


def _note(form: FormData) -> str | None:
    note = _form_str(form, "note", NOTE_MAX + 1).strip()
    if len(note) > NOTE_MAX:
        raise InvalidRequestError(f"note: at most {NOTE_MAX} characters")
    return note or None


@router.post("/alerts/{alert_id}/ack")
async def alert_ack(
    request: Request, alert_id: str, viewer: OperatorDep, session: SessionDep, state: StateDep
) -> Response:
    form = await request.form()
    a = await alerts.acknowledge(session, viewer.principal, alert_id, _note(form), state.bus)
    return await _after_action(request, session, viewer, a, form)


@router.post("/alerts/{alert_id}/assign")
async def alert_assign(
    request: Request, alert_id: str, viewer: OperatorDep, session: SessionDep, state: StateDep
) -> Response:
    form = await request.form()
    user_id = _form_str(form, "user_id", 32).strip() or None
    a = await alerts.assign(session, viewer.principal, alert_id, user_id, state.bus)
    return await _after_action(request, session, viewer, a, form)


@router.post("/alerts/{alert_id}/clear")
async def alert_clear(
    request: Request, alert_id: str, viewer: OperatorDep, session: SessionDep, state: StateDep
) -> Response:
    form = await request.form()
    a = await alerts.clear(session, viewer.principal, alert_id, _note(form), state.bus)
    return await _after_action(request, session, viewer, a, form)
