"""Alerts the device channel raises itself, without a rule: from board events (tamper,
lockdown, fan, battery, sensor and actuator failures, shutdown requests — cleared by their
recovery events) and for devices offline too long (cleared when they are back).

``effects`` is pure (event → raise/clear); ``apply`` writes the alert rows in the caller's
transaction, queues their notifications to the channels whose ``events`` route takes them
(``notify_route``) and returns the bus events to publish after commit. One open alert per
(device, source): raising an open one again changes nothing and notifies no one again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.alerts import Alert
from wrale.fleet.brain.services.alert_rules import SEVERITIES
from wrale.fleet.brain.services.alerts import OPEN_STATES, alert_view, transition
from wrale.fleet.brain.services.notify_route import queue_device_alert

OFFLINE = "status:offline"
ACTOR = "device-channel"
BusOut = list[tuple[str, str, dict[str, Any]]]  # (tenant_id, kind, data)


@dataclass(frozen=True, slots=True)
class Effect:
    """Raise or clear the alert whose source is ``metric`` (``event:<TYPE>[:<part>]``)."""

    action: Literal["raise", "clear"]
    metric: str
    severity: str = "WARNING"
    message: str = ""


def _severity(value: Any, default: str = "WARNING") -> str:
    s = str(value or "").upper()
    return s if s in SEVERITIES and s != "INFO" else default


def _source(kind: str, part: Any = None) -> str:
    return (f"event:{kind}:{part}" if part else f"event:{kind}")[:64]


def effects(event: dict[str, Any]) -> list[Effect]:
    """What one stored event (``{type, severity, message, data}``) does to alerts."""
    kind, data = str(event.get("type", "")), event.get("data") or {}
    message = str(event.get("message") or kind.lower().replace("_", " "))
    sev = event.get("severity")
    if kind == "TAMPER":
        alerting = data.get("alert", str(sev).lower() != "info")
        if not alerting:
            return []
        return [Effect("raise", _source(kind, data.get("input")), _severity(sev), message)]
    if kind == "TAMPER_CLEARED":
        return [Effect("clear", _source("TAMPER", data.get("input")), message=message)]
    if kind in ("SENSOR_FAILURE", "SENSOR_RECOVERED"):
        src = _source("SENSOR_FAILURE", data.get("sensor"))
        if kind == "SENSOR_FAILURE":
            return [Effect("raise", src, _severity(sev), message)]
        return [Effect("clear", src, message=message)]
    if kind in ("ACTUATOR_FAILURE", "ACTUATOR_RECOVERED"):
        src = _source("ACTUATOR_FAILURE", data.get("actuator"))
        if kind == "ACTUATOR_FAILURE":
            return [Effect("raise", src, _severity(sev, "CRITICAL"), message)]
        return [Effect("clear", src, message=message)]
    if kind in ("LOCKDOWN", "FAN_FAILURE", "BATTERY_CRITICAL", "BATTERY_FAILURE"):
        return [Effect("raise", _source(kind), _severity(sev, "CRITICAL"), message)]
    if kind == "SHUTDOWN_REQUESTED":
        return [Effect("raise", _source(kind), "CRITICAL", message)]
    if kind == "DISARMED":
        return [Effect("clear", _source("LOCKDOWN"), message=message)]
    if kind == "FAN_RECOVERED":
        return [Effect("clear", _source("FAN_FAILURE"), message=message)]
    if kind == "LOAD_RESTORED" or (kind == "SOURCE_FAILOVER" and data.get("to_source") == "main"):
        return [Effect("clear", _source("BATTERY_CRITICAL"), message=message)]
    if kind == "METALD_STARTED":  # the board is back: its shutdown happened
        out = [
            Effect("clear", _source("SHUTDOWN_REQUESTED"), message=message),
            Effect("clear", _source("BATTERY_CRITICAL"), message=message),
        ]
        if data.get("lockdown") is False:
            out.append(Effect("clear", _source("LOCKDOWN"), message=message))
        return out
    return []


async def open_alert(session: AsyncSession, device_id: str, metric: str) -> Alert | None:
    return await session.scalar(
        select(Alert)
        .where(
            Alert.device_id == device_id,
            Alert.rule_id.is_(None),
            Alert.metric == metric,
            Alert.state.in_(OPEN_STATES),
        )
        .order_by(Alert.id.desc())
        .limit(1)
    )


async def apply(
    session: AsyncSession, device: Device, effect: Effect, now: float, out: BusOut
) -> Alert | None:
    """Make the device's alert for ``effect.metric`` follow the effect; bus events for
    what changed are appended to ``out``. Returns the alert raised or cleared, if any."""
    alert = await open_alert(session, device.id, effect.metric)
    if effect.action == "raise":
        if alert is not None:
            return None
        name = effect.metric.rsplit(":", 1)[0] if effect.metric.count(":") > 1 else effect.metric
        alert = Alert(
            tenant_id=device.tenant_id,
            rule_id=None,
            rule_name=("device offline" if effect.metric == OFFLINE else name)[:100],
            key=device.id,
            device_id=device.id,
            rack_id=device.rack_id,
            metric=effect.metric,
            severity=effect.severity,
            state="active",
            message=f"{device.name}: {effect.message}"[:255],
            raised_at=now,
            updated_at=now,
        )
        session.add(alert)
        await session.flush()
        transition(session, alert, "active", now, ACTOR, None, alert.message, "raised")
        out.append((device.tenant_id, "alert.raised", {**alert_view(alert), "event": "raise"}))
        await queue_device_alert(session, device, alert, "alert.raised", "raise", now)
        return alert
    if alert is None:
        return None
    transition(session, alert, "cleared", now, ACTOR, None, effect.message[:1000] or None)
    alert.cleared_at, alert.cleared_by = now, ACTOR
    out.append((device.tenant_id, "alert.cleared", {**alert_view(alert), "event": "clear"}))
    await queue_device_alert(session, device, alert, "alert.cleared", "clear", now)
    return alert
