"""Recomposing many twins in the background: a policy change on the fleet or a group (or a
bulk tag / group change) records *which twins need recomposing* in its own transaction and
returns at once; a lease-guarded background duty recomposes them in batches of
``BATCH`` boards per transaction (``twin_batch``), with progress anyone can read.

The queue is durable and shared by every replica: one JSON row per organisation in
``decision_loop_states`` (loop ``twin_recompose``), row-locked when changed. Each entry
(a *recompose*) has a scope (fleet, group or a list of devices), a cursor (the last
device id done: boards are taken in id order), ``total`` / ``done`` / ``changed`` and a
state: ``queued`` → ``running`` → ``done``, or ``superseded`` when a newer one covers
its boards (a fleet change supersedes everything pending), or ``failed`` after
``MAX_FAILURES`` failed batches (the rest of the queue goes on). A batch advances the cursor
only if nobody else did meanwhile, so a duty overlapping another replica's wastes work
but never miscounts; recomposing is idempotent, so a crash between batches loses nothing.
The duty never holds twin rows while it waits for the queue's row (no deadlock with a
request that changes a group's policy and a device's twin in one transaction).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.base import new_id
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.models.decision_loops import DecisionLoopState
from wrale.fleet.brain.services.groups import devices_in_group
from wrale.fleet.brain.services.twin_batch import recompose_devices
from wrale.shared.errors import NotFoundError

log = logging.getLogger("wrale.central.twin_recompose")

LOOP = "twin_recompose"
BATCH = 200  # boards per transaction
KEEP_FINISHED = 20  # finished recomposes kept per organisation (for their status)
MAX_LISTED_DEVICES = 10_000  # a "devices" scope (a bulk change) names at most this many
RECOMPOSE_INTERVAL_S = 5.0  # a queued recompose waits at most this long for the duty
RECOMPOSE_BUDGET_S = 3.5  # batches one pass starts (under the duty's deadline)
MAX_FAILURES = 3  # failed batches before a recompose is given up (state "failed")
ACTIVE = ("queued", "running")


def view(job: dict[str, Any]) -> dict[str, Any]:
    """What the API shows of a recompose."""
    keys = ("id", "scope_type", "scope_id", "reason", "total", "done", "changed", "state")
    out = {k: job.get(k) for k in keys}
    out["error"] = job.get("error")
    out.update(
        superseded_by=job.get("superseded_by"),
        created_at=job.get("created_at"),
        finished_at=job.get("finished_at"),
    )
    return out


def inline_view(device_id: str, changed: int) -> dict[str, Any]:
    """A change small enough to be recomposed in its own request (one device's twin)."""
    at = wall_now()
    return {
        "id": None,
        "scope_type": "device",
        "scope_id": device_id,
        "reason": None,
        "total": 1,
        "done": 1,
        "changed": changed,
        "state": "done",
        "error": None,
        "superseded_by": None,
        "created_at": at,
        "finished_at": at,
    }


def _covers(new: dict[str, Any], old: dict[str, Any]) -> bool:
    """Does recomposing ``new``'s scope recompose every board of ``old``'s?"""
    if new["scope_type"] == "fleet":
        return True
    if new["scope_type"] == "devices" or old.get("scope_type") != new["scope_type"]:
        return new["scope_type"] == old.get("scope_type") == "devices" and set(
            old.get("device_ids") or ()
        ) <= set(new.get("device_ids") or ())
    return bool(old.get("scope_id") == new.get("scope_id"))


def _trim(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The active recomposes and the last ``KEEP_FINISHED`` finished ones, these without
    their device lists (the row is rewritten at every batch: it stays small)."""
    finished = [j for j in jobs if j.get("state") not in ACTIVE]
    keep = {j.get("id") for j in finished[-KEEP_FINISHED:]}
    out = []
    for j in jobs:
        if j.get("state") in ACTIVE:
            out.append(j)
        elif j.get("id") in keep:
            out.append({k: v for k, v in j.items() if k != "device_ids"})
    return out


async def _locked_row(session: AsyncSession, tenant_id: str) -> DecisionLoopState:
    """The organisation's queue row (made if missing), row-locked to the end of the
    transaction (PostgreSQL; SQLite has one writer)."""
    stmt = (
        select(DecisionLoopState)
        .where(DecisionLoopState.tenant_id == tenant_id, DecisionLoopState.loop == LOOP)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    row = await session.scalar(stmt)
    if row is not None:
        return row
    is_pg = session.get_bind().dialect.name == "postgresql"
    at = wall_now()
    insert = (pg_insert if is_pg else sqlite_insert)(DecisionLoopState).values(
        id=new_id(),
        tenant_id=tenant_id,
        loop=LOOP,
        state={"jobs": []},
        created_at=at,
        updated_at=at,
    )
    await session.execute(insert.on_conflict_do_nothing(index_elements=["tenant_id", "loop"]))
    row = await session.scalar(stmt)
    assert row is not None  # inserted above, or by a concurrent writer
    return row


async def _scope_ids(
    session: AsyncSession, tenant_id: str, job: dict[str, Any]
) -> list[str] | None:
    """The boards of a group or devices scope, in id order (None: the whole fleet)."""
    if job["scope_type"] == "fleet":
        return None
    if job["scope_type"] == "devices":
        return sorted(job.get("device_ids") or [])
    try:
        found = await devices_in_group(session, tenant_id, job["scope_id"], recursive=True)
    except NotFoundError:  # the group went away: its boards recompose when next read
        return []
    return [d.id for d in found]


async def enqueue(
    session: AsyncSession,
    tenant_id: str,
    scope_type: str,
    scope_id: str | None = None,
    *,
    device_ids: list[str] | None = None,
    reason: str = "",
    by: str | None = None,
) -> dict[str, Any]:
    """Record, in the caller's transaction, that the twins of a scope (``fleet``,
    ``group`` with ``scope_id``, or ``devices`` with ``device_ids``) need recomposing;
    pending recomposes it covers are superseded. Returns the recompose's view."""
    if scope_type not in ("fleet", "group", "devices"):
        raise ValueError(f"scope_type {scope_type!r}")
    job: dict[str, Any] = {
        "id": new_id(),
        "scope_type": scope_type,
        "scope_id": scope_id if scope_type == "group" else None,
        "reason": reason[:200],
        "by": by,
        "after": "",
        "done": 0,
        "changed": 0,
        "state": "queued",
        "created_at": wall_now(),
    }
    if scope_type == "devices":
        ids = sorted(set(device_ids or ()))
        if len(ids) > MAX_LISTED_DEVICES:
            raise ValueError(f"at most {MAX_LISTED_DEVICES} devices per recompose")
        job["device_ids"] = ids
        job["total"] = len(ids)
    elif scope_type == "group":
        job["total"] = len(await _scope_ids(session, tenant_id, job) or [])
    else:
        count = select(func.count()).select_from(Device).where(Device.tenant_id == tenant_id)
        job["total"] = int(await session.scalar(count) or 0)
    row = await _locked_row(session, tenant_id)
    jobs = copy.deepcopy(list((row.state or {}).get("jobs") or []))
    for old in jobs:
        if old.get("state") in ACTIVE and _covers(job, old):
            old.update(state="superseded", superseded_by=job["id"], finished_at=job["created_at"])
    if job["total"] == 0:  # nothing to do: finished at once
        job.update(state="done", finished_at=job["created_at"])
    jobs.append(job)
    row.state = {"jobs": _trim(jobs)}
    row.updated_at = job["created_at"]
    return view(job)


async def status(session: AsyncSession, tenant_id: str, recompose_id: str) -> dict[str, Any]:
    """The view of one of the organisation's recent recomposes (404 when unknown)."""
    state = await session.scalar(
        select(DecisionLoopState.state).where(
            DecisionLoopState.tenant_id == tenant_id, DecisionLoopState.loop == LOOP
        )
    )
    for job in (state or {}).get("jobs") or []:
        if job.get("id") == recompose_id:
            return view(job)
    raise NotFoundError(f"no recompose {recompose_id} (finished ones are kept a while only)")


# ----------------------------------------------------------------------------- the duty


async def _next(db: Database) -> tuple[str, dict[str, Any]] | None:
    """The oldest active recompose of any organisation."""
    async with db.session() as s:
        rows = await s.execute(
            select(DecisionLoopState.tenant_id, DecisionLoopState.state).where(
                DecisionLoopState.loop == LOOP
            )
        )
        found = [
            (tenant_id, job)
            for tenant_id, state in rows
            for job in (state or {}).get("jobs") or []
            if job.get("state") in ACTIVE and isinstance(job.get("id"), str)
        ]
    if not found:
        return None
    return min(found, key=lambda x: (x[1].get("created_at") or 0, x[1]["id"]))


async def _batch(
    db: Database,
    bus: EventBus | None,
    tenant_id: str,
    job: dict[str, Any],
    scope: dict[str, list[str] | None],
    size: int,
) -> int:
    """Recompose the next ``size`` boards of ``job``, then record the progress; returns
    how many boards it took (0: the recompose was superseded or another duty recorded
    the same batch first). A crash in between only redoes the batch."""
    async with db.session() as s:
        if job["id"] not in scope:
            scope[job["id"]] = await _scope_ids(s, tenant_id, job)
        ids = scope[job["id"]]
        after = job.get("after") or ""
        if ids is None:
            picked = list(
                await s.scalars(
                    select(Device.id)
                    .where(Device.tenant_id == tenant_id, Device.id > after)
                    .order_by(Device.id)
                    .limit(size)
                )
            )
        else:
            picked = [i for i in ids if i > after][:size]
        changed = await recompose_devices(s, tenant_id, picked, bus)
    # the progress in a transaction of its own: the duty never waits for the queue's row
    # while it holds twin rows (a request may hold that row and then want a twin's)
    async with db.session() as s:
        row = await _locked_row(s, tenant_id)
        jobs = copy.deepcopy(list((row.state or {}).get("jobs") or []))
        mine = next((j for j in jobs if j.get("id") == job["id"]), None)
        if mine is None or mine["state"] not in ACTIVE or (mine.get("after") or "") != after:
            return 0  # superseded or advanced by another replica: its batch stands, uncounted
        at = wall_now()
        mine["state"] = "running"
        mine.setdefault("started_at", at)
        mine["after"] = picked[-1] if picked else after
        mine["done"] = int(mine.get("done") or 0) + len(picked)
        mine["changed"] = int(mine.get("changed") or 0) + changed
        if len(picked) < size:
            mine.update(state="done", finished_at=at, total=mine["done"])
            scope.pop(job["id"], None)
        row.state = {"jobs": _trim(jobs)}
        row.updated_at = at
        job.update(mine)
        return len(picked)


async def _failed(db: Database, tenant_id: str, recompose_id: str, why: str) -> None:
    """Count a failed batch; the ``MAX_FAILURES``-th marks the recompose ``failed`` (its
    boards recompose when next read; a newer change queues them again)."""
    async with db.session() as s:
        row = await _locked_row(s, tenant_id)
        jobs = copy.deepcopy(list((row.state or {}).get("jobs") or []))
        for j in jobs:
            if j.get("id") == recompose_id and j.get("state") in ACTIVE:
                j["failures"] = int(j.get("failures") or 0) + 1
                j["error"] = why[:300]
                if j["failures"] >= MAX_FAILURES:
                    j.update(state="failed", finished_at=wall_now())
        row.state = {"jobs": _trim(jobs)}


async def recompose_pending(
    db: Database,
    bus: EventBus | None,
    *,
    budget_s: float | None = RECOMPOSE_BUDGET_S,
    batch: int = BATCH,
    max_batches: int | None = None,
) -> int:
    """The background duty: recompose queued twins, oldest recompose first, batch after
    batch until none is left, ``budget_s`` (None: no limit) is spent or ``max_batches``
    ran; returns the boards recomposed."""
    started = time.monotonic()
    scope: dict[str, list[str] | None] = {}
    boards = batches = 0
    while budget_s is None or time.monotonic() - started < budget_s:
        if max_batches is not None and batches >= max_batches:
            break
        batches += 1
        nxt = await _next(db)
        if nxt is None:
            break
        tenant_id, job = nxt
        try:
            took = await _batch(db, bus, tenant_id, job, scope, batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one recompose that keeps failing must not stall the rest
            log.exception("recompose %s: a batch failed", job["id"])
            await _failed(db, tenant_id, job["id"], f"{type(exc).__name__}: {exc}")
            scope.pop(job["id"], None)
            continue
        boards += took
        if job.get("state") == "done":
            log.info(
                "recompose %s (%s) done: %d boards, %d changed",
                job["id"],
                job.get("reason") or job["scope_type"],
                job["done"],
                job["changed"],
            )
    return boards
