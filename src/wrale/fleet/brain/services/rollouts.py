"""Staged rollouts (``docs/rollouts.md``): one change (a policy, a config template version
or a command, ``rollout_changes``) delivered to the boards a selector names in waves
(``decisions.waves``), each wave gated on what its boards did (``decisions.gates``).

A rollout is a state machine in the database, advanced only by the lease-guarded
``rollouts`` loop (``rollout_loop``), never by a request: creating one plans its waves and
stores them; operators pause, resume, approve the next wave or abort it (audited and
logged), and the loop does the rest — start a wave, observe it, judge its gate, go on,
pause, or abort and roll back the boards already changed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.bus import EventBus, publish_after_commit
from wrale.fleet.brain.models import Device, Rack
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.models.rollouts import Rollout, RolloutDevice, RolloutWave
from wrale.fleet.brain.services import audit, commands
from wrale.fleet.brain.services.decision_log import record_decision
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.fleet.brain.services.rollout_changes import check_change
from wrale.fleet.brain.services.rollout_checks import (
    MAX_BOARDS,
    bad,
    check_gates,
    check_name,
    check_waves,
    plan,
)
from wrale.fleet.brain.services.rollout_checks import limits_of as limits_of
from wrale.shared.errors import ConflictError, NotFoundError

LOOP = "rollouts"
ON_FAILURE = ("abort", "pause")
FINISHED = ("succeeded", "aborted", "rolled_back")
_ID = re.compile(r"^[0-9a-f]{32}$")


# ----------------------------------------------------------------------------- create


@dataclass(frozen=True, slots=True)
class Checked:
    """A rollout request that passed every check, its boards and their planned waves."""

    name: str
    change: dict[str, Any]
    waves_spec: dict[str, Any]
    gates: dict[str, Any]
    on_failure: str
    approval: bool
    selector: dict[str, Any]
    devices: list[Device]
    planned: list[list[str]]


async def check_rollout(session: AsyncSession, p: Principal, body: Any) -> Checked:
    """Every check of ``POST /rollouts`` and the waves it would plan now, writing nothing
    (creating and previewing share it). Hostile input is a 422 naming the field."""
    if not isinstance(body, dict):
        raise bad("body", "an object")
    known = {"name", "change", "selector", "waves", "gates", "on_gate_failure", "require_approval"}
    unknown = set(body) - known
    if unknown:
        raise bad("body", f"unknown key(s) {', '.join(sorted(map(str, unknown)))[:80]}")
    name = check_name(body.get("name"))
    change = await check_change(session, p, body.get("change"))
    waves_spec = check_waves(body.get("waves"))
    gates = check_gates(body.get("gates"))
    on_failure = body.get("on_gate_failure", "abort")
    if on_failure not in ON_FAILURE:
        raise bad("on_gate_failure", "abort or pause")
    approval = body.get("require_approval", False)
    if not isinstance(approval, bool):
        raise bad("require_approval", "true or false")
    selector = body.get("selector")
    if not isinstance(selector, dict):
        raise bad("selector", "an object of clauses (tags_all, rack_id, site_id…)")
    devices = await commands.select_devices(session, p.tenant_id, selector)
    devices = [d for d in devices if d.status != "decommissioned"]
    if not devices:
        raise bad("selector", "names no board")
    if len(devices) > MAX_BOARDS:
        raise bad("selector", f"names {len(devices)} boards; at most {MAX_BOARDS} per rollout")
    planned = plan({d.id: d.rack_id for d in devices}, waves_spec, await _feeds(session, devices))
    return Checked(
        name, change, waves_spec, gates, on_failure, approval, dict(selector), devices, planned
    )


async def _feeds(session: AsyncSession, devices: Sequence[Device]) -> dict[str, str]:
    """Each board's power feed (its rack's), for boards whose rack names one."""
    rack_ids = {d.rack_id for d in devices if d.rack_id}
    if not rack_ids:
        return {}
    rows = await session.execute(
        select(Rack.id, Rack.power_feed).where(
            Rack.id.in_(sorted(rack_ids)), Rack.power_feed.is_not(None)
        )
    )
    feed_of = {str(i): str(f) for i, f in rows.all()}
    return {d.id: feed_of[d.rack_id] for d in devices if d.rack_id in feed_of}


async def create_rollout(
    session: AsyncSession,
    p: Principal,
    body: Any,
    *,
    now: float | None = None,
    bus: EventBus | None = None,
) -> Rollout:
    """Check a rollout, plan its waves over the boards its selector names and store it
    ``running`` (the loop starts its first wave). Hostile input is a 422 naming the field."""
    p.require(Role.OPERATOR, "creating rollouts")
    c = await check_rollout(session, p, body)
    name, change, waves_spec, gates = c.name, c.change, c.waves_spec, c.gates
    on_failure, approval, selector, planned = c.on_failure, c.approval, c.selector, c.planned
    at = wall_now() if now is None else now
    r = Rollout(
        tenant_id=p.tenant_id,
        name=name,
        change=change,
        selector=dict(selector),
        waves_spec=waves_spec,
        gates=gates,
        on_gate_failure=on_failure,
        require_approval=approval,
        state="running",
        actor_name=p.name[:100],
        actor_role=p.role.value,
        updated_at=at,
    )
    session.add(r)
    await session.flush()
    for idx, wave in enumerate(planned):
        session.add(RolloutWave(tenant_id=p.tenant_id, rollout_id=r.id, idx=idx))
        for device_id in wave:
            session.add(
                RolloutDevice(
                    tenant_id=p.tenant_id,
                    rollout_id=r.id,
                    device_id=device_id,
                    wave=idx,
                    updated_at=at,
                )
            )
    await session.flush()
    audit.record(
        session,
        p,
        "rollout.create",
        resource_type="rollout",
        resource_id=r.id,
        after={"name": name, "change": change, "waves": planned, "gates": gates},
    )
    publish_after_commit(session, bus, p.tenant_id, "rollout.updated", {"id": r.id})
    return r


# ----------------------------------------------------------------------------- reading


async def get_rollout(
    session: AsyncSession, tenant_id: str, rollout_id: str, *, lock: bool = False
) -> Rollout:
    row = (
        await session.get(Rollout, rollout_id, with_for_update=lock)
        if isinstance(rollout_id, str) and _ID.match(rollout_id)
        else None
    )
    if row is None or row.tenant_id != tenant_id:
        raise NotFoundError(f"no rollout {str(rollout_id)[:40]}", rollout_id=str(rollout_id)[:40])
    return row


async def list_rollouts(
    session: AsyncSession,
    tenant_id: str,
    *,
    state: str | None = None,
    before_id: str | None = None,
    limit: int = 50,
) -> list[Rollout]:
    """Newest first; ``before_id`` continues a page."""
    stmt = select(Rollout).where(Rollout.tenant_id == tenant_id)
    if state:
        stmt = stmt.where(Rollout.state == state)
    if before_id:
        stmt = stmt.where(Rollout.id < before_id)
    stmt = stmt.order_by(Rollout.id.desc()).limit(max(1, min(limit, 1000)))
    return list((await session.scalars(stmt)).all())


async def waves_of(session: AsyncSession, rollout_id: str) -> list[RolloutWave]:
    rows = await session.scalars(
        select(RolloutWave).where(RolloutWave.rollout_id == rollout_id).order_by(RolloutWave.idx)
    )
    return list(rows)


async def devices_of(session: AsyncSession, rollout_id: str) -> list[RolloutDevice]:
    rows = await session.scalars(
        select(RolloutDevice)
        .where(RolloutDevice.rollout_id == rollout_id)
        .order_by(RolloutDevice.wave, RolloutDevice.device_id)
    )
    return list(rows)


def rollout_view(
    r: Rollout,
    waves: Sequence[RolloutWave] | None = None,
    devices: Sequence[RolloutDevice] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": r.id,
        "name": r.name,
        "state": r.state,
        "change": r.change,
        "selector": r.selector,
        "waves_spec": r.waves_spec,
        "gates": r.gates,
        "on_gate_failure": r.on_gate_failure,
        "require_approval": r.require_approval,
        "current_wave": r.current_wave,
        "reason": r.reason,
        "created_by": r.actor_name,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "finished_at": r.finished_at,
    }
    if waves is not None and devices is not None:
        by_wave: dict[int, list[RolloutDevice]] = {}
        for d in devices:
            by_wave.setdefault(d.wave, []).append(d)
        out["waves"] = [
            {
                "index": w.idx,
                "state": w.state,
                "attempt": w.attempt,
                "devices": [d.device_id for d in by_wave.get(w.idx, [])],
                "device_states": {
                    d.device_id: {"state": d.state, "detail": d.detail}
                    for d in by_wave.get(w.idx, [])
                },
                "started_at": w.started_at,
                "finished_at": w.finished_at,
                "paused_s": w.paused_s,
                "gate": w.gate,
            }
            for w in waves
        ]
    return out


# ----------------------------------------------------------------------------- by hand


async def _act(
    session: AsyncSession,
    p: Principal,
    rollout_id: str,
    action: str,
    allowed: Sequence[str],
    now: float | None,
    bus: EventBus | None,
) -> tuple[Rollout, str, float]:
    p.require(Role.OPERATOR, f"{action} rollouts")
    r = await get_rollout(session, p.tenant_id, rollout_id, lock=True)
    if r.state not in allowed or r.rollback_due:
        raise ConflictError(
            f"rollout {r.id} is {r.state}; {action} needs {' or '.join(allowed)}", state=r.state
        )
    return r, r.state, wall_now() if now is None else now


def _acted(
    session: AsyncSession,
    p: Principal,
    r: Rollout,
    action: str,
    before: str,
    at: float,
    bus: EventBus | None,
) -> None:
    r.updated_at = at
    audit.record(
        session,
        p,
        f"rollout.{action}",
        resource_type="rollout",
        resource_id=r.id,
        before={"state": before},
        after={"state": r.state},
    )
    record_decision(
        session,
        p.tenant_id,
        loop=LOOP,
        action=action,
        subjects={"rollout": r.id},
        summary=f"{action} by {p.name}: rollout {r.name} {before} → {r.state}",
        reasons=[f"{action} by hand ({p.name})"],
        inputs={"current_wave": r.current_wave},
        at=at,
        bus=bus,
    )
    publish_after_commit(session, bus, r.tenant_id, "rollout.updated", {"id": r.id})


async def pause(
    session: AsyncSession,
    p: Principal,
    rollout_id: str,
    *,
    now: float | None = None,
    bus: EventBus | None = None,
) -> Rollout:
    """Stop the clock: no wave starts, and the wave observed waits (paused time does not
    count in its observation)."""
    r, before, at = await _act(
        session, p, rollout_id, "pause", ("running", "waiting_approval"), now, bus
    )
    r.state, r.paused_at = "paused", at
    _acted(session, p, r, "pause", before, at, bus)
    return r


async def resume(
    session: AsyncSession,
    p: Principal,
    rollout_id: str,
    *,
    now: float | None = None,
    bus: EventBus | None = None,
) -> Rollout:
    """Go on: the paused time is added to the observed wave's pauses; a wave that failed
    its gate is retried with only its failed boards; a next wave not approved yet still
    waits for its approval."""
    r, before, at = await _act(session, p, rollout_id, "resume", ("paused",), now, bus)
    state = "running"
    for w in await waves_of(session, r.id):
        if w.idx != r.current_wave:
            continue
        if r.paused_at is not None and w.state == "observing":
            w.paused_s = float(w.paused_s or 0.0) + max(0.0, at - r.paused_at)
        if r.require_approval and w.idx > 0 and w.state == "pending" and not w.baselines:
            state = "waiting_approval"  # paused while it waited for approval: it still does
    r.state, r.paused_at, r.reason = state, None, None
    _acted(session, p, r, "resume", before, at, bus)
    return r


async def approve(
    session: AsyncSession,
    p: Principal,
    rollout_id: str,
    *,
    now: float | None = None,
    bus: EventBus | None = None,
) -> Rollout:
    """Let the next wave start (a rollout that requires approval waits between waves)."""
    r, before, at = await _act(session, p, rollout_id, "approve", ("waiting_approval",), now, bus)
    r.state = "running"
    _acted(session, p, r, "approve", before, at, bus)
    return r


async def abort(
    session: AsyncSession,
    p: Principal,
    rollout_id: str,
    *,
    now: float | None = None,
    bus: EventBus | None = None,
) -> Rollout:
    """Stop for good: the loop rolls back the boards already changed; the others never
    get the change."""
    r, before, at = await _act(
        session, p, rollout_id, "abort", ("running", "waiting_approval", "paused"), now, bus
    )
    r.state, r.rollback_due, r.paused_at = "aborted", True, None
    r.reason = f"aborted by {p.name}"
    _acted(session, p, r, "abort", before, at, bus)
    return r
