"""The ``rollouts`` loop (lease-guarded, every ``ROLLOUTS_INTERVAL_S``): advances each
running rollout one step — start its wave (record what each board had and its baseline,
apply the change; a disruptive change waits for each board's maintenance window), wait
``observe_s`` (at least a minute for a rate's waves; paused time not counted; a command
not finished yet is waited for), judge the wave's gate (``rollout_samples``: the fleet
view the decisions read, alerts, fan failures), then go on,
wait for approval, pause, or abort and roll back the boards already changed. Each wave
start, gate, abort and rollback is a decision (loop ``rollouts``). One rollout's failure
does not stop the others.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.bus import EventBus, publish_after_commit
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.decisions import gates as gate_core
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.rollouts import Rollout, RolloutDevice, RolloutWave
from wrale.fleet.brain.services import rollout_changes as changes
from wrale.fleet.brain.services import rollout_samples as samples
from wrale.fleet.brain.services.decision_log import record_decision
from wrale.fleet.brain.services.maintenance.windows import may_disrupt
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.fleet.brain.services.rollout_checks import min_observe_s
from wrale.fleet.brain.services.rollouts import LOOP, devices_of, limits_of, waves_of

log = logging.getLogger("wrale.central.rollouts")

ROLLOUTS_INTERVAL_S = 5.0
MAX_CONTROL = 200  # boards not yet reached whose temperatures measure the weather


def _principal(r: Rollout) -> Principal:
    """The loop acts on the authority of the rollout's creator (their role)."""
    role = Role(r.actor_role) if r.actor_role in Role.__members__.values() else Role.VIEWER
    return Principal(r.tenant_id, role, "rollout", r.id, f"{r.actor_name} (rollout {r.name})"[:100])


def _log(
    session: AsyncSession,
    r: Rollout,
    action: str,
    summary: str,
    reasons: Sequence[str],
    inputs: dict[str, Any],
    at: float,
    bus: EventBus | None,
    wave: int | None = None,
) -> None:
    subjects = {"rollout": r.id} if wave is None else {"rollout": r.id, "wave": str(wave)}
    record_decision(
        session,
        r.tenant_id,
        loop=LOOP,
        action=action,
        subjects=subjects,
        summary=summary[:300],
        reasons=list(reasons),
        inputs=inputs,
        at=at,
        bus=bus,
    )


# ----------------------------------------------------------------------------- steps


async def _start(
    session: AsyncSession,
    r: Rollout,
    wave: RolloutWave,
    rows: Sequence[RolloutDevice],
    now: float,
    bus: EventBus | None,
) -> None:
    targets = [d for d in rows if d.wave == wave.idx and d.state == "pending"]
    base = dict(wave.baselines or {})
    if not base:  # the wave's first start (or a retry): the weather's boards and baselines
        control = [d.device_id for d in rows if d.wave > wave.idx and d.state == "pending"]
        base = {"devices": [], "control": control[:MAX_CONTROL], "before": {}}
    ids = [d.device_id for d in targets]
    control = [i for i in base.get("control", []) if isinstance(i, str)]
    view = await samples.fleet_view(session, r.tenant_id, ids + control, now)
    before = dict(base.get("before") or {})
    for i in control:
        before.setdefault(i, samples.dump(samples.sample(view, i)))
    p = _principal(r)
    applied: list[str] = []
    failed: list[str] = []
    waiting: dict[str, str] = {}
    for rd in targets:
        device = await session.get(Device, rd.device_id)
        if device is None:
            rd.state, rd.detail = "failed", "the board is gone"
            failed.append(rd.device_id)
            continue
        if changes.disruptive(r.change):
            ok, why = await may_disrupt(session, device, now)
            if not ok:  # a disruptive step waits for the board's maintenance window
                rd.detail = f"waiting for its maintenance window: {why or 'closed'}"[:500]
                waiting[rd.device_id] = rd.detail
                continue
        before[rd.device_id] = samples.dump(samples.sample(view, rd.device_id))
        rd.state = "applying"
        done = await changes.apply(session, p, r.change, device, bus)
        rd.updated_at = now
        if done.error is not None:
            rd.state, rd.detail = "failed", done.error
            failed.append(rd.device_id)
        else:
            if rd.handle is None:  # a retry keeps what the board had before the first try
                rd.before = done.before
            rd.state, rd.handle, rd.detail = "applied", done.handle, None
            applied.append(rd.device_id)
    reached = [*base.get("devices", []), *applied, *failed]
    wave.baselines = {**base, "devices": reached, "before": before}
    if not waiting:  # every board of the wave has it: the observation starts
        wave.state, wave.started_at, wave.paused_s, wave.finished_at = "observing", now, 0.0, None
        wave.gate = {}
    if not applied and not failed:
        return
    _log(
        session,
        r,
        "wave_start",
        f"rollout {r.name}: wave {wave.idx + 1} reached {len(applied) + len(failed)} board(s)",
        [f"{len(applied)} changed, {len(failed)} refused, {len(waiting)} waiting for a window"],
        {"devices": applied, "refused": failed, "waiting": waiting, "attempt": wave.attempt},
        now,
        bus,
        wave.idx,
    )


