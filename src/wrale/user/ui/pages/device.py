"""The dashboard's device page ``/devices/<id>``: identity and location, live gauges, charts
(with the ``/series`` JSON they draw), twin with the fan forms, commands, diagnostics,
events, alerts and audit trail. Each section is also an htmx fragment the page refreshes
when the live stream says this device changed; every write goes through a brain service.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.convertors import Convertor, register_url_convertor

from wrale.fleet.brain.channel import events as channel_events
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.commands import Command
from wrale.fleet.brain.models.twin import DeviceTwin
from wrale.fleet.brain.services import alerts as alerts_svc
from wrale.fleet.brain.services import commands as commands_svc
from wrale.fleet.brain.services import device_view, groups, registry, telemetry, telemetry_query
from wrale.fleet.brain.services import twin as twin_svc
from wrale.fleet.brain.services.alert_rules import parse_duration
from wrale.shared.errors import ConflictError, InvalidRequestError, NotFoundError
from wrale.shared.policy import FanProfile, ThermalPolicy
from wrale.user.api.deps import StateDep
from wrale.user.ui.pages.device_twin import twin_rows, twin_state
from wrale.user.ui.web import OperatorDep, SessionDep, Viewer, ViewerDep, is_htmx, render

router = APIRouter(include_in_schema=False)


class _DeviceId(Convertor[str]):
    """Only our ids (32 lowercase hex digits) match, so ``/devices/<anything else>`` is left
    to the device list's own routes (or a 404)."""

    regex = "[0-9a-f]{32}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("wrale_id", _DeviceId())
BASE = "/devices/{device_id:wrale_id}"

PROFILES = tuple(p.value for p in FanProfile)
EVENTS_PAGE = 25
COMMANDS_PAGE = 20
MAX_FIELD = 2000
MAX_ARGS = 8000
STALE_MIN_S = 60.0  # a reading older than this (or 3 report intervals) is marked stale

# ----------------------------------------------------------------------------- charts

RANGES: dict[str, tuple[int, str | None]] = {
    "1h": (3600, None),  # raw points in 10-second buckets
    "6h": (6 * 3600, "1m"),
    "24h": (86_400, "5m"),
    "7d": (7 * 86_400, "1h"),
}
RANGE_LABELS = {"1h": "1 h", "6h": "6 h", "24h": "24 h", "7d": "7 d"}
STEP_LABELS = {None: "10-second means", "1m": "1-minute means", "5m": "5-minute means"}
STEP_LABELS["1h"] = "1-hour means"
BUCKET_S = 10


@dataclass(frozen=True, slots=True)
class Chart:
    key: str
    title: str
    unit: str
    metrics: tuple[str, ...]
    labels: tuple[str, ...]
    digits: int = 1


CHARTS = (
    Chart(
        "temp",
        "Temperature",
        "°C",
        ("cpu_temp_c", "gpu_temp_c", "ambient_temp_c"),
        ("CPU", "GPU", "Ambient"),
    ),
    Chart("fan", "Fan duty", "%", ("fan_pct",), ("Fan",), 0),
    Chart("power", "Power draw", "W", ("power_w",), ("Power",), 2),
    Chart("battery", "Battery", "%", ("battery_pct",), ("Battery",), 0),
)
CHART_METRICS = tuple(m for c in CHARTS for m in c.metrics)


async def build_series(
    session: AsyncSession, device: Device, rng: str, now: float
) -> dict[str, Any]:
    """The charts' data for one range: per chart aligned columns ``ts`` and one per metric
    (None where a metric has no point), and per metric min / max / latest."""
    if rng not in RANGES:
        raise InvalidRequestError(f"range: use one of {', '.join(RANGES)}", field="range")
    span, step = RANGES[rng]
    start, end = now - span, now
    points: dict[str, list[list[float]]] = {}  # metric → [[ts, mean, min, max], …]
    if step is None:
        points = await device_view.bucketed(session, device, CHART_METRICS, start, end, BUCKET_S)
    else:
        for metric in CHART_METRICS:
            s = await telemetry_query.device_series(session, device, metric, start, end, step)
            points[metric] = [p[:4] for p in s.points]
    latest = await telemetry.device_latest(session, device)
    charts: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    for chart in CHARTS:
        stamps = sorted({p[0] for m in chart.metrics for p in points.get(m, [])})
        at = {t: i for i, t in enumerate(stamps)}
        columns: dict[str, list[float | None]] = {}
        for metric in chart.metrics:
            col: list[float | None] = [None] * len(stamps)
            for p in points.get(metric, []):
                col[at[p[0]]] = round(p[1], 3)
            columns[metric] = col
            pts = points.get(metric, [])
            last = latest.get(metric)
            summary[metric] = {
                "min": round(min(p[2] for p in pts), 3) if pts else None,
                "max": round(max(p[3] for p in pts), 3) if pts else None,
                "latest": round(last[1], 3) if last else None,
                "latest_ts": last[0] if last else None,
            }
        charts[chart.key] = {"ts": stamps, "series": columns}
    return {
        "device_id": device.id,
        "range": rng,
        "step": step or f"{BUCKET_S}s",
        "step_label": STEP_LABELS[step],
        "start": start,
        "end": end,
        "charts": charts,
        "summary": summary,
    }


