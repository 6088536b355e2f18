"""Device twins: the desired document composed from the effective policies, the
operator's explicit overrides (changed by RFC 7386 merge patches under a version
precondition and the role and lockdown rules of ``twin_rules``) and the board's job
placements, the device's reported document, and the per-path diff between the two.

The pure document logic lives in ``twin_doc`` (re-exported here); this module stores twins
and publishes ``twin.desired`` / ``twin.reported`` on the bus once the change is committed.
A report also settles config deployments (``template_status``) and job placements
(``job_twin``); a board reporting a tamper lockdown releases its placements. Those modules
sit below this one: the services above (policies, templates, jobs) import it, never the
other way round.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.bus import EventBus, publish_after_commit
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.base import new_id
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.models.twin import DeviceTwin
from wrale.fleet.brain.services import audit, job_state, job_twin, template_status, twin_rules
from wrale.fleet.brain.services.lookup import get_owned
from wrale.fleet.brain.services.policy_effective import effective_policy
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.fleet.brain.services.twin_doc import (
    CONFIG_KEY,
    JOBS,
    MAX_DEPTH,
    POLICY_SECTIONS,
    SECTIONS,
    apply_patch,
    check_json,
    check_section,
    compose,
    deep_merge,
    diff,
    in_sync,
    merge_patch,
    same_json,
    twin_view,
)
from wrale.shared.errors import ConflictError

__all__ = [
    "CONFIG_KEY",
    "MAX_DEPTH",
    "POLICY_SECTIONS",
    "SECTIONS",
    "agent_connected",
    "apply_patch",
    "check_json",
    "check_section",
    "compose",
    "deep_merge",
    "desired_for",
    "diff",
    "get_twin",
    "in_sync",
    "merge_patch",
    "patch_twin",
    "recompose",
    "record_reported",
    "refresh",
    "reported_of",
    "same_json",
    "set_config",
    "set_desired",
    "twin_view",
]

log = logging.getLogger("wrale.central.twin")


# ----------------------------------------------------------------------------- storage


async def _twin_row(session: AsyncSession, device: Device, *, lock: bool) -> DeviceTwin:
    """The device's twin row (created empty, at version 0, if missing); ``lock`` takes
    the row lock (PostgreSQL) so concurrent writers queue instead of losing an update."""
    stmt = select(DeviceTwin).where(DeviceTwin.device_id == device.id)
    stmt = stmt.execution_options(populate_existing=True)
    if lock:
        stmt = stmt.with_for_update()
    row = await session.scalar(stmt)
    if row is not None:
        return row
    at = wall_now()
    is_pg = session.get_bind().dialect.name == "postgresql"
    insert = (pg_insert if is_pg else sqlite_insert)(DeviceTwin).values(
        id=new_id(),
        tenant_id=device.tenant_id,
        device_id=device.id,
        desired={},
        desired_version=0,
        overrides={},
        reported={},
        reported_version=0,
        applied_desired_version=0,
        rejected={},
        created_at=at,
        updated_at=at,
    )
    await session.execute(insert.on_conflict_do_nothing(index_elements=["device_id"]))
    row = await session.scalar(stmt)
    assert row is not None  # inserted above, or by a concurrent writer
    return row


async def _effective(session: AsyncSession, device: Device) -> dict[str, dict[str, Any]]:
    eff = await effective_policy(session, device.tenant_id, device.id)
    return {kind: k["document"] for kind, k in eff["kinds"].items()}


async def _compose(
    session: AsyncSession,
    device: Device,
    t: DeviceTwin,
    effective: Mapping[str, Mapping[str, Any]],
    overrides: Mapping[str, Any],
) -> dict[str, Any]:
    """The desired document now. The ``jobs`` section is there while the board has
    active placements, and stays (empty) once it had some, so the agent is told to stop
    what it runs rather than left guessing from a missing section."""
    jobs = await job_twin.desired_section(session, device.id)
    keep = bool(jobs) or JOBS in (t.desired or {})
    return compose(effective, overrides, jobs if keep else None)


def set_desired(
    session: AsyncSession, t: DeviceTwin, doc: dict[str, Any], bus: EventBus | None
) -> bool:
    """Store ``doc`` as desired, bumping the version, if it differs; publishes after the
    commit. The caller holds the twin's row lock (``twin_batch`` for many at once)."""
    if t.desired_version > 0 and same_json(t.desired, doc):
        return False
    t.desired = doc
    t.desired_version += 1
    t.updated_at = wall_now()
    publish_after_commit(
        session,
        bus,
        t.tenant_id,
        "twin.desired",
        {"device_id": t.device_id, "version": t.desired_version},
    )
    return True


