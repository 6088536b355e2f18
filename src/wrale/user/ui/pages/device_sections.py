"""The device page's sections (identity, gauges, charts, twin, commands, diagnostics,
events, alerts, audit) as template contexts, and how a section answers: the whole page or
the htmx fragment."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.convertors import Convertor, register_url_convertor

from wrale.fleet.brain.channel import events as channel_events
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.commands import Command
from wrale.fleet.brain.models.twin import DeviceTwin
from wrale.fleet.brain.services import alerts as alerts_svc
from wrale.fleet.brain.services import command_rules, device_view, groups, registry, telemetry
from wrale.fleet.brain.services import twin as twin_svc
from wrale.shared.policy import FanProfile, ThermalPolicy
from wrale.user.ui import units
from wrale.user.ui.pages.device_panels import (
    CHARTS,
    RANGE_LABELS,
    as_number,
    build_series,
    gauges,
    reading,
    stale_after_s,
    summary_text,
)
from wrale.user.ui.pages.device_twin import twin_rows, twin_state
from wrale.user.ui.pages.maintenance_wear import wear_ctx
from wrale.user.ui.web import Viewer, is_htmx, render


class _DeviceId(Convertor[str]):
    """Only our ids (32 lowercase hex digits) match, so ``/devices/<anything else>`` is left
    to the device list's own routes (or a 404)."""

    regex = "[0-9a-f]{32}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("wrale_id", _DeviceId())  # before any route names it
BASE = "/devices/{device_id:wrale_id}"

BASE = "/devices/{device_id:wrale_id}"

PROFILES = tuple(p.value for p in FanProfile)
EVENTS_PAGE = 25
COMMANDS_PAGE = 20
MAX_FIELD = 2000
MAX_ARGS = 8000
STALE_MIN_S = 60.0  # a reading older than this (or 3 report intervals) is marked stale


# ----------------------------------------------------------------------------- twin
# the table's rows: wrale.user.ui.pages.device_twin