def summary_text(chart: Chart, summary: Mapping[str, Any]) -> str:
    """'CPU: min 41.0, max 64.2, latest 63.9 °C; GPU: no data' for a chart's caption."""
    parts = []
    for metric, label in zip(chart.metrics, chart.labels, strict=True):
        s = summary.get(metric) or {}
        if s.get("min") is None and s.get("latest") is None:
            parts.append(f"{label}: no data")
            continue
        bits = []
        if s.get("min") is not None:
            bits.append(f"min {s['min']:,.{chart.digits}f}")
            bits.append(f"max {s['max']:,.{chart.digits}f}")
        if s.get("latest") is not None:
            bits.append(f"latest {s['latest']:,.{chart.digits}f}")
        parts.append(f"{label}: {', '.join(bits)} {chart.unit}")
    return "; ".join(parts)


# ----------------------------------------------------------------------------- gauges


@dataclass(frozen=True, slots=True)
class GaugeSpec:
    metric: str
    label: str
    unit: str
    lo: float
    hi: float
    digits: int
    section: str | None = None  # desired-state section holding the thresholds
    warn_key: str | None = None
    crit_key: str | None = None
    low_is_bad: bool = False


GAUGES = (
    GaugeSpec("cpu_temp_c", "CPU", "°C", 20, 90, 1, "thermal", "cpu_warning_c", "cpu_critical_c"),
    GaugeSpec("gpu_temp_c", "GPU", "°C", 20, 90, 1, "thermal", "gpu_warning_c", "gpu_critical_c"),
    GaugeSpec(
        "ambient_temp_c",
        "Ambient",
        "°C",
        0,
        60,
        1,
        "thermal",
        "ambient_warning_c",
        "ambient_critical_c",
    ),
    GaugeSpec("fan_pct", "Fan", "%", 0, 100, 0),
    GaugeSpec("power_w", "Power", "W", 0, 12, 2),
    GaugeSpec(
        "battery_pct",
        "Battery",
        "%",
        0,
        100,
        0,
        "power",
        "low_battery_pct",
        "critical_battery_pct",
        low_is_bad=True,
    ),
)
LEVEL_TEXT = {"ok": "normal", "warning": "warning", "critical": "critical", "unknown": "no data"}


def level(value: float | None, warn: float | None, crit: float | None, low_is_bad: bool) -> str:
    if value is None:
        return "unknown"
    if low_is_bad:
        if crit is not None and value <= crit:
            return "critical"
        if warn is not None and value <= warn:
            return "warning"
        return "ok"
    if crit is not None and value >= crit:
        return "critical"
    if warn is not None and value >= warn:
        return "warning"
    return "ok"


def _arc_point(frac: float) -> tuple[float, float]:
    """A point on the gauge's half circle (centre 60,60, radius 50) at ``frac`` of its scale."""
    angle = math.pi * (1.0 - max(0.0, min(1.0, frac)))
    return round(60 + 50 * math.cos(angle), 2), round(60 - 50 * math.sin(angle), 2)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def gauges(
    latest: Mapping[str, tuple[float, float]],
    desired: Mapping[str, Any],
    now: float,
    stale_after: float,
) -> list[dict[str, Any]]:
    out = []
    for g in GAUGES:
        section = desired.get(g.section or "") or {}
        warn = _number(section.get(g.warn_key)) if g.warn_key else None
        crit = _number(section.get(g.crit_key)) if g.crit_key else None
        reading = latest.get(g.metric)
        value = reading[1] if reading else None
        span = g.hi - g.lo
        marks = [
            {"name": name, "value": v, "x": x, "y": y}
            for name, v in (("warning", warn), ("critical", crit))
            if v is not None
            for x, y in [_arc_point((v - g.lo) / span)]
        ]
        lv = level(value, warn, crit, g.low_is_bad)
        out.append(
            {
                "spec": g,
                "value": value,
                "ts": reading[0] if reading else None,
                "stale": reading is None or now - reading[0] > stale_after,
                "pct": 0.0 if value is None else max(0.0, min(100.0, (value - g.lo) / span * 100)),
                "warn": warn,
                "crit": crit,
                "marks": marks,
                "level": lv,
                "level_text": LEVEL_TEXT[lv],
            }
        )
    return out