async def recompose(
    session: AsyncSession, device: Device, bus: EventBus | None = None
) -> DeviceTwin:
    """Compose the device's desired document again (creating its twin if missing)."""
    return (await _current(session, device, bus, lock=False))[0]


async def _changed(session: AsyncSession, device: Device, bus: EventBus | None) -> bool:
    before = await session.scalar(
        select(DeviceTwin.desired_version).where(DeviceTwin.device_id == device.id)
    )
    t = await recompose(session, device, bus)
    return t.desired_version != (before or 0)


async def _current(
    session: AsyncSession, device: Device, bus: EventBus | None, *, lock: bool
) -> tuple[DeviceTwin, dict[str, dict[str, Any]]]:
    """The twin with its desired document composed now, and the effective policy
    documents it was composed from. The row lock is taken when writing anyway, or when
    the composed document changed (reads stay lock-free)."""
    effective = await _effective(session, device)
    t = await _twin_row(session, device, lock=lock)
    doc = await _compose(session, device, t, effective, t.overrides)
    if t.desired_version == 0 or not same_json(t.desired, doc):
        if not lock:
            t = await _twin_row(session, device, lock=True)
            doc = await _compose(session, device, t, effective, t.overrides)
        set_desired(session, t, doc, bus)
    return t, effective


async def stored_desired(
    session: AsyncSession, device_id: str
) -> tuple[int, dict[str, Any]] | None:
    """The desired version and document as last composed and stored, or None if the
    device has no composed one yet (``desired_for`` composes it now)."""
    row = (
        await session.execute(
            select(DeviceTwin.desired_version, DeviceTwin.desired).where(
                DeviceTwin.device_id == device_id
            )
        )
    ).first()
    if row is None or row.desired_version == 0:
        return None
    return row.desired_version, dict(row.desired)


async def desired_for(
    session: AsyncSession, device: Device, bus: EventBus | None = None
) -> tuple[int, dict[str, Any]]:
    """The desired version and document to send to ``device`` (composed now, so group
    membership changed since the last policy change is included)."""
    t = await recompose(session, device, bus)
    return t.desired_version, t.desired


async def refresh(
    session: AsyncSession,
    tenant_id: str,
    device_ids: Iterable[str] | None = None,
    bus: EventBus | None = None,
) -> int:
    """Recompose the twins of ``device_ids`` (None: every device of the tenant) after a
    policy change; returns how many desired documents changed (each bumped once)."""
    stmt = select(Device).where(Device.tenant_id == tenant_id)
    if device_ids is not None:
        ids = sorted(set(device_ids))
        if not ids:
            return 0
        stmt = stmt.where(Device.id.in_(ids))
    changed = 0
    for device in list(await session.scalars(stmt.order_by(Device.id))):
        changed += await _changed(session, device, bus)
    return changed


async def get_twin(
    session: AsyncSession, tenant_id: str, device_id: str, bus: EventBus | None = None
) -> DeviceTwin:
    device = await get_owned(session, Device, tenant_id, device_id, "device")
    return await recompose(session, device, bus)


def _validate_composed(doc: Mapping[str, Any], touched: Iterable[str]) -> None:
    """Each policy section the write touched must be a valid policy once composed."""
    for name in touched:
        if name in POLICY_SECTIONS:
            check_section(name, doc[name])


async def patch_twin(
    session: AsyncSession,
    p: Principal,
    device_id: str,
    version: int,
    patch: Any,
    bus: EventBus | None = None,
) -> DeviceTwin:
    """Apply an RFC 7386 merge patch to the device's explicit desired values, if the
    client saw the current desired ``version`` (else 409 with the current one). Each path
    the patch changes needs its role (403, ``twin_rules.SECTION_ROLES``), and while the
    device reports a tamper lockdown the frozen sections do not change (409 lockdown)."""
    p.require(Role.OPERATOR, "changing a device's desired state")
    device = await get_owned(session, Device, p.tenant_id, device_id, "device")
    t, effective = await _current(session, device, bus, lock=True)
    if version != t.desired_version:
        raise ConflictError(
            f"the twin's desired state is at version {t.desired_version}, not {version}: "
            "read it again and retry",
            version=t.desired_version,
        )
    overrides, touched = apply_patch(t.overrides, patch)
    changed = twin_rules.changed_paths(t.overrides, overrides)
    twin_rules.authorise(p, changed, t.reported or {}, device.id, device.name)
    doc = await _compose(session, device, t, effective, overrides)
    _validate_composed(doc, touched)
    before = {"version": t.desired_version, "overrides": t.overrides}
    t.overrides = overrides
    t.updated_at = wall_now()
    set_desired(session, t, doc, bus)
    audit.record(
        session,
        p,
        "twin.update",
        resource_type="device",
        resource_id=device.id,
        before=before,
        after={"version": t.desired_version, "overrides": overrides},
        details={"patch": patch},
    )
    return t


