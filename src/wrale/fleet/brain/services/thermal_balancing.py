"""The thermal balancing loop's shell (lease-guarded background job ``thermal_balancing``):
per organisation, build the fleet view, run ``decisions.balancing.balance`` with the
state stored by the last period (recent moves, for the rate limit and the cool-downs), and
apply its actions. A move takes the placement off its board (``moving``) and starts it on
the new one (``starting``), both stored transitions; an eviction puts it back to
``pending`` for the placement loop. Each is a decision; both boards' twins are recomposed.

Sites where the loop is paused are left out of the view: no board there sheds or takes
work, and nothing about them is logged.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.decisions.balancing import BalancingState, Move, balance
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.jobs import JobPlacement
from wrale.fleet.brain.services import twin
from wrale.fleet.brain.services.decision_log import record_decision
from wrale.fleet.brain.services.decision_loops import load_state, pauses, save_state
from wrale.fleet.brain.services.fleet_view_builder import build_fleet_view
from wrale.fleet.brain.services.job_state import ACTIVE, settle_jobs, transition

log = logging.getLogger("wrale.central.balancing")

LOOP = "balancing"
BALANCING_INTERVAL_S = 10.0


def _state_in(raw: dict[str, Any]) -> BalancingState:
    def times(value: Any) -> dict[str, float]:
        if not isinstance(value, dict):
            return {}
        return {str(k): float(v) for k, v in value.items() if isinstance(v, int | float)}

    moves = raw.get("moves_at")
    moves_at = (
        tuple(float(t) for t in moves if isinstance(t, int | float))
        if isinstance(moves, list)
        else ()
    )
    return BalancingState(moves_at, times(raw.get("moved_at")), times(raw.get("shed_at")))


def _state_out(state: BalancingState) -> dict[str, Any]:
    return {
        "moves_at": list(state.moves_at),
        "moved_at": dict(sorted(state.moved_at.items())),
        "shed_at": dict(sorted(state.shed_at.items())),
    }


async def balance_tenant(
    session: AsyncSession, tenant_id: str, now: float, bus: EventBus | None = None
) -> int:
    """One balancing period for one organisation; returns how many actions were applied."""
    paused = await pauses(session, tenant_id, LOOP)
    if paused.everywhere:
        return 0
    state = _state_in(await load_state(session, tenant_id, LOOP))
    view = await build_fleet_view(session, tenant_id, now, skip_sites=paused.sites)
    actions, state = balance(view, state)
    touched: set[str] = set()
    jobs: set[str] = set()
    applied = 0
    label = {b.device_id: b.label for b in view.boards}
    for a in actions:
        p = await session.get(JobPlacement, a.placement_id, with_for_update=True)
        source = a.from_device if isinstance(a, Move) else a.device_id
        if p is None or p.state not in ACTIVE or p.device_id != source:
            continue  # moved or ended since the view was read
        transition(session, p, "moving", a.reason, now, bus=bus)
        if isinstance(a, Move):
            transition(session, p, "starting", a.reason, now, device_id=a.to_device, bus=bus)
            p.device_id = a.to_device
            p.started_at = p.ended_at = p.exit_code = p.cpu_s = p.output_tail = None
            p.cpu_quota_pct = None  # its old rack's quota: capping sets the new one's
            touched |= {a.from_device, a.to_device}
            action, summary = (
                "move",
                f"placement {p.id} moved from {label.get(a.from_device, a.from_device)} to "
                f"{label.get(a.to_device, a.to_device)}",
            )
            subjects = {
                "job": a.job_id,
                "placement": p.id,
                "device": a.from_device,
                "to": a.to_device,
            }
        else:
            transition(session, p, "pending", a.reason, now, device_id=a.device_id, bus=bus)
            p.device_id = None
            touched.add(a.device_id)
            action = "evict"
            summary = (
                f"placement {p.id} taken off {label.get(a.device_id, a.device_id)}: back to pending"
            )
            subjects = {"job": a.job_id, "placement": p.id, "device": a.device_id}
        jobs.add(a.job_id)
        applied += 1
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
    await settle_jobs(session, jobs, now, bus)
    if touched:
        devices = await session.scalars(
            select(Device).where(Device.id.in_(sorted(touched))).order_by(Device.id)
        )
        for device in devices:
            await twin.recompose(session, device, bus)
    await save_state(session, tenant_id, LOOP, _state_out(state), now)
    return applied


async def balance_all(db: Database, now: float, bus: EventBus | None = None) -> int:
    """A balancing period for every organisation with placements on boards, each in its
    own transaction."""
    async with db.session() as s:
        tenants = sorted(
            set(
                await s.scalars(
                    select(JobPlacement.tenant_id).where(JobPlacement.state.in_(ACTIVE)).distinct()
                )
            )
        )
    applied = 0
    for tenant_id in tenants:
        async with db.session() as s:
            applied += await balance_tenant(s, tenant_id, now, bus)
    if applied:
        log.info("balancing: %d placement(s) moved or evicted", applied)
    return applied