def reading(
    latest: Mapping[str, tuple[float, float]], metric: str, now: float, stale_after: float
) -> dict[str, Any]:
    r = latest.get(metric)
    return {
        "metric": metric,
        "value": r[1] if r else None,
        "ts": r[0] if r else None,
        "stale": r is None or now - r[0] > stale_after,
    }


def stale_after_s(desired: Mapping[str, Any]) -> float:
    sampling = desired.get("sampling") or {}
    interval = _number(sampling.get("report_interval_s")) or 10.0
    return max(STALE_MIN_S, 3 * interval)


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
    max_override = _number(thermal.get("max_override_s")) or ThermalPolicy().max_override_s
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
    sim = commands_svc.is_sim(device, dict(reported))
    return [
        op
        for op in commands_svc.OPS
        if (op not in commands_svc.ADMIN_OPS or viewer.is_admin)
        and (op not in commands_svc.SIM_OPS or sim)
    ]


def brief(value: Any, limit: int = 160) -> str:
    if not value:
        return ""
    text = json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ----------------------------------------------------------------------------- sections

Ctx = dict[str, Any]


async def _device(session: AsyncSession, viewer: Viewer, device_id: str) -> Device:
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
    ctx.update(twin_ctx(t))
    ctx.update(await commands_ctx(session, viewer, device, t, before=commands_before))
    ctx.update(await diagnostics_ctx(session, device))
    ctx.update(await events_ctx(session, device, events_before))
    ctx.update(await alerts_ctx(session, device))
    ctx.update(await audit_ctx(session, device))
    ctx.update(overrides or {})
    return ctx


def _hex(value: str | None) -> str | None:
    return value if value and registry.is_id(value) else None


# ----------------------------------------------------------------------------- answers


def _section(
    request: Request, name: str, ctx: Ctx, status: int = 200, notice: str | None = None
) -> Response:
    headers = {"HX-Trigger": json.dumps({"wrale-notice": notice})} if notice else None
    return render(request, f"device/_{name}.html", ctx, status_code=status, headers=headers)


async def _answer(
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
    device = await _device(session, viewer, device_id)
    if is_htmx(request):
        return _section(request, name, await build(device), status, notice)
    if status < 400:
        return Response(status_code=303, headers={"Location": f"/devices/{device_id}#{name}"})
    ctx = await page_ctx(session, viewer, device, bus, overrides=await build(device))
    return render(request, "device/page.html", ctx, status_code=status)


def _fragment_only(request: Request, device_id: str, name: str) -> Response | None:
    if is_htmx(request):
        return None
    return Response(status_code=303, headers={"Location": f"/devices/{device_id}#{name}"})


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v[:MAX_FIELD] for k, v in form.items() if isinstance(v, str)}


def _int(value: str | None) -> int | None:
    try:
        return int(value or "")
    except ValueError:
        return None


# ----------------------------------------------------------------------------- routes


