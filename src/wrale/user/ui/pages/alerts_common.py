"""What the Alerts pages share: states, metrics and their words, the answers after a
change, the names and choices they show (devices, racks, users) and an alert's row."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from wrale.fleet.brain.models import Device, Rack, Room, Site, User
from wrale.fleet.brain.models.alerts import Alert
from wrale.fleet.brain.services import alerts
from wrale.fleet.brain.services.alert_rules import UNIT_RANGES
from wrale.user.ui import units
from wrale.user.ui.web import Viewer, is_htmx

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
FIELD_RE = re.compile(r"^(\w+): (.*)$", re.DOTALL)


def unit_of(metric: str) -> str:
    """The unit a metric's name says (``cpu_temp_c`` → °C); '' for flags and counts."""
    unit = units.unit_of(metric)
    return unit.symbol if unit else ""


def metric_label(metric: str, what: str) -> str:
    """``CPU temperature (°C, -40..150)``: what it is, its unit and the thresholds allowed."""
    for suffix, low, high, _ in UNIT_RANGES:
        if metric.endswith(suffix):
            return f"{what} ({unit_of(metric)}, {low:,.0f}..{high:,.0f})"
    return f"{what} (0 or 1)"


def like_pattern(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def safe_next(target: str | None, default: str) -> str:
    """A path on this server only (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def redirect(request: Request, location: str) -> Response:
    """After a change: htmx follows ``HX-Redirect``, a plain form the 303."""
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": location})
    return Response(status_code=303, headers={"Location": location})


def form_str(form: FormData, name: str, max_len: int = 1000) -> str:
    value = form.get(name)
    return value[:max_len] if isinstance(value, str) else ""


# ----------------------------------------------------------------------------- names


async def device_names(session: AsyncSession, tenant_id: str, ids: Iterable[str]) -> dict[str, str]:
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    rows = await session.execute(
        select(Device.id, Device.name).where(Device.tenant_id == tenant_id, Device.id.in_(wanted))
    )
    return dict(rows.all())


async def rack_options(
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


async def user_options(session: AsyncSession, tenant_id: str) -> list[tuple[str, str]]:
    """The tenant's active users, to assign alerts to (any of them may be assigned)."""
    rows = await session.execute(
        select(User.id, User.username)
        .where(User.tenant_id == tenant_id, User.disabled.is_(False))
        .order_by(User.username)
        .limit(OPTIONS_MAX)
    )
    return [(i, n) for i, n in rows.all()]


async def user_names(session: AsyncSession, tenant_id: str, ids: Iterable[str]) -> dict[str, str]:
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    rows = await session.execute(
        select(User.id, User.username).where(User.tenant_id == tenant_id, User.id.in_(wanted))
    )
    return dict(rows.all())


async def find_device(session: AsyncSession, tenant_id: str, text: str) -> str | None:
    """The id of the tenant's device named ``text`` (or with that id)."""
    stmt = select(Device.id).where(
        Device.tenant_id == tenant_id, or_(Device.name == text, Device.id == text)
    )
    return await session.scalar(stmt.limit(1))


async def alert_rows(
    session: AsyncSession, viewer: Viewer, rows: Sequence[Alert]
) -> list[dict[str, Any]]:
    """What each row shows: the alert with its device, rack and assignee names."""
    tenant = viewer.tenant_id
    devices = await device_names(session, tenant, (a.device_id or "" for a in rows))
    racks = dict(await rack_options(session, tenant, (a.rack_id or "" for a in rows)))
    users = await user_names(session, tenant, (a.assignee_id or "" for a in rows))
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
