"""What the physical view draws on top of the boards and the racks' power bars: the boards
that run a replica of one job (``/physical?job=ID``), the boards of one rollout with their
wave and state (``/physical?rollout=ID``, drawn by ``physical_rollout_overlay``), and the
caps the rack power capping loop holds per rack (the clock caps it keeps in its loop
state, the CPU quotas it set on placements). Read only; the loops that set these are
``fleet/brain/services``'.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.decision_loops import DecisionLoopState
from wrale.fleet.brain.models.jobs import Job, JobPlacement
from wrale.fleet.brain.services import jobs
from wrale.fleet.brain.services.job_state import ACTIVE
from wrale.fleet.brain.services.rack_capping import LOOP as CAPPING
from wrale.user.ui.pages.physical_rollout_overlay import RolloutMarks as RolloutMarks
from wrale.user.ui.pages.physical_rollout_overlay import rollout_marks as rollout_marks


@dataclass(frozen=True, slots=True)
class JobMarks:
    """One job's boards: device id → the state of its replica there."""

    job: Job
    boards: dict[str, str]


async def job_marks(session: AsyncSession, tenant_id: str, job_id: str) -> JobMarks:
    """The boards running (starting, moving) a replica of the job; another organisation's
    job or a malformed id is not found (404)."""
    job = await jobs.get_job(session, tenant_id, job_id)
    rows = await session.execute(
        select(JobPlacement.device_id, JobPlacement.state).where(
            JobPlacement.job_id == job.id,
            JobPlacement.state.in_(ACTIVE),
            JobPlacement.device_id.is_not(None),
        )
    )
    return JobMarks(job, {str(d): str(s) for d, s in rows.all()})


@dataclass(frozen=True, slots=True)
class RackCap:
    """The caps held in one rack: boards whose clock is capped (the lowest cap), and
    placements whose CPU quota is lowered (the lowest quota)."""

    clock_boards: int = 0
    min_clock_pct: float | None = None
    quota_placements: int = 0
    min_quota_pct: float | None = None

    @property
    def boards(self) -> int:
        return self.clock_boards + self.quota_placements


def cap_text(cap: RackCap) -> str:
    """The words under a rack's power bar, e.g. "capped: 2 clocks ≤ 60 %, 1 job ≤ 40 % CPU"."""
    parts = []
    if cap.clock_boards:
        s = "" if cap.clock_boards == 1 else "s"
        parts.append(f"{cap.clock_boards} clock{s} ≤ {cap.min_clock_pct or 0:.0f} %")
    if cap.quota_placements:
        s = "" if cap.quota_placements == 1 else "s"
        parts.append(f"{cap.quota_placements} job{s} ≤ {cap.min_quota_pct or 0:.0f} % CPU")
    return "capped: " + ", ".join(parts) if parts else ""


def clock_caps(state: Mapping[str, Any]) -> dict[str, float]:
    """device id → clock cap (%) from the capping loop's stored state; anything malformed
    in it is left out."""
    raw = state.get("caps")
    if not isinstance(raw, Mapping):
        return {}
    return {
        str(k): float(v)
        for k, v in raw.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def _lowest(a: float | None, b: float) -> float:
    return b if a is None else min(a, b)


async def rack_caps(session: AsyncSession, tenant_id: str) -> dict[str, RackCap]:
    """rack id → the caps the capping loop holds there (racks without any left out)."""
    row = await session.scalar(
        select(DecisionLoopState.state).where(
            DecisionLoopState.tenant_id == tenant_id, DecisionLoopState.loop == CAPPING
        )
    )
    clocks = clock_caps(row if isinstance(row, Mapping) else {})
    found: dict[str, dict[str, Any]] = {}
    if clocks:
        racks = await session.execute(
            select(Device.id, Device.rack_id).where(
                Device.tenant_id == tenant_id,
                Device.id.in_(sorted(clocks)),
                Device.rack_id.is_not(None),
            )
        )
        for device_id, rack_id in racks.all():
            f = found.setdefault(str(rack_id), {})
            f["clock_boards"] = f.get("clock_boards", 0) + 1
            f["min_clock_pct"] = _lowest(f.get("min_clock_pct"), clocks[str(device_id)])
    quotas = await session.execute(
        select(Device.rack_id, JobPlacement.cpu_quota_pct)
        .join(Device, Device.id == JobPlacement.device_id)
        .where(
            JobPlacement.tenant_id == tenant_id,
            JobPlacement.state.in_(ACTIVE),
            JobPlacement.cpu_quota_pct.is_not(None),
            Device.rack_id.is_not(None),
        )
    )
    for rack_id, quota in quotas.all():
        if quota is None:
            continue
        f = found.setdefault(str(rack_id), {})
        f["quota_placements"] = f.get("quota_placements", 0) + 1
        f["min_quota_pct"] = _lowest(f.get("min_quota_pct"), float(quota))
    return {rack_id: RackCap(**f) for rack_id, f in found.items()}