@router.get(BASE)
async def device_page(
    request: Request,
    device_id: str,
    viewer: ViewerDep,
    session: SessionDep,
    state: StateDep,
    events_before: Annotated[str | None, Query(max_length=64)] = None,
    commands_before: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    device = await _device(session, viewer, device_id)
    ctx = await page_ctx(
        session,
        viewer,
        device,
        state.bus,
        events_before=_hex(events_before),
        commands_before=_hex(commands_before),
    )
    return render(request, "device/page.html", ctx)


@router.get(BASE + "/series")
async def device_series(
    device_id: str,
    viewer: ViewerDep,
    session: SessionDep,
    rng: Annotated[str, Query(alias="range", max_length=8)] = "1h",
) -> JSONResponse:
    """The charts' data for ``range`` (1h, 6h, 24h, 7d) as JSON."""
    device = await _device(session, viewer, device_id)
    data = await build_series(session, device, rng, time.time())
    return JSONResponse(data, headers={"Cache-Control": "no-store"})


@router.get(BASE + "/identity")
async def identity_fragment(
    request: Request, device_id: str, viewer: ViewerDep, session: SessionDep, state: StateDep
) -> Response:
    if (away := _fragment_only(request, device_id, "identity")) is not None:
        return away
    device = await _device(session, viewer, device_id)
    t = await twin_svc.get_twin(session, viewer.tenant_id, device.id, state.bus)
    return _section(request, "identity", {**await identity_ctx(session, device, t)})


@router.get(BASE + "/twin")
async def twin_fragment(
    request: Request, device_id: str, viewer: ViewerDep, session: SessionDep, state: StateDep
) -> Response:
    if (away := _fragment_only(request, device_id, "twin")) is not None:
        return away
    device = await _device(session, viewer, device_id)
    t = await twin_svc.get_twin(session, viewer.tenant_id, device.id, state.bus)
    return _section(request, "twin", {"device": device, **twin_ctx(t)})


async def _twin_write(
    request: Request,
    session: AsyncSession,
    viewer: Viewer,
    device_id: str,
    bus: Any,
    version: int | None,
    patch: dict[str, Any] | None,
    errors: dict[str, str],
    form: dict[str, str],
    done: str,
) -> Response:
    """Apply ``patch`` under the form's desired ``version``; field errors answer 422, a
    stale version 409 with the fresh twin, success the twin with a notice."""
    status, message, notice = 200, None, None
    if version is None and not errors:
        message, status = "The form has no twin version; reload the page and try again.", 422
    if errors or patch is None:
        status = 422
    if status == 200:
        assert version is not None  # checked above
        assert patch is not None
        try:
            t = await twin_svc.patch_twin(session, viewer.principal, device_id, version, patch, bus)
            notice = f"{done} (desired version {t.desired_version})"
        except ConflictError as exc:
            status, message = 409, exc.message
        except InvalidRequestError as exc:
            path = str(exc.details.get("path") or "")
            field = {"fan.duration_s": "duration", "thermal.profile": "profile"}.get(
                path, "override_pct" if path.startswith("fan") else "profile"
            )
            errors[field], status = exc.message, 422
    if status != 200:
        await session.rollback()
        form = form if status == 422 else {}

    async def build(device: Device) -> Ctx:
        t = await twin_svc.get_twin(session, viewer.tenant_id, device.id, bus)
        ctx = twin_ctx(t, errors=errors, message=message, notice=notice, form=form)
        return {"device": device, **ctx}

    return await _answer(
        request, session, viewer, device_id, bus, "twin", build, status=status, notice=notice
    )


@router.post(BASE + "/twin/profile")
async def set_profile(
    request: Request, device_id: str, viewer: OperatorDep, session: SessionDep, state: StateDep
) -> Response:
    """The fan profile form: quiet / balance / cool / max, under the desired version."""
    form = await _form(request)
    profile = form.get("profile", "").strip()
    errors: dict[str, str] = {}
    if profile not in PROFILES:
        errors["profile"] = f"Choose a fan profile: {', '.join(PROFILES)}."
    patch = {"thermal": {"profile": profile}}
    return await _twin_write(
        request,
        session,
        viewer,
        device_id,
        state.bus,
        _int(form.get("version")),
        patch,
        errors,
        {},
        f"Fan profile set to {profile}",
    )


@router.post(BASE + "/twin/fan")
async def set_fan_override(
    request: Request, device_id: str, viewer: OperatorDep, session: SessionDep, state: StateDep
) -> Response:
    """The fan override form (percent and how long), or ``clear`` to drop the override."""
    form = await _form(request)
    version = _int(form.get("version"))
    if form.get("clear"):
        return await _twin_write(
            request, session, viewer, device_id, state.bus, version, {"fan": None}, {}, {},
            "Fan override cleared",
        )  # fmt: skip
    values = {"override_pct": form.get("override_pct", "").strip()}
    values["duration"] = form.get("duration", "").strip() or "5m"
    errors: dict[str, str] = {}
    pct: float | None = None
    try:
        pct = float(values["override_pct"])
    except ValueError:
        errors["override_pct"] = "Enter the fan duty as a number from 0 to 100 %."
    else:
        if not (math.isfinite(pct) and 0 <= pct <= 100):
            errors["override_pct"] = (
                f"The fan duty must be from 0 to 100 %, not {values['override_pct']} %."
            )
    duration: float | None = None
    device = await _device(session, viewer, device_id)
    t = await twin_svc.get_twin(session, viewer.tenant_id, device.id, state.bus)
    thermal = (t.desired or {}).get("thermal") or {}
    longest = _number(thermal.get("max_override_s")) or ThermalPolicy().max_override_s
    try:
        duration = parse_duration(values["duration"])
    except InvalidRequestError:
        errors["duration"] = "Enter a duration such as 90s, 5m or 1h."
    else:
        if not (math.isfinite(duration) and 1 <= duration <= longest):
            errors["duration"] = (
                f"The override may last from 1 s to {longest:g} s (the thermal policy's "
                "max_override_s)."
            )
    patch = None
    if not errors and pct is not None and duration is not None:
        patch = {"fan": {"override_pct": pct, "duration_s": duration}}
    what = f"Fan override {pct:g} % for {values['duration']}" if pct is not None else ""
    return await _twin_write(
        request, session, viewer, device_id, state.bus, version, patch, errors, values, what
    )


@router.get(BASE + "/commands")
async def commands_fragment(
    request: Request,
    device_id: str,
    viewer: ViewerDep,
    session: SessionDep,
    state: StateDep,
    before: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    if not is_htmx(request):
        where = f"?commands_before={_hex(before)}" if _hex(before) else ""
        return Response(
            status_code=303, headers={"Location": f"/devices/{device_id}{where}#commands"}
        )
    device = await _device(session, viewer, device_id)
    t = await twin_svc.get_twin(session, viewer.tenant_id, device.id, state.bus)
    ctx = await commands_ctx(session, viewer, device, t, before=_hex(before))
    return _section(request, "commands", {"device": device, **ctx})


@router.post(BASE + "/commands")
async def send_command(
    request: Request, device_id: str, viewer: OperatorDep, session: SessionDep, state: StateDep
) -> Response:
    """The command form: an operation, its arguments as a JSON object, an optional timeout."""
    form = await _form(request)
    values = {k: form.get(k, "").strip() for k in ("op", "args", "timeout")}
    errors: dict[str, str] = {}
    status, message, notice = 200, None, None
    op = values["op"]
    if op not in commands_svc.OPS:
        errors["op"] = f"Choose an operation ({', '.join(commands_svc.OPS)})."
    args: Any = {}
    if values["args"]:
        try:
            args = json.loads(values["args"][:MAX_ARGS])
        except ValueError:
            errors["args"] = 'The arguments must be a JSON object, e.g. {"percent": 60}.'
        else:
            if not isinstance(args, dict):
                errors["args"] = 'The arguments must be a JSON object, e.g. {"percent": 60}.'
    timeout: float | None = None
    if values["timeout"]:
        try:
            timeout = parse_duration(values["timeout"])
        except InvalidRequestError:
            errors["timeout"] = "Enter a timeout such as 90s, 5m or 1h (or leave it empty)."
    if errors:
        status = 422
    else:
        try:
            cmd = await commands_svc.create_command(
                session, viewer.principal, device_id, op, args, timeout_s=timeout, bus=state.bus
            )
            notice = f"Queued {cmd.op} (command {cmd.id[:8]}…)"
        except InvalidRequestError as exc:
            field = str(exc.details.get("field") or "args")
            key = "op" if field == "op" else "timeout" if field == "timeout_s" else "args"
            errors[key], status = exc.message, 422
        except ConflictError as exc:  # held, tamper lockdown, a sim_* op on a real board
            message, status = exc.message, 409
    if status != 200:
        await session.rollback()

    async def build(device: Device) -> Ctx:
        t = await twin_svc.get_twin(session, viewer.tenant_id, device.id, state.bus)
        ctx = await commands_ctx(
            session,
            viewer,
            device,
            t,
            errors=errors,
            message=message,
            notice=notice,
            form=values if status != 200 else None,
        )
        return {"device": device, **ctx}

    return await _answer(
        request, session, viewer, device_id, state.bus, "commands", build,
        status=status, notice=notice,
    )  # fmt: skip


async def _own_command(session: AsyncSession, viewer: Viewer, device_id: str, cid: str) -> None:
    cmd = await commands_svc.get_command(session, viewer.tenant_id, cid)
    if cmd.device_id != device_id:
        raise NotFoundError(f"no command {cid} on this device", command_id=cid)


@router.post(BASE + "/commands/{command_id:wrale_id}/cancel")
async def cancel_command(
    request: Request,
    device_id: str,
    command_id: str,
    viewer: OperatorDep,
    session: SessionDep,
    state: StateDep,
) -> Response:
    await _device(session, viewer, device_id)
    await _own_command(session, viewer, device_id, command_id)
    await commands_svc.cancel(session, viewer.principal, command_id, state.bus)

    async def build(device: Device) -> Ctx:
        t = await twin_svc.get_twin(session, viewer.tenant_id, device.id, state.bus)
        return {"device": device, **await commands_ctx(session, viewer, device, t)}

    return await _answer(
        request, session, viewer, device_id, state.bus, "commands", build,
        notice=f"Command {command_id[:8]}… cancelled",
    )  # fmt: skip


@router.get(BASE + "/diagnostics")
async def diagnostics_fragment(
    request: Request, device_id: str, viewer: ViewerDep, session: SessionDep
) -> Response:
    if (away := _fragment_only(request, device_id, "diagnostics")) is not None:
        return away
    device = await _device(session, viewer, device_id)
    return _section(
        request, "diagnostics", {"device": device, **await diagnostics_ctx(session, device)}
    )


@router.post(BASE + "/diagnostics")
async def run_diagnostics(
    request: Request, device_id: str, viewer: OperatorDep, session: SessionDep, state: StateDep
) -> Response:
    """Queue ``run_diag`` (every test the board has)."""
    cmd = await commands_svc.create_command(
        session, viewer.principal, device_id, device_view.DIAG_OP, {}, bus=state.bus
    )
    notice = f"Diagnostics queued (command {cmd.id[:8]}…)"

    async def build(device: Device) -> Ctx:
        return {"device": device, **await diagnostics_ctx(session, device, notice)}

    return await _answer(
        request, session, viewer, device_id, state.bus, "diagnostics", build, notice=notice
    )


@router.get(BASE + "/events")
async def events_fragment(
    request: Request,
    device_id: str,
    viewer: ViewerDep,
    session: SessionDep,
    before: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    if not is_htmx(request):
        where = f"?events_before={_hex(before)}" if _hex(before) else ""
        return Response(
            status_code=303, headers={"Location": f"/devices/{device_id}{where}#events"}
        )
    device = await _device(session, viewer, device_id)
    ctx = await events_ctx(session, device, _hex(before))
    return _section(request, "events", {"device": device, **ctx})


@router.get(BASE + "/alerts")
async def alerts_fragment(
    request: Request, device_id: str, viewer: ViewerDep, session: SessionDep
) -> Response:
    if (away := _fragment_only(request, device_id, "alerts")) is not None:
        return away
    device = await _device(session, viewer, device_id)
    return _section(request, "alerts", {"device": device, **await alerts_ctx(session, device)})


@router.post(BASE + "/alerts/{alert_id:wrale_id}/ack")
async def ack_alert(
    request: Request,
    device_id: str,
    alert_id: str,
    viewer: OperatorDep,
    session: SessionDep,
    state: StateDep,
) -> Response:
    device = await _device(session, viewer, device_id)
    alert = await alerts_svc.get_alert(session, viewer.tenant_id, alert_id)
    if alert.device_id != device.id:
        raise NotFoundError(f"no alert {alert_id} on this device", alert_id=alert_id)
    note = (await _form(request)).get("note", "").strip()[:1000] or None
    await alerts_svc.acknowledge(session, viewer.principal, alert_id, note, state.bus)

    async def build(device: Device) -> Ctx:
        return {"device": device, **await alerts_ctx(session, device)}

    return await _answer(
        request, session, viewer, device_id, state.bus, "alerts", build,
        notice=f"Alert acknowledged: {alert.rule_name}",
    )  # fmt: skip


@router.get(BASE + "/audit")
async def audit_fragment(
    request: Request, device_id: str, viewer: ViewerDep, session: SessionDep
) -> Response:
    if (away := _fragment_only(request, device_id, "audit")) is not None:
        return away
    device = await _device(session, viewer, device_id)
    return _section(request, "audit", {"device": device, **await audit_ctx(session, device)})
