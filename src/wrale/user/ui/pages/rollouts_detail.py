"""One rollout's page ``/rollouts/{id}``: what it delivers to which boards, its state, and
each wave with its boards (name, rack, state) and its gate's measured values beside their
limits; operators pause, resume, approve the next wave or abort it. While the rollout is
not finished the waves refresh themselves every 3 s; when its state changes the page
reloads (its buttons follow). Actions go through ``services.rollouts`` (same checks,
roles, audit and decision log as the API); the ``rollouts`` loop does the rest.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.decisions.gates import Limits
from wrale.fleet.brain.models import Device, Rack
from wrale.fleet.brain.models.rollouts import Rollout, RolloutDevice, RolloutWave
from wrale.fleet.brain.services import rollouts
from wrale.fleet.brain.services.selectors import ID_KEYS
from wrale.user.api.deps import StateDep
from wrale.user.ui.pages.rollouts import change_text, redirect
from wrale.user.ui.web import OperatorDep, SessionDep, ViewerDep, is_htmx, render

router = APIRouter(include_in_schema=False)

ACTIONS = {
    "pause": ("running", "waiting_approval"),
    "resume": ("paused",),
    "approve": ("waiting_approval",),
    "abort": ("running", "waiting_approval", "paused"),
}


def phase(r: Rollout) -> str:
    """What the page's buttons depend on: the state, and whether a rollback is due."""
    return f"{r.state}{'+rollback' if r.rollback_due else ''}"


def actions_of(r: Rollout) -> list[str]:
    """The by-hand actions the rollout's state allows (none while a rollback is due)."""
    if r.rollback_due:
        return []
    return [a for a, allowed in ACTIONS.items() if r.state in allowed]


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.2f}".rstrip("0").rstrip(".") + unit
    return f"{v}{unit}"


def gate_rows(gate: Mapping[str, Any], limits: Limits) -> list[dict[str, Any]]:
    """The gate's measures beside their limits: [{"name", "value", "limit", "over"}]."""

    def over(value: Any, limit: float | None) -> bool:
        num = isinstance(value, int | float) and not isinstance(value, bool)
        return limit is not None and num and float(value) > limit

    weather = gate.get("weather_rise_c")
    rows = [
        ("failure_pct", "Boards whose change failed", " %", limits.max_failure_pct),
        ("offline", "Boards gone offline", "", limits.max_offline),
        ("temp_rise_c", "Largest temperature rise (weather cancelled)", " °C", None),
        ("power_rise_w", "Largest power rise", " W", limits.max_power_rise_w),
        ("new_throttling", "Boards newly throttling", "", None),
        ("alerts", "Alerts raised", "", limits.max_alerts),
    ]
    if "fan_anomalies" in gate:  # measured where the gate knows fans
        fans = getattr(limits, "max_fan_anomalies", None)
        rows.append(("fan_anomalies", "Fan anomalies", "", fans))
    out = []
    for key, name, unit, limit in rows:
        value = gate.get(key)
        if key == "temp_rise_c":
            limit = limits.max_temp_rise_c
            if weather is not None:
                name += f" · weather {_fmt(weather, ' °C')}"
        if key == "new_throttling":
            limit = None if limits.allow_new_throttling else 0
        if key == "failure_pct" and gate.get("failed") is not None:
            name += f" · {gate.get('failed')} of {gate.get('boards')}"
        out.append(
            {
                "key": key,
                "name": name,
                "value": _fmt(value, unit),
                "limit": "unchecked" if limit is None else _fmt(float(limit), unit),
                "over": over(value, limit),
            }
        )
    return out


async def _names(
    session: AsyncSession, tenant_id: str, ids: Sequence[str]
) -> dict[str, tuple[str, str | None, str | None]]:
    """device id → (board name, rack id, rack name)."""
    if not ids:
        return {}
    rows = await session.execute(
        select(Device.id, Device.name, Device.rack_id, Rack.name)
        .outerjoin(Rack, Rack.id == Device.rack_id)
        .where(Device.tenant_id == tenant_id, Device.id.in_(sorted(set(ids))))
    )
    return {str(i): (str(n), r, rn) for i, n, r, rn in rows.all()}


