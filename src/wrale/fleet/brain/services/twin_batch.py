"""Recompose the twins of a batch of devices in one transaction with a constant number of
queries (devices, their effective policies, their twin rows locked in id order, which of
them run jobs): what the background recomposition (``twin_recompose``) does after a
fleet-wide or group change, instead of ``twin.recompose``'s five queries per board.

The result is the same document ``twin.recompose`` composes; each changed twin is bumped
once and announced on the bus after the commit (``twin.set_desired``), so connected
boards receive it as before.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.base import new_id
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.models.jobs import Job, JobPlacement
from wrale.fleet.brain.models.twin import DeviceTwin
from wrale.fleet.brain.services import job_twin
from wrale.fleet.brain.services.group_chains import CHUNK
from wrale.fleet.brain.services.job_state import ACTIVE
from wrale.fleet.brain.services.policy_effective import effective_documents
from wrale.fleet.brain.services.twin import set_desired
from wrale.fleet.brain.services.twin_doc import JOBS, compose


async def _twins(session: AsyncSession, devices: Sequence[Device]) -> dict[str, DeviceTwin]:
    """The devices' twin rows, created empty where missing, row-locked (PostgreSQL) in
    device id order so two batches never wait on each other crosswise."""
    ids = sorted(d.id for d in devices)
    stmt = (
        select(DeviceTwin)
        .where(DeviceTwin.device_id.in_(ids))
        .order_by(DeviceTwin.device_id)
        .execution_options(populate_existing=True)
    )
    is_pg = session.get_bind().dialect.name == "postgresql"
    found = {t.device_id: t for t in await session.scalars(stmt.with_for_update())}
    missing = [d for d in devices if d.id not in found]
    if missing:
        at = wall_now()
        rows = [
            {
                "id": new_id(),
                "tenant_id": d.tenant_id,
                "device_id": d.id,
                "desired": {},
                "desired_version": 0,
                "overrides": {},
                "reported": {},
                "reported_version": 0,
                "applied_desired_version": 0,
                "rejected": {},
                "created_at": at,
                "updated_at": at,
            }
            for d in missing
        ]
        insert = (pg_insert if is_pg else sqlite_insert)(DeviceTwin)
        # parameters apart (executemany): one statement compiled once, not per row count
        await session.execute(insert.on_conflict_do_nothing(index_elements=["device_id"]), rows)
        found = {t.device_id: t for t in await session.scalars(stmt.with_for_update())}
    return found


async def _busy(session: AsyncSession, ids: Sequence[str]) -> set[str]:
    """Which of the devices have active placements (their ``jobs`` section is read)."""
    rows = await session.scalars(
        select(JobPlacement.device_id)
        .join(Job, Job.id == JobPlacement.job_id)
        .where(
            JobPlacement.device_id.in_(ids),
            JobPlacement.state.in_(ACTIVE),
            Job.stopped_at.is_(None),
        )
        .distinct()
    )
    return {d for d in rows if d}


async def recompose_devices(
    session: AsyncSession, tenant_id: str, device_ids: Sequence[str], bus: EventBus | None
) -> int:
    """Compose the desired documents of the tenant's ``device_ids`` (at most ``CHUNK``;
    ids of other tenants or gone devices are skipped); returns how many changed."""
    if not device_ids:
        return 0
    if len(device_ids) > CHUNK:
        raise ValueError(f"recompose at most {CHUNK} devices per batch")
    devices = list(
        await session.scalars(
            select(Device)
            .where(Device.tenant_id == tenant_id, Device.id.in_(list(device_ids)))
            .order_by(Device.id)
        )
    )
    if not devices:
        return 0
    effective = await effective_documents(session, tenant_id, devices)
    twins = await _twins(session, devices)
    busy = await _busy(session, [d.id for d in devices])
    changed = 0
    for d in devices:
        t = twins[d.id]
        jobs = await job_twin.desired_section(session, d.id) if d.id in busy else {}
        keep = bool(jobs) or JOBS in (t.desired or {})
        doc = compose(effective[d.id], t.overrides, jobs if keep else None)
        changed += set_desired(session, t, doc, bus)
    return changed
