"""The twin's ``jobs`` section both ways (``docs/jobs.md``): the desired section composed
from a board's active placements, and the reported section applied to them — each state
the board reports becomes a stored transition, and a job settles once every placement
has ended.

Called by the twin service; it imports nothing above ``job_state``. What a board reports
is untrusted: entries of the wrong shape, of unknown placements, or of placements now on
another board are ignored.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.jobs import Job, JobPlacement
from wrale.fleet.brain.services.job_state import ACTIVE, DEVICE, FINAL, settle_jobs, transition

log = logging.getLogger("wrale.central.jobs")

REPORTED_STATES = ("starting", "running", "succeeded", "failed", "stopped")
MAX_OUTPUT_TAIL = 8192
MAX_REPORTED = 256  # placements read from one report (a board runs far fewer)


async def desired_section(session: AsyncSession, device_id: str) -> dict[str, Any]:
    """The ``jobs`` section for a board: its active placements of jobs not being
    stopped, keyed by placement id."""
    rows = await session.execute(
        select(
            JobPlacement.id,
            JobPlacement.cpu_quota_pct,
            Job.id,
            Job.name,
            Job.workload,
            Job.duration_s,
        )
        .join(Job, Job.id == JobPlacement.job_id)
        .where(
            JobPlacement.device_id == device_id,
            JobPlacement.state.in_(ACTIVE),
            Job.stopped_at.is_(None),
        )
        .order_by(JobPlacement.id)
    )
    return {
        pid: {
            "job": job_id,
            "name": name,
            "workload": workload,
            "duration_s": duration_s,
            "cpu_quota_pct": quota,
        }
        for pid, quota, job_id, name, workload, duration_s in rows
    }


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _text(value: Any, most: int) -> str | None:
    if not isinstance(value, str):
        return None
    return value.replace("\x00", "")[-most:] or None


def _entry(value: Any) -> dict[str, Any] | None:
    """A reported placement entry in a shape we can store, or None."""
    if not isinstance(value, Mapping) or value.get("state") not in REPORTED_STATES:
        return None
    code = value.get("exit_code")
    exit_code = code if isinstance(code, int) and not isinstance(code, bool) else None
    if exit_code is not None and not -(2**31) <= exit_code < 2**31:
        exit_code = None
    return {
        "state": value["state"],
        "reason": _text(value.get("reason"), 2000),
        "exit_code": exit_code,
        "started_at": _number(value.get("started_at")),
        "ended_at": _number(value.get("ended_at")),
        "cpu_s": _number(value.get("cpu_s")),
        "output_tail": _text(value.get("output_tail"), MAX_OUTPUT_TAIL),
    }


def _why(entry: Mapping[str, Any], device: Device) -> str:
    if entry["reason"]:
        return str(entry["reason"])
    if entry["state"] == "failed" and entry["exit_code"] is not None:
        return f"exited with {entry['exit_code']} on {device.name}"
    return f"reported by {device.name}"


async def apply_reported(
    session: AsyncSession,
    device: Device,
    section: Any,
    now: float,
    bus: EventBus | None = None,
) -> bool:
    """Apply a board's reported ``jobs`` section to its placements; returns whether one
    of them ended (so the board's desired section changes)."""
    if not isinstance(section, Mapping) or not section:
        return False
    entries = {}
    for pid, value in list(section.items())[:MAX_REPORTED]:
        entry = _entry(value)
        if isinstance(pid, str) and len(pid) == 32 and entry is not None:
            entries[pid] = entry
    if not entries:
        return False
    rows = await session.scalars(
        select(JobPlacement)
        .where(JobPlacement.id.in_(sorted(entries)), JobPlacement.device_id == device.id)
        .order_by(JobPlacement.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    ended = False
    touched: set[str] = set()
    for p in rows:
        entry = entries[p.id]
        if p.state in FINAL or p.state == "pending":
            continue  # already settled (a late report), or released from this board
        for key in ("exit_code", "started_at", "ended_at", "cpu_s", "output_tail"):
            if entry[key] is not None:
                setattr(p, key, entry[key])
        p.updated_at = now
        state = entry["state"]
        if state == p.state or (p.state == "moving" and state in ("starting", "running")):
            continue  # a move is the brain's to finish
        why = _why(entry, device) if state in FINAL else None
        transition(session, p, state, why, now, actor=DEVICE, bus=bus)
        touched.add(p.job_id)
        ended = ended or state in FINAL
    if touched:
        await settle_jobs(session, touched, now, bus)
    return ended