def wave_rows(
    r: Rollout,
    waves: Sequence[RolloutWave],
    devices: Sequence[RolloutDevice],
    names: Mapping[str, tuple[str, str | None, str | None]],
    now: float,
) -> list[dict[str, Any]]:
    """Each wave: its boards (by rack, then name), state, gate rows and observation."""
    limits = rollouts.limits_of(r.gates)
    observe_s = float(r.gates.get("observe_s") or 0.0)
    by_wave: dict[int, list[dict[str, Any]]] = {}
    for d in devices:
        name, rack_id, rack = names.get(d.device_id, (d.device_id, None, None))
        by_wave.setdefault(d.wave, []).append(
            {"d": d, "name": name, "rack_id": rack_id, "rack": rack}
        )
    out = []
    for w in waves:
        boards = sorted(by_wave.get(w.idx, []), key=lambda b: (b["rack"] or "~", b["name"]))
        observed = None
        if w.state == "observing" and w.started_at is not None:
            paused = float(w.paused_s or 0.0)
            if r.paused_at is not None:
                paused += max(0.0, now - r.paused_at)
            observed = max(0.0, now - float(w.started_at) - paused)
        out.append(
            {
                "w": w,
                "number": w.idx + 1,
                "boards": boards,
                "racks": len({b["rack_id"] or b["d"].device_id for b in boards}),
                "current": w.idx == r.current_wave and w.state in ("pending", "observing"),
                "gate": gate_rows(w.gate, limits) if w.gate else [],
                "passed": w.gate.get("passed") if w.gate else None,
                "reasons": list(w.gate.get("reasons") or []) if w.gate else [],
                "observed_s": observed,
                "observe_s": observe_s,
            }
        )
    return out


async def selector_text(session: AsyncSession, tenant_id: str, sel: Mapping[str, Any]) -> str:
    """A selector in words, places by name: ``site Demo site · tags_all a, b``."""
    parts = []
    for key, value in sorted(sel.items()):
        model = ID_KEYS.get(key)
        if model is not None and isinstance(value, str):
            row: Any = await session.get(model, value)
            name = row.name if row is not None and row.tenant_id == tenant_id else value
            parts.append(f"{key.removesuffix('_id')} {name}")
        elif isinstance(value, list):
            parts.append(f"{key} {', '.join(map(str, value))}")
        else:
            parts.append(f"{key} {json.dumps(value)}")
    return " · ".join(parts)


async def _detail(session: AsyncSession, tenant_id: str, rollout_id: str) -> dict[str, Any]:
    r = await rollouts.get_rollout(session, tenant_id, rollout_id)
    waves = await rollouts.waves_of(session, r.id)
    devices = await rollouts.devices_of(session, r.id)
    names = await _names(session, tenant_id, [d.device_id for d in devices])
    rows = wave_rows(r, waves, devices, names, time.time())
    passed = sum(1 for w in waves if w.state == "passed")
    return {
        "r": r,
        "change": change_text(r.change),
        "selector": await selector_text(session, tenant_id, r.selector),
        "gates": r.gates,
        "waves": rows,
        "passed": passed,
        "boards": len(devices),
        "phase": phase(r),
        "actions": actions_of(r),
        "finished": r.state in rollouts.FINISHED and not r.rollback_due,
    }


@router.get("/rollouts/{rollout_id}")
async def rollout_page(
    request: Request, viewer: ViewerDep, session: SessionDep, rollout_id: str
) -> Response:
    ctx = await _detail(session, viewer.tenant_id, rollout_id)
    return render(request, "rollouts/detail.html", ctx)


@router.get("/rollouts/{rollout_id}/_waves")
async def rollout_waves(
    request: Request,
    viewer: ViewerDep,
    session: SessionDep,
    rollout_id: str,
    seen: str | None = None,
) -> Response:
    """The waves alone, for the refresh; a state other than the page's reloads the page."""
    ctx = await _detail(session, viewer.tenant_id, rollout_id)
    if seen is not None and seen != ctx["phase"] and is_htmx(request):
        return Response(status_code=200, headers={"HX-Refresh": "true"})
    return render(request, "rollouts/_waves.html", ctx)


@router.post("/rollouts/{rollout_id}/pause")
async def rollout_pause(
    request: Request, viewer: OperatorDep, session: SessionDep, state: StateDep, rollout_id: str
) -> Response:
    await rollouts.pause(session, viewer.principal, rollout_id, bus=state.bus)
    return redirect(request, f"/rollouts/{rollout_id}")


@router.post("/rollouts/{rollout_id}/resume")
async def rollout_resume(
    request: Request, viewer: OperatorDep, session: SessionDep, state: StateDep, rollout_id: str
) -> Response:
    await rollouts.resume(session, viewer.principal, rollout_id, bus=state.bus)
    return redirect(request, f"/rollouts/{rollout_id}")


@router.post("/rollouts/{rollout_id}/approve")
async def rollout_approve(
    request: Request, viewer: OperatorDep, session: SessionDep, state: StateDep, rollout_id: str
) -> Response:
    await rollouts.approve(session, viewer.principal, rollout_id, bus=state.bus)
    return redirect(request, f"/rollouts/{rollout_id}")


@router.post("/rollouts/{rollout_id}/abort")
async def rollout_abort(
    request: Request, viewer: OperatorDep, session: SessionDep, state: StateDep, rollout_id: str
) -> Response:
    await rollouts.abort(session, viewer.principal, rollout_id, bus=state.bus)
    return redirect(request, f"/rollouts/{rollout_id}")
