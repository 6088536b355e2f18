"""Commands to devices: validation on the server (operation and arguments, role, device
state, tamper lockdown, simulator-only operations), storage and the lifecycle
queued → sent → succeeded | failed | refused | expired. The device checks physical safety
again; delivery belongs to the device channel, which calls ``due_for``, ``mark_sent`` and
``record_result``. Every transition is a conditional UPDATE, safe across replicas.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.bus import EventBus, publish_after_commit
from wrale.fleet.brain.models import Device, Rack, Room
from wrale.fleet.brain.models.base import new_id
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.models.commands import Command
from wrale.fleet.brain.models.twin import DeviceTwin
from wrale.fleet.brain.services import audit, groups
from wrale.fleet.brain.services.lookup import get_owned
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.fleet.brain.services.twin import check_json
from wrale.fleet.sync.protocol import COMMAND_OPS
from wrale.shared.errors import ConflictError, InvalidRequestError, LockdownError
from wrale.shared.policy import SecurityLevel

log = logging.getLogger("wrale.central.commands")

STATUSES = ("queued", "sent", "succeeded", "failed", "refused", "expired")
OPEN = ("queued", "sent")
DEVICE_FINAL = ("succeeded", "failed", "refused", "expired")
HELD = ("maintenance", "decommissioned")
DEFAULT_TIMEOUT_S = 300.0
MAX_TIMEOUT_S = 7 * 86_400.0
SENT_GRACE_S = 60.0  # a sent command without a result is expired this long after its deadline
MAX_REASON = 2000
# The simulator's fault kinds (metal.hw.base.FaultKind; the brain may not import metal).
SIM_FAULTS = (
    "fan_failure",
    "heat_spike",
    "ambient_change",
    "main_power_loss",
    "voltage_sag",
    "battery_failure",
    "case_open",
    "motion",
    "sensor_failure",
)


# ----------------------------------------------------------------------------- arguments


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoArgs(_Args):
    pass


class SetFanArgs(_Args):
    percent: float = Field(ge=0, le=100)
    duration_s: float = Field(default=300.0, ge=1, le=86_400)


class SetThrottleArgs(_Args):
    """Caps CPU frequency (it can only lower it); null clears the cap."""

    max_freq_pct: float | None = Field(default=None, ge=40, le=100)


class RunDiagArgs(_Args):
    tests: list[str] | None = Field(default=None, max_length=50)

    @field_validator("tests")
    @classmethod
    def _names(cls, v: list[str] | None) -> list[str] | None:
        for name in v or []:
            if not 0 < len(name) <= 64:
                raise ValueError("test names are 1-64 characters")
        return v


class ArmArgs(_Args):
    level: SecurityLevel | None = None


class DelayArgs(_Args):
    delay_s: float = Field(default=0.0, ge=0, le=3600)


class SafeModeArgs(_Args):
    on: bool


class SimFaultArgs(_Args):
    fault: str
    duration_s: float | None = Field(default=None, gt=0, le=86_400)
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("fault")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in SIM_FAULTS:
            raise ValueError(f"use one of {', '.join(SIM_FAULTS)}")
        return v


class SimClearArgs(_Args):
    fault: str | None = None

    @field_validator("fault")
    @classmethod
    def _known(cls, v: str | None) -> str | None:
        if v is not None and v not in SIM_FAULTS:
            raise ValueError(f"use one of {', '.join(SIM_FAULTS)}")
        return v


class SimLoadArgs(_Args):
    percent: float = Field(ge=0, le=100)


class SimAmbientArgs(_Args):
    celsius: float = Field(ge=-40, le=80)


OPS: dict[str, type[_Args]] = {
    "set_fan": SetFanArgs,
    "clear_fan": NoArgs,
    "set_throttle": SetThrottleArgs,
    "run_diag": RunDiagArgs,
    "arm": ArmArgs,
    "disarm": NoArgs,
    "reboot": DelayArgs,
    "shutdown": DelayArgs,
    "safe_mode": SafeModeArgs,
    "sim_fault": SimFaultArgs,
    "sim_clear": SimClearArgs,
    "sim_load": SimLoadArgs,
    "sim_ambient": SimAmbientArgs,
}
if set(OPS) != set(COMMAND_OPS):  # one vocabulary with the devices (fleet.sync.protocol)
    raise RuntimeError(f"command arguments out of step with the protocol: {sorted(OPS)}")
SIM_OPS = frozenset(op for op in OPS if op.startswith("sim_"))
ADMIN_OPS = frozenset({"disarm"})
LOCKDOWN_OPS = frozenset({"disarm", "safe_mode", "run_diag", "reboot", "shutdown"})


def check_args(op: str, args: Any) -> dict[str, Any]:
    """The normalised arguments of ``op``; ``InvalidRequestError`` names what is wrong."""
    model = OPS.get(op)
    if model is None:
        raise InvalidRequestError(f"op: use one of {', '.join(OPS)}", field="op")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise InvalidRequestError("args: must be an object", field="args")
    check_json(args, "args")
    try:
        parsed = model.model_validate(args)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(["args", *(str(p) for p in err.get("loc", ()))])
        raise InvalidRequestError(f"{where}: {err['msg']}", field=where) from None
    out = parsed.model_dump(mode="json", exclude_none=True)
    if op == "set_throttle":
        out["max_freq_pct"] = out.get("max_freq_pct")  # null (clear) is explicit
    return out


def resolve_deadline(deadline: float | None, timeout_s: float | None, now: float) -> float:
    """An absolute deadline: ``deadline`` as given, or ``now + timeout_s`` (default 300 s);
    in the future and at most 7 days ahead."""
    if deadline is not None and timeout_s is not None:
        raise InvalidRequestError("give deadline or timeout_s, not both", field="deadline")
    if timeout_s is not None:
        if not (math.isfinite(timeout_s) and 0 < timeout_s <= MAX_TIMEOUT_S):
            raise InvalidRequestError(
                f"timeout_s: between 0 and {MAX_TIMEOUT_S:g} seconds", field="timeout_s"
            )
        return now + timeout_s
    if deadline is None:
        return now + DEFAULT_TIMEOUT_S
    if not math.isfinite(deadline) or deadline <= now:
        raise InvalidRequestError(
            "deadline: must be in the future (unix seconds)", field="deadline"
        )
    if deadline > now + MAX_TIMEOUT_S:
        raise InvalidRequestError("deadline: at most 7 days ahead", field="deadline")
    return deadline


def is_sim(device: Device, reported: dict[str, Any]) -> bool:
    hardware = reported.get("hardware")
    backend = hardware.get("backend") if isinstance(hardware, dict) else None
    return backend == "sim" or any(str(c).lower() == "sim" for c in device.capabilities or [])


def in_lockdown(reported: dict[str, Any]) -> bool:
    tamper = reported.get("tamper")
    return isinstance(tamper, dict) and tamper.get("lockdown") is True


def refusal(op: str, device: Device, reported: dict[str, Any]) -> tuple[str, str] | None:
    """Why ``device`` cannot take ``op`` now, as (kind, reason), or None. Pure."""
    if device.status in HELD:
        return "held", f"device {device.name!r} is {device.status}; an operator must end that first"
    if op in SIM_OPS and not is_sim(device, reported):
        return "sim", (
            f"{op} is for simulated boards; device {device.name!r} has no 'sim' capability "
            "and does not report the sim backend"
        )
    if in_lockdown(reported) and op not in LOCKDOWN_OPS:
        return "lockdown", (
            f"device {device.name!r} is in tamper lockdown: only "
            f"{', '.join(sorted(LOCKDOWN_OPS))} are accepted"
        )
    return None


# ----------------------------------------------------------------------------- views


def command_view(c: Command) -> dict[str, Any]:
    return {
        "id": c.id,
        "device_id": c.device_id,
        "batch_id": c.batch_id,
        "op": c.op,
        "args": c.args,
        "status": c.status,
        "reason": c.reason,
        "result": c.result,
        "deadline": c.deadline,
        "created_by": c.created_by,
        "created_at": c.created_at,
        "sent_at": c.sent_at,
        "finished_at": c.finished_at,
    }


async def get_command(session: AsyncSession, tenant_id: str, command_id: str) -> Command:
    return await get_owned(session, Command, tenant_id, command_id, "command")


# ----------------------------------------------------------------------------- creation


def _authorise(p: Principal, op: str) -> None:
    p.require(Role.OPERATOR, "sending commands")
    if op in ADMIN_OPS:
        p.require(Role.ADMIN, f"the {op} command")


async def _reported(session: AsyncSession, device_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    if not device_ids:
        return {}
    rows = await session.execute(
        select(DeviceTwin.device_id, DeviceTwin.reported).where(
            DeviceTwin.device_id.in_(list(device_ids))
        )
    )
    return {r.device_id: dict(r.reported or {}) for r in rows}


def _new(
    p: Principal, device: Device, op: str, args: dict[str, Any], deadline: float, batch: str | None
) -> Command:
    return Command(
        id=new_id(),
        tenant_id=device.tenant_id,
        device_id=device.id,
        batch_id=batch,
        op=op,
        args=args,
        status="queued",
        deadline=deadline,
        created_by=p.name,
        created_at=wall_now(),
    )


def _queued(session: AsyncSession, bus: EventBus | None, c: Command) -> None:
    publish_after_commit(
        session,
        bus,
        c.tenant_id,
        "command.queued",
        {"device_id": c.device_id, "command_id": c.id, "batch_id": c.batch_id, "op": c.op},
    )


async def create_command(
    session: AsyncSession,
    p: Principal,
    device_id: str,
    op: str,
    args: Any,
    *,
    deadline: float | None = None,
    timeout_s: float | None = None,
    bus: EventBus | None = None,
) -> Command:
    """Queue ``op`` for one device; 422 for bad arguments, 403 for the role, 409 when the
    device cannot take it (held, lockdown, not simulated)."""
    _authorise(p, op)
    clean = check_args(op, args)
    at = wall_now()
    until = resolve_deadline(deadline, timeout_s, at)
    device = await get_owned(session, Device, p.tenant_id, device_id, "device")
    reported = (await _reported(session, [device.id])).get(device.id, {})
    refused = refusal(op, device, reported)
    if refused is not None:
        kind, reason = refused
        error = LockdownError if kind == "lockdown" else ConflictError
        raise error(reason, device_id=device.id, refused=kind)
    cmd = _new(p, device, op, clean, until, None)
    session.add(cmd)
    await session.flush()
    audit.record(
        session,
        p,
        "command.create",
        resource_type="command",
        resource_id=cmd.id,
        after=command_view(cmd),
    )
    _queued(session, bus, cmd)
    return cmd


async def create_batch(
    session: AsyncSession,
    p: Principal,
    devices: Sequence[Device],
    op: str,
    args: Any,
    *,
    deadline: float | None = None,
    timeout_s: float | None = None,
    bus: EventBus | None = None,
    target: dict[str, Any] | None = None,
) -> tuple[str, list[Command], list[dict[str, Any]]]:
    """Queue ``op`` for each of ``devices`` under one batch id; a device that cannot take
    it is listed as refused with the reason instead of failing the batch."""
    _authorise(p, op)
    clean = check_args(op, args)
    at = wall_now()
    until = resolve_deadline(deadline, timeout_s, at)
    batch = new_id()
    reported = await _reported(session, [d.id for d in devices])
    made: list[Command] = []
    refused: list[dict[str, Any]] = []
    for device in devices:
        why = refusal(op, device, reported.get(device.id, {}))
        if why is not None:
            refused.append({"device_id": device.id, "name": device.name, "reason": why[1]})
            continue
        made.append(_new(p, device, op, clean, until, batch))
    session.add_all(made)
    await session.flush()
    audit.record(
        session,
        p,
        "command.batch",
        resource_type="command_batch",
        resource_id=batch,
        after={
            "op": op,
            "args": clean,
            "deadline": until,
            "count": len(made),
            "refused": len(refused),
            "target": target or {},
        },
    )
    for cmd in made:
        _queued(session, bus, cmd)
    return batch, made, refused


async def select_devices(
    session: AsyncSession, tenant_id: str, selector: dict[str, Any]
) -> list[Device]:
    """The tenant's devices matching a group selector (at least one clause), by id."""
    clean = await groups.validate_selector(session, tenant_id, selector)
    if not clean:
        raise InvalidRequestError(
            "selector: give at least one clause (tags, status, site_id, room_id, rack_id…)",
            field="selector",
        )
    rows = await session.execute(
        select(Rack.id, Rack.room_id, Room.site_id)
        .join(Room, Room.id == Rack.room_id)
        .where(Rack.tenant_id == tenant_id)
    )
    places = {r.id: groups.Place(r.room_id, r.site_id) for r in rows}
    devices = await session.scalars(
        select(Device).where(Device.tenant_id == tenant_id).order_by(Device.id)
    )
    return [
        d for d in devices if groups.matches(clean, d, places.get(d.rack_id) if d.rack_id else None)
    ]


