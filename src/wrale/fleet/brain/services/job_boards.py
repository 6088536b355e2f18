"""What the placement loop knows of each board — its device row and place, the agent's
mode, a reported tamper lockdown, a fresh on-battery reading, whether it is simulated —
and the pure rules on it: may a board take a replica of a job (``block``), must it give
its placements back (``release_reason``). Reads only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device, Rack, Room
from wrale.fleet.brain.models.channel import ChannelSession
from wrale.fleet.brain.models.jobs import Job
from wrale.fleet.brain.models.telemetry import TelemetryLatest
from wrale.fleet.brain.models.twin import DeviceTwin
from wrale.fleet.brain.services.command_rules import is_sim
from wrale.fleet.brain.services.fleet_view import FRESH_S, ON_BATTERY
from wrale.fleet.brain.services.groups import devices_in_group, matches
from wrale.fleet.brain.services.selectors import Place
from wrale.fleet.brain.services.telemetry_store import lookup_metric_ids
from wrale.shared.errors import NotFoundError

SAFE_MODE = "safe"
HELD = frozenset({"maintenance", "decommissioned", "quarantined"})
# a board disconnected this long gives its placements back (a reconnect within it keeps
# them); one found silent by offline detection gives them back at once
OFFLINE_GRACE_S = 30.0
FULL_CPU_PCT = 100.0
CHUNK = 500


@dataclass(frozen=True, slots=True)
class Board:
    device: Device
    place: Place | None
    mode: str | None  # the agent's mode in its open session (None: no open session)
    lockdown: bool
    on_battery: bool | None  # None: no fresh reading
    sim: bool


def _chunks(ids: Sequence[str]) -> Iterator[list[str]]:
    for i in range(0, len(ids), CHUNK):
        yield list(ids[i : i + CHUNK])


async def _places(session: AsyncSession, devices: Sequence[Device]) -> dict[str, Place]:
    rack_ids = sorted({d.rack_id for d in devices if d.rack_id})
    out: dict[str, Place] = {}
    for chunk in _chunks(rack_ids):
        rows = await session.execute(
            select(Rack.id, Rack.room_id, Room.site_id)
            .join(Room, Room.id == Rack.room_id)
            .where(Rack.id.in_(chunk))
        )
        out.update((r.id, Place(r.room_id, r.site_id)) for r in rows)
    return out


async def load_boards(session: AsyncSession, devices: Sequence[Device], now: float) -> list[Board]:
    """The boards of ``devices`` (in that order) as the placement rules see them now."""
    ids = [d.id for d in devices]
    places = await _places(session, devices)
    modes: dict[str, str | None] = {}
    reported: dict[str, tuple[Any, Any]] = {}
    battery: dict[str, bool] = {}
    metric = (await lookup_metric_ids(session, [ON_BATTERY])).get(ON_BATTERY)
    for chunk in _chunks(ids):
        sessions = await session.execute(
            select(ChannelSession.device_id, ChannelSession.mode)
            .where(ChannelSession.device_id.in_(chunk), ChannelSession.closed_at.is_(None))
            .order_by(ChannelSession.opened_at)
        )
        modes.update((device_id, mode) for device_id, mode in sessions)
        twins = await session.execute(
            select(
                DeviceTwin.device_id,
                DeviceTwin.reported["tamper"],
                DeviceTwin.reported["hardware"],
            ).where(DeviceTwin.device_id.in_(chunk))
        )
        reported.update((device_id, (tamper, hw)) for device_id, tamper, hw in twins)
        if metric is not None:
            flags = await session.execute(
                select(Device.id, TelemetryLatest.value)
                .join(
                    TelemetryLatest,
                    and_(
                        TelemetryLatest.device_num == Device.num,
                        TelemetryLatest.metric_id == metric,
                        TelemetryLatest.ts >= now - FRESH_S,
                    ),
                )
                .where(Device.id.in_(chunk))
            )
            battery.update((device_id, value >= 0.5) for device_id, value in flags)
    boards = []
    for d in devices:
        tamper, hardware = reported.get(d.id, (None, None))
        boards.append(
            Board(
                device=d,
                place=places.get(d.rack_id) if d.rack_id else None,
                mode=modes.get(d.id),
                lockdown=isinstance(tamper, dict) and tamper.get("lockdown") is True,
                on_battery=battery.get(d.id),
                sim=is_sim(d, {"hardware": hardware}),
            )
        )
    return boards


def block(
    board: Board,
    job: Job,
    selected: set[str],
    jobs_on: set[tuple[str, str]],
    cpu: Mapping[str, float],
    racks: Counter[tuple[str, str]],
) -> str | None:
    """Why ``board`` may not take a replica of ``job`` now (None: it may), worded to
    follow a count ("3 offline"). ``selected``: the boards the job's selector picks;
    ``jobs_on``: (job, board) pairs already placed; ``cpu``: the CPU hints of each board's
    placements; ``racks``: replicas per (job, rack)."""
    d = board.device
    if d.id not in selected:
        return "not selected by the job's selector"
    if d.status != "online":
        return d.status
    if board.mode == SAFE_MODE:
        return "in SAFE mode"
    if board.lockdown:
        return "in a tamper lockdown"
    if (job.workload or {}).get("kind") == "sim_load" and not board.sim:
        return "not simulated (a sim_load runs only on simulated boards)"
    if board.on_battery and not job.allow_battery:
        return "on battery"
    if (job.id, d.id) in jobs_on:
        return "already running a replica of it"
    if cpu.get(d.id, 0.0) + job.cpu_pct > FULL_CPU_PCT + 1e-9:
        return "without CPU room for it"
    if job.max_per_rack is not None and d.rack_id and racks[job.id, d.rack_id] >= job.max_per_rack:
        return f"in racks at its max_per_rack ({job.max_per_rack})"
    return None


def release_reason(board: Board, now: float) -> str | None:
    """Why ``board`` must give its placements back now (None: it keeps them): held by an
    operator, offline past the grace, in SAFE mode, or in a tamper lockdown."""
    d = board.device
    if d.status in HELD:
        return f"{d.name} is {d.status}"
    if d.status != "online":
        seen = d.last_seen_at
        if seen is None or now - seen >= OFFLINE_GRACE_S:
            return f"{d.name} is {d.status}"
        return None
    if board.mode == SAFE_MODE:
        return f"{d.name} is in SAFE mode"
    if board.lockdown:
        return f"{d.name} reports a tamper lockdown"
    return None


async def selected_ids(session: AsyncSession, job: Job, boards: Sequence[Board]) -> set[str]:
    """Ids of the boards the job's selector picks (group membership included; a group
    deleted since picks none)."""
    selector = {k: v for k, v in (job.selector or {}).items() if k != "group_id"}
    ids = {b.device.id for b in boards if matches(selector, b.device, b.place)}
    group_id = (job.selector or {}).get("group_id")
    if group_id:
        try:
            members = await devices_in_group(session, job.tenant_id, group_id, recursive=True)
        except NotFoundError:
            members = []
        ids &= {d.id for d in members}
    return ids
