"""The rack power capping loop's shell (lease-guarded background job ``rack_capping``):
per organisation, build the fleet view, run ``decisions.capping.cap_racks`` with the
state stored by the last period, and apply its actions — a placement's CPU quota goes
into its board's desired ``jobs`` section (the twin recomposed), a board's frequency cap
goes out as a ``set_throttle`` command — each written to the decision log. The caps the
brain set are kept in the loop's state and read back into the next view.

Sites where the loop is paused are left out of the view: nothing there is read, capped,
released or logged.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.decisions.capping import (
    CappingState,
    RackState,
    SetFreqCap,
    SetQuota,
    cap_racks,
)
from wrale.fleet.brain.models import Device, Rack
from wrale.fleet.brain.models.jobs import JobPlacement
from wrale.fleet.brain.services import twin
from wrale.fleet.brain.services.commands import create_command
from wrale.fleet.brain.services.decision_log import record_decision
from wrale.fleet.brain.services.decision_loops import load_state, pauses, save_state
from wrale.fleet.brain.services.fleet_view_builder import build_fleet_view
from wrale.fleet.brain.services.job_state import ACTIVE
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.shared.errors import WraleError

log = logging.getLogger("wrale.central.capping")

LOOP = "capping"
CAPPING_INTERVAL_S = 10.0
COMMAND_TIMEOUT_S = 60.0
NOT_APPLIED_EVERY_S = 300.0  # a cap a board keeps refusing is logged once per this


def brain(tenant_id: str) -> Principal:
    """Who the loops' commands are from."""
    return Principal(tenant_id, Role.OPERATOR, "brain", "brain", "brain")


def _unsent_in(raw: dict[str, Any]) -> dict[str, float]:
    """When a frequency cap that could not be sent was last logged, per board."""
    got = raw.get("unsent") or {}
    if not isinstance(got, dict):
        return {}
    return {str(k): float(v) for k, v in got.items() if isinstance(v, int | float)}


def _state_in(raw: dict[str, Any]) -> tuple[CappingState, dict[str, float]]:
    racks = {
        str(k): RackState(int(v[0]), int(v[1]))
        for k, v in (raw.get("racks") or {}).items()
        if isinstance(v, list) and len(v) == 2
    }
    caps = {
        str(k): float(v) for k, v in (raw.get("caps") or {}).items() if isinstance(v, int | float)
    }
    return CappingState(racks), caps


def _state_out(
    state: CappingState, caps: dict[str, float], unsent: dict[str, float]
) -> dict[str, Any]:
    return {
        "racks": {k: [v.over_periods, v.room_periods] for k, v in sorted(state.racks.items())},
        "caps": dict(sorted(caps.items())),
        "unsent": dict(sorted(unsent.items())),
    }


async def cap_tenant(session: Any, tenant_id: str, now: float, bus: EventBus | None = None) -> int:
    """One capping period for one organisation; returns how many actions were applied."""
    paused = await pauses(session, tenant_id, LOOP)
    if paused.everywhere:
        return 0
    raw = await load_state(session, tenant_id, LOOP)
    state, caps = _state_in(raw)
    unsent = {k: t for k, t in _unsent_in(raw).items() if now - t < 12 * NOT_APPLIED_EVERY_S}
    view = await build_fleet_view(
        session, tenant_id, now, freq_caps=caps, skip_sites=paused.sites, with_trends=False
    )
    actions, state = cap_racks(view, state)
    touched: set[str] = set()
    applied = 0
    for a in actions:
        subjects = {"device": a.device_id, "rack": a.rack_id}
        if isinstance(a, SetQuota):
            p = await session.get(JobPlacement, a.placement_id, with_for_update=True)
            if p is None or p.state not in ACTIVE or p.device_id != a.device_id:
                continue  # moved or ended since the view was read
            p.cpu_quota_pct, p.updated_at = a.cpu_quota_pct, now
            touched.add(a.device_id)
            action = "quota" if a.cpu_quota_pct is not None else "quota_lift"
            subjects |= {"job": a.job_id, "placement": a.placement_id}
            what = "lifted" if a.cpu_quota_pct is None else f"{a.cpu_quota_pct:g} %"
            summary = f"CPU quota of placement {a.placement_id} {what}"
        else:
            applied_cap = await _freq_cap(session, tenant_id, a)
            if applied_cap is not None:
                if now - unsent.get(a.device_id, -math.inf) < NOT_APPLIED_EVERY_S:
                    continue  # tried again each period, said once in a while
                unsent[a.device_id] = now
                record_decision(
                    session,
                    tenant_id,
                    loop=LOOP,
                    action="not_applied",
                    subjects=subjects,
                    summary=f"frequency cap not sent: {applied_cap}",
                    reasons=[a.reason],
                    inputs=a.inputs,
                    at=now,
                    bus=bus,
                )
                continue
            unsent.pop(a.device_id, None)
            if a.max_freq_pct is None:
                caps.pop(a.device_id, None)
            else:
                caps[a.device_id] = a.max_freq_pct
            action = "freq_cap" if a.max_freq_pct is not None else "freq_cap_lift"
            what = "lifted" if a.max_freq_pct is None else f"{a.max_freq_pct:g} %"
            summary = f"clock cap of {a.device_id} {what}"
        record_decision(
            session,
            tenant_id,
            loop=LOOP,
            action=action,
            subjects=subjects,
            summary=summary,
            reasons=[a.reason],
            inputs=a.inputs,
            at=now,
            bus=bus,
        )
        applied += 1
    if touched:
        devices = await session.scalars(
            select(Device).where(Device.id.in_(sorted(touched))).order_by(Device.id)
        )
        for device in devices:
            await twin.recompose(session, device, bus)
    await save_state(session, tenant_id, LOOP, _state_out(state, caps, unsent), now)
    return applied


async def _freq_cap(session: AsyncSession, tenant_id: str, a: SetFreqCap) -> str | None:
    """Send the cap as a ``set_throttle`` command; why it could not be (None: sent)."""
    try:
        await create_command(
            session,
            brain(tenant_id),
            a.device_id,
            "set_throttle",
            {"max_freq_pct": a.max_freq_pct},
            timeout_s=COMMAND_TIMEOUT_S,
        )
    except WraleError as exc:
        return str(exc)
    return None


async def cap_all(db: Database, now: float, bus: EventBus | None = None) -> int:
    """A capping period for every organisation with a rack budget or placements, each in
    its own transaction."""
    async with db.session() as s:
        budgeted = await s.scalars(
            select(Rack.tenant_id).where(Rack.power_budget_w.is_not(None)).distinct()
        )
        placed = await s.scalars(
            select(JobPlacement.tenant_id).where(JobPlacement.state.in_(ACTIVE)).distinct()
        )
        tenants = sorted(set(budgeted) | set(placed))
    applied = 0
    for tenant_id in tenants:
        async with db.session() as s:
            applied += await cap_tenant(s, tenant_id, now, bus)
    if applied:
        log.info("capping: %d action(s) applied", applied)
    return applied