# ----------------------------------------------------------------------------- lifecycle


def _updated(
    session: AsyncSession, bus: EventBus | None, tenant_id: str, data: dict[str, Any]
) -> None:
    publish_after_commit(session, bus, tenant_id, "command.updated", data)


async def due_for(
    session: AsyncSession, device: Device, now: float, limit: int = 100
) -> list[Command]:
    """The device's queued commands whose deadline has not passed, oldest first."""
    rows = await session.scalars(
        select(Command)
        .where(
            Command.device_id == device.id,
            Command.status == "queued",
            Command.deadline > now,
        )
        .order_by(Command.id)
        .limit(limit)
    )
    return list(rows)


async def mark_sent(
    session: AsyncSession, ids: Sequence[str], now: float, bus: EventBus | None = None
) -> None:
    """queued → sent for ``ids`` (those no longer queued are left alone)."""
    if not ids:
        return
    result = await session.execute(
        update(Command)
        .where(Command.id.in_(list(ids)), Command.status == "queued")
        .values(status="sent", sent_at=now)
        .returning(Command.id, Command.tenant_id, Command.device_id)
        .execution_options(synchronize_session=False)
    )
    for row in result.all():
        _updated(
            session,
            bus,
            row.tenant_id,
            {"device_id": row.device_id, "command_id": row.id, "status": "sent"},
        )