async def set_config(
    session: AsyncSession,
    device: Device,
    values: Mapping[str, Any],
    remove: Iterable[str] = (),
    bus: EventBus | None = None,
) -> DeviceTwin:
    """Replace config keys of the device's explicit desired values (config templates):
    drop ``remove``, then set each key of ``values``. The caller audits."""
    t, effective = await _current(session, device, bus, lock=True)
    gone = set(remove)
    config = {k: v for k, v in (t.overrides.get("config") or {}).items() if k not in gone}
    config.update(copy.deepcopy(dict(values)))
    check_section("config", config)
    overrides = {**t.overrides, "config": config}
    if not config:
        overrides.pop("config")
    t.overrides = overrides
    set_desired(session, t, await _compose(session, device, t, effective, overrides), bus)
    return t


async def agent_connected(session: AsyncSession, device: Device, reported_version: int) -> None:
    """A new session says the agent's reported version: below the stored one means its
    store was reset (a reinstalled board), so its counter restarts and the next report is
    accepted instead of being ignored as stale."""
    t = await _twin_row(session, device, lock=True)
    if reported_version < t.reported_version:
        log.info(
            "device %s: the agent's reported version restarted at %d (was %d)",
            device.id,
            reported_version,
            t.reported_version,
        )
        t.reported_version = reported_version


async def _recompose_locked(
    session: AsyncSession, device: Device, t: DeviceTwin, bus: EventBus | None
) -> None:
    """Compose the desired document of a twin whose row lock the caller holds."""
    doc = await _compose(session, device, t, await _effective(session, device), t.overrides)
    set_desired(session, t, doc, bus)


async def record_reported(
    session: AsyncSession,
    device: Device,
    version: int,
    doc: dict[str, Any],
    applied_desired_version: int,
    rejected: dict[str, str],
    now: float,
    bus: EventBus | None = None,
) -> None:
    """Store what the device reports; a version at or below the stored one is stale
    (a redelivery or a reordering) and is ignored. Settles the device's config
    deployments and job placements from it; a placement that ended, or a tamper lockdown
    (which releases the board's placements), recomposes the desired document."""
    t = await _twin_row(session, device, lock=True)
    if version <= t.reported_version:
        log.debug(
            "device %s: reported version %d is not newer than %d; ignored",
            device.id,
            version,
            t.reported_version,
        )
        return
    if t.desired_version == 0:
        await _recompose_locked(session, device, t, bus)
    t.reported = dict(doc)
    t.reported_version = version
    t.applied_desired_version = applied_desired_version
    t.rejected = dict(rejected)
    t.reported_at = now
    if rejected:
        log.info("device %s rejected desired values: %s", device.id, rejected)
    await template_status.update_status_from_reported(
        session, device, t.reported, t.rejected, applied_desired_version, now
    )
    jobs_changed = await job_twin.apply_reported(session, device, doc.get(JOBS), now, bus)
    if twin_rules.in_lockdown(doc):
        released = await job_state.release_placements(
            session, device, f"{device.name} reports a tamper lockdown", now, bus
        )
        jobs_changed = jobs_changed or bool(released)
    if jobs_changed:
        await _recompose_locked(session, device, t, bus)
    publish_after_commit(
        session,
        bus,
        device.tenant_id,
        "twin.reported",
        {
            "device_id": device.id,
            "version": version,
            "applied_desired_version": applied_desired_version,
            "in_sync": in_sync(t),
        },
    )


async def reported_of(session: AsyncSession, device_id: str) -> dict[str, Any]:
    """The last reported document of a device ({} before its first report)."""
    doc = await session.scalar(select(DeviceTwin.reported).where(DeviceTwin.device_id == device_id))
    return dict(doc or {})
