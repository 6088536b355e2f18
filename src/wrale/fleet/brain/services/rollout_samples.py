"""What a rollout's gate reads about its boards (``rollout_loop``): each board's sample from
the fleet view the decisions read (temperature, power, throttling, fan duty and RPM, fresh
readings only), stored as JSON in the wave's baselines, and what the boards reported
during the wave: alerts raised, fan failures (a ``FAN_FAILURE`` event or an alert on a fan
metric)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.decisions import gates as gate_core
from wrale.fleet.brain.decisions.view import FleetView
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.alerts import Alert
from wrale.fleet.brain.models.channel import DeviceEvent
from wrale.fleet.brain.services.fleet_view_builder import build_fleet_view
from wrale.fleet.brain.services.job_boards import load_boards

FAN_EVENT = "FAN_FAILURE"  # metald's event type (metal.core.events.EventType)
FAN_METRICS = ("fan_rpm", "fan_pct")


async def fleet_view(
    session: AsyncSession, tenant_id: str, ids: Sequence[str], now: float
) -> FleetView:
    devices = await session.scalars(
        select(Device).where(Device.id.in_(list(ids))).order_by(Device.id)
    )
    boards = await load_boards(session, list(devices), now)
    return await build_fleet_view(session, tenant_id, now, boards=boards, with_trends=False)


def sample(view: FleetView, device_id: str) -> gate_core.Sample | None:
    b = view.board(device_id)
    if b is None:
        return None
    return gate_core.Sample(
        online=b.online,
        temp_c=b.known_temp_c,
        power_w=b.known_power_w,
        throttled=b.throttled if b.fresh else None,
        under_voltage=b.under_voltage if b.fresh else None,
        fan_duty_pct=b.fan_duty_pct if b.fresh else None,
        fan_rpm=b.fan_rpm if b.fresh else None,
        fan_failed=b.fan_failed if b.fresh else None,
    )


def dump(s: gate_core.Sample | None) -> dict[str, Any] | None:
    if s is None:
        return None
    return {
        "online": s.online,
        "temp_c": s.temp_c,
        "power_w": s.power_w,
        "throttled": s.throttled,
        "under_voltage": s.under_voltage,
        "fan_duty_pct": s.fan_duty_pct,
        "fan_rpm": s.fan_rpm,
        "fan_failed": s.fan_failed,
    }


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _flag(v: Any) -> bool | None:
    return v if isinstance(v, bool) else None


def load(raw: Any) -> gate_core.Sample | None:
    """A stored sample (a wave's baselines written before fans were sampled have none)."""
    if not isinstance(raw, dict):
        return None
    return gate_core.Sample(
        online=bool(raw.get("online", True)),
        temp_c=_num(raw.get("temp_c")),
        power_w=_num(raw.get("power_w")),
        throttled=_flag(raw.get("throttled")),
        under_voltage=_flag(raw.get("under_voltage")),
        fan_duty_pct=_num(raw.get("fan_duty_pct")),
        fan_rpm=_num(raw.get("fan_rpm")),
        fan_failed=_flag(raw.get("fan_failed")),
    )


async def alerts_raised(session: AsyncSession, ids: Sequence[str], since: float) -> int:
    """Alerts raised on the boards ``ids`` since ``since``."""
    if not ids:
        return 0
    return int(
        await session.scalar(
            select(func.count())
            .select_from(Alert)
            .where(Alert.device_id.in_(list(ids)), Alert.raised_at >= since)
        )
        or 0
    )


async def fan_reports(session: AsyncSession, ids: Sequence[str], since: float) -> dict[str, str]:
    """The boards of ``ids`` that reported a fan failure since ``since`` (why)."""
    if not ids:
        return {}
    out: dict[str, str] = {}
    events = await session.execute(
        select(DeviceEvent.device_id, DeviceEvent.message)
        .where(
            DeviceEvent.device_id.in_(list(ids)),
            DeviceEvent.type == FAN_EVENT,
            DeviceEvent.ts >= since,
        )
        .order_by(DeviceEvent.ts)
    )
    for device_id, message in events:
        out.setdefault(device_id, f"fan failure event: {message or ''}".strip()[:200])
    alerts = await session.execute(
        select(Alert.device_id, Alert.rule_name)
        .where(
            Alert.device_id.in_(list(ids)),
            Alert.metric.in_(FAN_METRICS),
            Alert.raised_at >= since,
        )
        .order_by(Alert.raised_at)
    )
    for alerted, rule in alerts:
        if alerted is not None:
            out.setdefault(alerted, f"fan alert: {rule}"[:200])
    return out