async def record_result(
    session: AsyncSession,
    device: Device,
    command_id: str,
    status: str,
    reason: str | None,
    result: dict[str, Any] | None,
    now: float,
    bus: EventBus | None = None,
) -> None:
    """The device's answer: succeeded, failed, refused (or expired). An unknown id, another
    device's command or a finished one is ignored with a log line."""
    if status not in DEVICE_FINAL:
        log.warning("device %s: result %r of command %s ignored", device.id, status, command_id)
        return
    text = (reason or "").strip()[:MAX_REASON] or None
    if text is None and status != "succeeded":
        text = f"{status} (the device gave no reason)"
    try:
        check_json(result or {}, "result")
    except InvalidRequestError:
        result = {"invalid": "the device's result was not storable JSON"}
    done = await session.execute(
        update(Command)
        .where(
            Command.id == command_id,
            Command.device_id == device.id,
            Command.status.in_(OPEN),
        )
        .values(
            status=status,
            reason=text,
            result=dict(result or {}),
            finished_at=now,
        )
        .returning(Command.id, Command.sent_at)
        .execution_options(synchronize_session=False)
    )
    row = done.first()
    if row is None:
        log.info(
            "device %s: result for command %s ignored (unknown, not its own, or finished)",
            device.id,
            command_id,
        )
        return
    if row.sent_at is None:  # answered before we saw it sent (another replica sent it)
        await session.execute(
            update(Command)
            .where(Command.id == command_id)
            .values(sent_at=now)
            .execution_options(synchronize_session=False)
        )
    _updated(
        session,
        bus,
        device.tenant_id,
        {"device_id": device.id, "command_id": command_id, "status": status, "reason": text},
    )