async def _judge(
    session: AsyncSession,
    r: Rollout,
    wave: RolloutWave,
    waves: Sequence[RolloutWave],
    rows: Sequence[RolloutDevice],
    now: float,
    bus: EventBus | None,
) -> None:
    base = wave.baselines or {}
    ids = [i for i in base.get("devices", []) if isinstance(i, str)]
    mine = {d.device_id: d for d in rows if d.device_id in set(ids)}
    for rd in mine.values():
        if rd.state != "applied":
            continue
        how = await changes.outcome(session, r.change, rd.handle)
        if how == "open":
            return  # a command not finished yet (e.g. waiting for its window): wait
        if how is not None:
            rd.state, rd.detail, rd.updated_at = "failed", how, now
    control = [i for i in base.get("control", []) if isinstance(i, str)]
    view = await samples.fleet_view(session, r.tenant_id, ids + control, now)
    raw = base.get("before")
    before_raw: dict[str, Any] = raw if isinstance(raw, dict) else {}
    before = {k: s for k, v in before_raw.items() if (s := samples.load(v)) is not None}
    after = {i: s for i in ids + control if (s := samples.sample(view, i)) is not None}
    failed = [i for i, rd in mine.items() if rd.state == "failed"]
    since = float(wave.started_at or now)
    verdict = gate_core.evaluate(
        ids,
        failed,
        before,
        after,
        control,
        limits_of(r.gates),
        alerts=await samples.alerts_raised(session, ids, since),
        fan_reports=await samples.fan_reports(session, ids, since),
    )
    observed = now - float(wave.started_at or now) - float(wave.paused_s or 0.0)
    wave.gate = {
        **verdict.values,
        "passed": verdict.passed,
        "reasons": list(verdict.reasons),
        "offenders": list(verdict.offenders),
        "observed_s": round(observed, 1),
    }
    wave.finished_at = now
    summary = f"rollout {r.name}: wave {wave.idx + 1} gate " + (
        "passed" if verdict.passed else "failed"
    )
    _log(
        session,
        r,
        "gate",
        summary,
        verdict.reasons or ["within every limit"],
        dict(wave.gate),
        now,
        bus,
        wave.idx,
    )
    if verdict.passed:
        wave.state = "passed"
        r.current_wave = wave.idx + 1
        if r.current_wave >= len(waves):
            r.state, r.finished_at = "succeeded", now
        elif r.require_approval:
            r.state = "waiting_approval"
        return
    for i in verdict.offenders:
        hit = mine.get(i)
        if hit is not None and hit.state == "applied":
            hit.state, hit.detail = "failed", "failed the wave's gate"
    wave.state = "failed"
    r.reason = "; ".join(verdict.reasons)[:500]
    if r.on_gate_failure == "pause":
        r.state, r.paused_at = "paused", now
        return
    r.state, r.rollback_due = "aborted", True
    _log(
        session,
        r,
        "abort",
        f"rollout {r.name} aborted: wave {wave.idx + 1} failed its gate",
        verdict.reasons,
        {"wave": wave.idx},
        now,
        bus,
        wave.idx,
    )
    await _rollback(session, r, waves, rows, now, bus)


