"""Events a board raises: their types, severities and the immutable ``Event`` record."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgspec


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class EventType(StrEnum):
    THERMAL_WARNING = "THERMAL_WARNING"
    THERMAL_CRITICAL = "THERMAL_CRITICAL"
    THERMAL_NORMAL = "THERMAL_NORMAL"
    THROTTLE_ON = "THROTTLE_ON"
    THROTTLE_OFF = "THROTTLE_OFF"
    FAN_FAILURE = "FAN_FAILURE"
    FAN_RECOVERED = "FAN_RECOVERED"
    FAN_OVERRIDE = "FAN_OVERRIDE"
    FAN_OVERRIDE_ENDED = "FAN_OVERRIDE_ENDED"
    SENSOR_FAILURE = "SENSOR_FAILURE"
    SENSOR_RECOVERED = "SENSOR_RECOVERED"
    ACTUATOR_FAILURE = "ACTUATOR_FAILURE"
    ACTUATOR_RECOVERED = "ACTUATOR_RECOVERED"
    SOURCE_FAILOVER = "SOURCE_FAILOVER"
    VOLTAGE_SAG = "VOLTAGE_SAG"
    VOLTAGE_RIPPLE = "VOLTAGE_RIPPLE"
    CURRENT_SPIKE = "CURRENT_SPIKE"
    POWER_CYCLE = "POWER_CYCLE"
    BATTERY_LOW = "BATTERY_LOW"
    BATTERY_CRITICAL = "BATTERY_CRITICAL"
    BATTERY_FAILURE = "BATTERY_FAILURE"
    LOAD_SHED = "LOAD_SHED"
    LOAD_RESTORED = "LOAD_RESTORED"
    SHUTDOWN_REQUESTED = "SHUTDOWN_REQUESTED"
    TAMPER = "TAMPER"
    TAMPER_CLEARED = "TAMPER_CLEARED"
    RAPID_TRANSITIONS = "RAPID_TRANSITIONS"
    LOCKDOWN = "LOCKDOWN"
    ARMED = "ARMED"
    DISARMED = "DISARMED"
    GPIO_EDGE = "GPIO_EDGE"
    DIAGNOSTICS = "DIAGNOSTICS"
    POLICY_CHANGED = "POLICY_CHANGED"
    FREQ_CAP = "FREQ_CAP"
    METALD_STARTED = "METALD_STARTED"


class Event(msgspec.Struct, frozen=True):
    """Something that happened on the board. ``id`` is set once the event is stored."""

    type: EventType
    severity: Severity
    at: float
    message: str
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type.value,
            "severity": self.severity.value,
            "at": self.at,
            "message": self.message,
            **({"data": self.data} if self.data else {}),
        }