async def expire_due(session: AsyncSession, now: float, bus: EventBus | None = None) -> int:
    """Expire queued commands past their deadline and sent ones with no result by
    ``SENT_GRACE_S`` after it; returns how many (a maintenance job runs it)."""
    count = 0
    for status, before, reason in (
        ("queued", now, "not delivered before its deadline (the device was not connected)"),
        ("sent", now - SENT_GRACE_S, "no result from the device by its deadline"),
    ):
        result = await session.execute(
            update(Command)
            .where(Command.status == status, Command.deadline <= before)
            .values(status="expired", reason=reason, finished_at=now)
            .returning(Command.id, Command.tenant_id, Command.device_id)
            .execution_options(synchronize_session=False)
        )
        for row in result.all():
            count += 1
            _updated(
                session,
                bus,
                row.tenant_id,
                {
                    "device_id": row.device_id,
                    "command_id": row.id,
                    "status": "expired",
                    "reason": reason,
                },
            )
    if count:
        log.info("expired %d command(s)", count)
    return count


async def cancel(
    session: AsyncSession, p: Principal, command_id: str, bus: EventBus | None = None
) -> Command:
    """A queued command ends as failed, "cancelled by <user>"; anything else is 409."""
    p.require(Role.OPERATOR, "cancelling commands")
    cmd = await get_command(session, p.tenant_id, command_id)
    reason = f"cancelled by {p.name}"
    at = wall_now()
    done = await session.execute(
        update(Command)
        .where(Command.id == cmd.id, Command.status == "queued")
        .values(status="failed", reason=reason, finished_at=at)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(cmd)
    if not done.rowcount:  # type: ignore[attr-defined]
        raise ConflictError(
            f"command {cmd.id} is {cmd.status}: only a queued command can be cancelled",
            status=cmd.status,
        )
    audit.record(
        session,
        p,
        "command.cancel",
        resource_type="command",
        resource_id=cmd.id,
        after=command_view(cmd),
    )
    _updated(
        session,
        bus,
        cmd.tenant_id,
        {"device_id": cmd.device_id, "command_id": cmd.id, "status": "failed", "reason": reason},
    )
    return cmd
