"""Maintenance windows (``docs/maintenance.md``): stored per organisation, site or group,
validated (a strict cron parser, an IANA zone, bounded conditions), audited; and
``may_disrupt`` — whether disruptive work may happen on a board now. The decision itself is
``conditions.may_disrupt_now`` (pure); this module reads what it needs from the database.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.decisions.view import STALE_AFTER_S
from wrale.fleet.brain.models import Device, Rack, Room, Site
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.models.groups import Group
from wrale.fleet.brain.models.maintenance import SCOPES, MaintenanceWindow
from wrale.fleet.brain.models.telemetry import TelemetryLatest
from wrale.fleet.brain.services import audit, groups
from wrale.fleet.brain.services.lookup import get_owned
from wrale.fleet.brain.services.maintenance import cron
from wrale.fleet.brain.services.maintenance.conditions import (
    CONDITION_KEYS,
    METRICS,
    POWER,
    Readings,
    Verdict,
    Window,
    may_disrupt_now,
)
from wrale.fleet.brain.services.maintenance.conditions import Rack as RackReading
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.fleet.brain.services.telemetry_store import lookup_metric_ids
from wrale.shared.errors import InvalidRequestError

MIN_DURATION_S = 60.0
MAX_DURATION_S = 7 * 86_400.0
MAX_WINDOWS = 200  # per organisation
_BOUNDS = {"battery_min_pct": (0.0, 100.0), "ambient_max_c": (-40.0, 80.0)}
_FLAGS = ("not_on_battery", "case_closed", "rack_under_budget")
FIELDS = ("name", "scope", "scope_id", "cron", "duration_s", "timezone", "conditions", "enabled")


def window_view(w: MaintenanceWindow) -> dict[str, Any]:
    return {
        "id": w.id,
        "name": w.name,
        "scope": w.scope,
        "scope_id": w.scope_id,
        "cron": w.cron,
        "duration_s": w.duration_s,
        "timezone": w.timezone,
        "conditions": dict(w.conditions or {}),
        "enabled": w.enabled,
        "created_by": w.created_by,
        "created_at": w.created_at,
        "updated_at": w.updated_at,
    }


def as_window(w: MaintenanceWindow) -> Window:
    return Window(w.id, w.name, w.cron, w.duration_s, w.timezone, dict(w.conditions or {}))


# ----------------------------------------------------------------------------- validation


def _bad(field: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"{field}: {message}", field=field)


def check_conditions(raw: Any) -> dict[str, Any]:
    """The normalised conditions; ``InvalidRequestError`` names the key that is wrong."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _bad("conditions", "must be an object")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"conditions.{key}"
        if key not in CONDITION_KEYS:
            raise _bad(where, f"unknown condition; use {', '.join(CONDITION_KEYS)}")
        if key in _FLAGS:
            if not isinstance(value, bool):
                raise _bad(where, "true or false")
            if value:
                out[key] = True
            continue
        if value is None:
            continue
        lo, hi = _BOUNDS[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _bad(where, "a number")
        if not (math.isfinite(value) and lo <= value <= hi):
            raise _bad(where, f"between {lo:g} and {hi:g}")
        out[key] = float(value)
    return out


def _text(data: Mapping[str, Any], key: str, limit: int) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise _bad(key, f"1-{limit} characters")
    return value.strip()


async def _check(session: AsyncSession, tenant_id: str, data: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise _bad(unknown[0], "unknown field")
    name = _text(data, "name", 100)
    scope = data.get("scope", "fleet")
    if scope not in SCOPES:
        raise _bad("scope", f"use one of {', '.join(SCOPES)}")
    scope_id = data.get("scope_id")
    if scope == "fleet":
        if scope_id is not None:
            raise _bad("scope_id", "a fleet-wide window has no scope_id")
    else:
        if not isinstance(scope_id, str) or not scope_id:
            raise _bad("scope_id", f"the {scope}'s id is required")
        model: type[Site] | type[Group] = Site if scope == "site" else Group
        try:
            await get_owned(session, model, tenant_id, scope_id, scope)
        except Exception as exc:  # not found (or not this organisation's): name the field
            raise _bad("scope_id", f"no such {scope}") from exc
    expr = _text(data, "cron", cron.MAX_LEN)
    tz_name = data.get("timezone", "UTC")
    try:
        cron.parse(expr)
    except cron.CronError as exc:
        raise _bad("cron", str(exc)) from None
    if not isinstance(tz_name, str):
        raise _bad("timezone", "an IANA time zone name")
    try:
        cron.zone(tz_name)
    except cron.CronError as exc:
        raise _bad("timezone", str(exc)) from None
    duration = data.get("duration_s")
    if isinstance(duration, bool) or not isinstance(duration, int | float):
        raise _bad("duration_s", "a number of seconds")
    if not (math.isfinite(duration) and MIN_DURATION_S <= duration <= MAX_DURATION_S):
        raise _bad("duration_s", f"between {MIN_DURATION_S:g} and {MAX_DURATION_S:g} seconds")
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise _bad("enabled", "true or false")
    return {
        "name": name,
        "scope": scope,
        "scope_id": scope_id if scope != "fleet" else None,
        "cron": " ".join(expr.split()),
        "duration_s": float(duration),
        "timezone": tz_name,
        "conditions": check_conditions(data.get("conditions")),
        "enabled": enabled,
    }


# ----------------------------------------------------------------------------- CRUD


async def list_windows(session: AsyncSession, tenant_id: str) -> list[MaintenanceWindow]:
    rows = await session.scalars(
        select(MaintenanceWindow)
        .where(MaintenanceWindow.tenant_id == tenant_id)
        .order_by(MaintenanceWindow.id)
    )
    return list(rows)


async def get_window(session: AsyncSession, tenant_id: str, window_id: str) -> MaintenanceWindow:
    return await get_owned(session, MaintenanceWindow, tenant_id, window_id, "maintenance window")


async def create_window(
    session: AsyncSession, p: Principal, data: Mapping[str, Any]
) -> MaintenanceWindow:
    p.require(Role.OPERATOR, "maintenance windows")
    clean = await _check(session, p.tenant_id, data)
    if len(await list_windows(session, p.tenant_id)) >= MAX_WINDOWS:
        raise InvalidRequestError(f"at most {MAX_WINDOWS} maintenance windows", field="name")
    at = wall_now()
    w = MaintenanceWindow(
        tenant_id=p.tenant_id, created_by=p.name, created_at=at, updated_at=at, **clean
    )
    session.add(w)
    await session.flush()
    audit.record(
        session,
        p,
        "maintenance_window.create",
        resource_type="maintenance_window",
        resource_id=w.id,
        after=window_view(w),
    )
    invalidate()
    return w


async def update_window(
    session: AsyncSession, p: Principal, window_id: str, changes: Mapping[str, Any]
) -> MaintenanceWindow:
    p.require(Role.OPERATOR, "maintenance windows")
    w = await get_window(session, p.tenant_id, window_id)
    before = window_view(w)
    merged = {k: before[k] for k in FIELDS} | dict(changes)
    clean = await _check(session, p.tenant_id, merged)
    for key, value in clean.items():
        setattr(w, key, value)
    w.updated_at = wall_now()
    await session.flush()
    audit.record(
        session,
        p,
        "maintenance_window.update",
        resource_type="maintenance_window",
        resource_id=w.id,
        before=before,
        after=window_view(w),
    )
    invalidate()
    return w


async def delete_window(session: AsyncSession, p: Principal, window_id: str) -> None:
    p.require(Role.OPERATOR, "maintenance windows")
    w = await get_window(session, p.tenant_id, window_id)
    before = window_view(w)
    await session.delete(w)
    await session.flush()
    audit.record(
        session,
        p,
        "maintenance_window.delete",
        resource_type="maintenance_window",
        resource_id=window_id,
        before=before,
    )
    invalidate()


# ----------------------------------------------------------------------------- evaluation


async def _site_of(session: AsyncSession, device: Device) -> str | None:
    if not device.rack_id:
        return None
    row = (
        await session.execute(
            select(Room.site_id)
            .join(Rack, Rack.room_id == Room.id)
            .where(Rack.id == device.rack_id)
        )
    ).first()
    return None if row is None else str(row.site_id)


async def windows_of(session: AsyncSession, device: Device) -> list[MaintenanceWindow]:
    """The enabled windows that apply to ``device``: the organisation's, its site's and
    those of its groups (directly or through a subgroup)."""
    rows = list(
        await session.scalars(
            select(MaintenanceWindow)
            .where(
                MaintenanceWindow.tenant_id == device.tenant_id,
                MaintenanceWindow.enabled.is_(True),
            )
            .order_by(MaintenanceWindow.id)
        )
    )
    if not rows:
        return []
    site = await _site_of(session, device) if any(w.scope == "site" for w in rows) else None
    group_ids: set[str] = set()
    if any(w.scope == "group" for w in rows):
        found = await groups.device_groups_with_ancestors(session, device.tenant_id, device.id)
        group_ids = {g.id for g, _ in found}
    return [
        w
        for w in rows
        if w.scope == "fleet"
        or (w.scope == "site" and w.scope_id == site)
        or (w.scope == "group" and w.scope_id in group_ids)
    ]


async def _latest(
    session: AsyncSession, nums: Sequence[int], metrics: Sequence[str]
) -> dict[int, dict[str, tuple[float, float]]]:
    ids = await lookup_metric_ids(session, metrics)
    names = {mid: name for name, mid in ids.items()}
    out: dict[int, dict[str, tuple[float, float]]] = {}
    if not names or not nums:
        return out
    rows = await session.execute(
        select(
            TelemetryLatest.device_num,
            TelemetryLatest.metric_id,
            TelemetryLatest.ts,
            TelemetryLatest.value,
        ).where(
            TelemetryLatest.device_num.in_(list(nums)),
            TelemetryLatest.metric_id.in_(sorted(names)),
        )
    )
    for num, mid, ts, value in rows:
        out.setdefault(int(num), {})[names[mid]] = (float(ts), float(value))
    return out


async def readings_of(
    session: AsyncSession, device: Device, now: float, *, rack: bool = True
) -> Readings:
    """The board's latest readings and, when asked, its rack's budget and fresh draw."""
    latest = (await _latest(session, [device.num], METRICS)).get(device.num, {})
    if not rack or not device.rack_id:
        return Readings(latest=latest)
    r = await session.get(Rack, device.rack_id)
    if r is None:
        return Readings(latest=latest)
    nums = list(await session.scalars(select(Device.num).where(Device.rack_id == r.id)))
    power = await _latest(session, nums, [POWER])
    fresh = [v for ts, v in (got[POWER] for got in power.values()) if now - ts <= STALE_AFTER_S]
    draw = sum(fresh) if fresh else None
    return Readings(latest=latest, rack=RackReading(r.name, r.power_budget_w, draw))


async def evaluate(
    session: AsyncSession, device: Device, now: float
) -> tuple[bool, str | None, list[Verdict]]:
    """``may_disrupt`` with each applicable window's verdict."""
    found = await windows_of(session, device)
    if not found:
        return True, None, []
    needs_rack = any((w.conditions or {}).get("rack_under_budget") for w in found)
    readings = await readings_of(session, device, now, rack=needs_rack)
    return may_disrupt_now([as_window(w) for w in found], readings, now)


async def may_disrupt(session: AsyncSession, device: Device, now: float) -> tuple[bool, str | None]:
    """Whether disruptive work may happen on ``device`` at ``now``: yes when no window
    applies to it, or one of its windows is open with all its conditions; otherwise no,
    with the reason (``next window opens 2026-12-07 02:00 Europe/Berlin``, ``on battery``…)."""
    ok, reason, _ = await evaluate(session, device, now)
    return ok, reason


async def device_status(
    session: AsyncSession, tenant_id: str, device_id: str, now: float
) -> dict[str, Any]:
    """``GET /devices/{id}/maintenance``: the decision, the windows and the next opening."""
    device = await get_owned(session, Device, tenant_id, device_id, "device")
    ok, reason, verdicts = await evaluate(session, device, now)
    upcoming = [v.next_open for v in verdicts if v.next_open is not None]
    return {
        "device_id": device.id,
        "may_disrupt": ok,
        "reason": reason,
        "windows": [v.view() for v in verdicts],
        "next_open": min(upcoming) if upcoming else None,
    }


# ----------------------------------------------------------------------------- cache

CACHE_TTL_S = 30.0  # the delivery path asks at most this often per board
_cache: dict[str, tuple[float, bool, str | None]] = {}  # device id -> (asked at, answer)


async def cached_may_disrupt(
    session: AsyncSession, device: Device, now: float
) -> tuple[bool, str | None]:
    """``may_disrupt``, remembered per board for ``CACHE_TTL_S`` (the channel asks at
    every sweep while a disruptive command waits); window changes here forget it all."""
    hit = _cache.get(device.id)
    if hit is not None and hit[0] <= now < hit[0] + CACHE_TTL_S:
        return hit[1], hit[2]
    ok, reason = await may_disrupt(session, device, now)
    if len(_cache) > 100_000:
        _cache.clear()
    _cache[device.id] = (now, ok, reason)
    return ok, reason


def invalidate() -> None:
    """Forget the cached answers (windows changed in this process; other processes see
    the change within ``CACHE_TTL_S``)."""
    _cache.clear()