def twin_ctx(
    t: DeviceTwin,
    *,
    errors: Mapping[str, str] | None = None,
    message: str | None = None,
    notice: str | None = None,
    form: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    desired, reported = t.desired or {}, t.reported or {}
    thermal = desired.get("thermal") or {}
    fan = desired.get("fan") or {}
    max_override = as_number(thermal.get("max_override_s")) or ThermalPolicy().max_override_s
    values = {
        "override_pct": "" if fan.get("override_pct") is None else f"{fan['override_pct']:g}",
        "duration": f"{fan.get('duration_s', 300):g}s" if fan else "5m",
    }
    values.update(form or {})
    return {
        "twin": t,
        "twin_rows": twin_rows(t),
        "twin_state": twin_state(t),
        "profile": thermal.get("profile"),
        "reported_profile": (reported.get("thermal") or {}).get("profile"),
        "profiles": PROFILES,
        "fan_override": fan,
        "reported_fan": reported.get("fan") or {},
        "max_override_s": max_override,
        "twin_form": values,
        "twin_errors": dict(errors or {}),
        "twin_message": message,
        "twin_notice": notice,
    }


# ----------------------------------------------------------------------------- commands

OP_EXAMPLES: dict[str, str] = {
    "set_fan": '{"percent": 60, "duration_s": 300}',
    "clear_fan": "{}",
    "set_throttle": '{"max_freq_pct": 80}',
    "run_diag": "{}",
    "arm": '{"level": "medium"}',
    "disarm": "{}",
    "reboot": '{"delay_s": 0}',
    "shutdown": '{"delay_s": 0}',
    "safe_mode": '{"on": true}',
    "sim_fault": '{"fault": "heat_spike", "duration_s": 60}',
    "sim_clear": "{}",
    "sim_load": '{"percent": 80}',
    "sim_ambient": '{"celsius": 30}',
}


def ops_for(viewer: Viewer, device: Device, reported: Mapping[str, Any]) -> list[str]:
    """The operations this person may send to this device."""
    sim = command_rules.is_sim(device, dict(reported))
    return [
        op
        for op in command_rules.OPS
        if (op not in command_rules.ADMIN_OPS or viewer.is_admin)
        and (op not in command_rules.SIM_OPS or sim)
    ]


def brief(value: Any, limit: int = 160, exact: bool = False) -> str:
    """``value`` as short JSON, each reading rounded to its sensor's precision (``units``)
    unless ``exact`` (a tooltip's full text, the audit's record)."""
    if not value:
        return ""
    shown = value if exact else units.round_data(value)
    text = json.dumps(shown, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ----------------------------------------------------------------------------- sections

Ctx = dict[str, Any]


async def owned_device(session: AsyncSession, viewer: Viewer, device_id: str) -> Device:
    return await registry.get_device(session, viewer.tenant_id, device_id)


async def identity_ctx(session: AsyncSession, device: Device, t: DeviceTwin) -> Ctx:
    loc = await device_view.location(session, device)
    mode, connected = await device_view.channel_mode(session, device.id)
    reported = t.reported or {}
    if not mode and isinstance(reported.get("mode"), str):
        mode = reported["mode"]
    hardware = reported.get("hardware") if isinstance(reported.get("hardware"), dict) else {}
    return {
        "device": device,
        "loc": loc,
        "mode": mode,
        "connected": connected,
        "device_groups": await groups.groups_of_device(session, device),
        "hardware": hardware,
        "reported_agent": reported.get("agent_version"),
    }


async def gauges_ctx(session: AsyncSession, device: Device, t: DeviceTwin, now: float) -> Ctx:
    latest = await telemetry.device_latest(session, device)
    desired = t.desired or {}
    stale = stale_after_s(desired)
    on_battery = latest.get("on_battery")
    last_switch = await device_view.last_failover_source(session, device.id)
    tamper = (t.reported or {}).get("tamper") or {}
    flags = {m: reading(latest, m, now, stale) for m in ("case_open", "motion", "lockdown")}
    return {
        "gauges": gauges(latest, desired, now, stale),
        "fan_rpm": reading(latest, "fan_rpm", now, stale),
        "voltage": reading(latest, "voltage_v", now, stale),
        "charging": reading(latest, "charging", now, stale),
        "on_battery": reading(latest, "on_battery", now, stale),
        "power_source": device_view.power_source(
            on_battery[1] if on_battery else None, last_switch
        ),
        "last_switch": last_switch,
        "tamper_flags": flags,
        "tamper": tamper if isinstance(tamper, dict) else {},
        "stale_after": stale,
    }


async def charts_ctx(session: AsyncSession, device: Device, now: float) -> Ctx:
    series = await build_series(session, device, "1h", now)
    return {
        "charts": [(c, summary_text(c, series["summary"])) for c in CHARTS],
        "series_json": json.dumps(series, separators=(",", ":")),
        "series": series,
        "ranges": RANGE_LABELS,
    }


async def commands_ctx(
    session: AsyncSession,
    viewer: Viewer,
    device: Device,
    t: DeviceTwin,
    *,
    before: str | None = None,
    errors: Mapping[str, str] | None = None,
    message: str | None = None,
    notice: str | None = None,
    form: Mapping[str, str] | None = None,
) -> Ctx:
    rows = await device_view.commands(session, device, before_id=before, limit=COMMANDS_PAGE + 1)
    values = {"op": "", "args": "", "timeout": ""}
    values.update(form or {})
    return {
        "commands": rows[:COMMANDS_PAGE],
        "commands_more": rows[COMMANDS_PAGE - 1].id if len(rows) > COMMANDS_PAGE else None,
        "commands_before": before,
        "ops": ops_for(viewer, device, t.reported or {}),
        "op_examples": json.dumps(OP_EXAMPLES),
        "cmd_form": values,
        "cmd_errors": dict(errors or {}),
        "cmd_message": message,
        "cmd_notice": notice,
        "brief": brief,
    }


async def diagnostics_ctx(session: AsyncSession, device: Device, notice: str | None = None) -> Ctx:
    cmds = await device_view.commands(session, device, op=device_view.DIAG_OP, limit=10)
    evs = await device_view.diagnostics_events(session, device.id, limit=10)
    return {"diag_runs": device_view.diag_runs(cmds, evs), "diag_notice": notice}


async def events_ctx(session: AsyncSession, device: Device, before: str | None = None) -> Ctx:
    rows = await channel_events.list_events(
        session, device.id, before_id=before, limit=EVENTS_PAGE + 1
    )
    return {
        "events": rows[:EVENTS_PAGE],
        "events_more": rows[EVENTS_PAGE - 1].id if len(rows) > EVENTS_PAGE else None,
        "events_before": before,
        "brief": brief,
    }


async def alerts_ctx(session: AsyncSession, device: Device) -> Ctx:
    rows = await device_view.alerts(session, device)
    return {
        "alerts": rows,
        "alerts_open": sum(1 for a in rows if a.state in alerts_svc.OPEN_STATES),
    }


async def audit_ctx(session: AsyncSession, device: Device) -> Ctx:
    cmd_ids = await session.scalars(
        select(Command.id)
        .where(Command.tenant_id == device.tenant_id, Command.device_id == device.id)
        .order_by(Command.id.desc())
        .limit(100)
    )
    alert_ids = [a.id for a in await device_view.alerts(session, device, cleared=50)][:100]
    rows = await device_view.audit_trail(session, device, [*cmd_ids, *alert_ids], limit=50)
    return {"audit": rows, "brief": brief}


async def page_ctx(
    session: AsyncSession,
    viewer: Viewer,
    device: Device,
    bus: Any,
    *,
    events_before: str | None = None,
    commands_before: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Ctx:
    now = time.time()
    t = await twin_svc.get_twin(session, viewer.tenant_id, device.id, bus)
    ctx: Ctx = {"now": now}
    ctx.update(await identity_ctx(session, device, t))
    ctx.update(await gauges_ctx(session, device, t, now))
    ctx.update(await charts_ctx(session, device, now))
    ctx.update(await wear_ctx(session, device, now))
    ctx.update(twin_ctx(t))
    ctx.update(await commands_ctx(session, viewer, device, t, before=commands_before))
    ctx.update(await diagnostics_ctx(session, device))
    ctx.update(await events_ctx(session, device, events_before))
    ctx.update(await alerts_ctx(session, device))
    ctx.update(await audit_ctx(session, device))
    ctx.update(overrides or {})
    return ctx


def hex_or_none(value: str | None) -> str | None:
    return value if value and registry.is_id(value) else None


# ----------------------------------------------------------------------------- answers


def section(
    request: Request, name: str, ctx: Ctx, status: int = 200, notice: str | None = None
) -> Response:
    headers = {"HX-Trigger": json.dumps({"wrale-notice": notice})} if notice else None
    return render(request, f"device/_{name}.html", ctx, status_code=status, headers=headers)


async def answer(
    request: Request,
    session: AsyncSession,
    viewer: Viewer,
    device_id: str,
    bus: Any,
    name: str,
    build: Callable[[Device], Awaitable[Ctx]],
    *,
    status: int = 200,
    notice: str | None = None,
) -> Response:
    """After an action: htmx gets the section again; a plain form post goes back to the
    page (303) or, when the input was refused, gets the whole page with the errors."""
    device = await owned_device(session, viewer, device_id)
    if is_htmx(request):
        return section(request, name, await build(device), status, notice)
    if status < 400:
        return Response(status_code=303, headers={"Location": f"/devices/{device_id}#{name}"})
    ctx = await page_ctx(session, viewer, device, bus, overrides=await build(device))
    return render(request, "device/page.html", ctx, status_code=status)


def fragment_only(request: Request, device_id: str, name: str) -> Response | None:
    if is_htmx(request):
        return None
    return Response(status_code=303, headers={"Location": f"/devices/{device_id}#{name}"})


async def form_fields(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v[:MAX_FIELD] for k, v in form.items() if isinstance(v, str)}


def int_or_none(value: str | None) -> int | None:
    try:
        return int(value or "")
    except ValueError:
        return None