async def _retry(wave: RolloutWave, rows: Sequence[RolloutDevice], now: float) -> None:
    """A failed wave after a resume: only its failed boards go again."""
    for rd in rows:
        if rd.wave == wave.idx and rd.state == "failed":
            rd.state, rd.updated_at = "pending", now
    wave.state, wave.attempt, wave.baselines = "pending", wave.attempt + 1, {}


async def _rollback(
    session: AsyncSession,
    r: Rollout,
    waves: Sequence[RolloutWave],
    rows: Sequence[RolloutDevice],
    now: float,
    bus: EventBus | None,
) -> None:
    """Restore every board the change reached; boards not reached never get it."""
    p = _principal(r)
    restored: list[str] = []
    kept: list[str] = []
    why_kept: list[str] = []
    for rd in rows:
        if rd.state == "pending":
            continue
        if rd.handle is None and rd.before is None:
            continue  # the change never reached it (refused)
        device = await session.get(Device, rd.device_id)
        why = (
            "the board is gone"
            if device is None
            else await changes.restore(
                session, p, r.change, device, rd.before or {}, rd.handle, bus
            )
        )
        rd.updated_at = now
        if why is None:
            rd.state, rd.detail = "rolled_back", None
            restored.append(rd.device_id)
        else:
            rd.detail = f"not rolled back: {why}"[:500]
            kept.append(rd.device_id)
            why_kept.append(why)
    reached = {rd.wave for rd in rows if rd.device_id in set(restored)}
    for w in waves:
        if w.state == "pending":
            w.state = "skipped"
        elif w.idx in reached:
            w.state = "rolled_back"
    r.rollback_due = False
    r.state = "rolled_back" if restored else "aborted"
    r.finished_at = now
    _log(
        session,
        r,
        "rollback",
        f"rollout {r.name}: {len(restored)} board(s) rolled back",
        [f"{len(restored)} restored to what they had before"]
        + ([f"{len(kept)} not restored: {why_kept[0]}"] if kept else []),
        {"restored": restored, "kept": kept},
        now,
        bus,
    )


async def advance(
    session: AsyncSession, rollout_id: str, now: float, bus: EventBus | None = None
) -> None:
    """One step of one rollout (the loop's unit of work)."""
    r = await session.get(Rollout, rollout_id, with_for_update=True)
    if r is None:
        return
    waves = await waves_of(session, r.id)
    rows = await devices_of(session, r.id)
    if r.rollback_due:
        await _rollback(session, r, waves, rows, now, bus)
    elif r.state == "running":
        if r.current_wave >= len(waves):
            r.state, r.finished_at = "succeeded", now
        else:
            wave = waves[r.current_wave]
            if wave.state == "failed":
                await _retry(wave, rows, now)
            if wave.state == "pending":
                await _start(session, r, wave, rows, now, bus)
            elif wave.state == "observing":
                elapsed = now - float(wave.started_at or now) - float(wave.paused_s or 0.0)
                observe = float(r.gates.get("observe_s", 0.0) or 0.0)
                if elapsed >= max(observe, min_observe_s(r.waves_spec or {})):
                    await _judge(session, r, wave, waves, rows, now, bus)
    else:
        return
    r.updated_at = now
    publish_after_commit(session, bus, r.tenant_id, "rollout.updated", {"id": r.id})


async def advance_all(db: Database, now: float, bus: EventBus | None = None) -> int:
    """A step of every rollout the loop has work for, each in its own transaction."""
    async with db.session() as s:
        ids = list(
            await s.scalars(
                select(Rollout.id)
                .where(or_(Rollout.state == "running", Rollout.rollback_due.is_(True)))
                .order_by(Rollout.id)
                .limit(1000)
            )
        )
    for rollout_id in ids:
        try:
            async with db.session() as s:
                await advance(s, rollout_id, now, bus)
        except Exception:  # one rollout's bad data must not stop the others
            log.exception("rollouts: step failed for rollout %s", rollout_id)
    return len(ids)
