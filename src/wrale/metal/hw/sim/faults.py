"""The book of active faults and what they do to the board, with no physics in it.

``effects_of`` turns the active (normalized) faults into the effects the board applies;
``FaultBook`` keeps them in injection order with the sim time at which each one ends.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import msgspec

from wrale.metal.hw.base import Fault, FaultKind


class FanFailure(msgspec.Struct, frozen=True):
    mode: str  # "stalled" or "degraded"
    rpm_factor: float


class SensorFailure(msgspec.Struct, frozen=True):
    mode: str  # "stuck", "range" or "missing"
    value_c: float | None


class Effects(msgspec.Struct, frozen=True):
    """What the active faults do to the board (later faults win over earlier ones)."""

    fan_failure: FanFailure | None = None
    extra_heat_w: float = 0.0
    ambient_c: float | None = None
    main_lost: bool = False
    sag_v: float | None = None
    battery_failed: bool = False
    case_open: bool = False
    motion: bool = False
    sensors: Mapping[str, SensorFailure] = msgspec.field(default_factory=dict)


def effects_of(faults: Iterable[Fault]) -> Effects:
    """The combined effect of normalized faults, in the order they were injected."""
    fan: FanFailure | None = None
    heat_w, ambient, sag = 0.0, None, None
    kinds: set[FaultKind] = set()
    sensors: dict[str, SensorFailure] = {}
    for fault in faults:
        p = fault.params
        kinds.add(fault.kind)
        if fault.kind is FaultKind.FAN_FAILURE:
            fan = FanFailure(p["mode"], p["rpm_factor"])
        elif fault.kind is FaultKind.HEAT_SPIKE:
            heat_w += p["watts"]
        elif fault.kind is FaultKind.AMBIENT_CHANGE:
            ambient = p["celsius"]
        elif fault.kind is FaultKind.VOLTAGE_SAG:
            sag = p["voltage_v"]
        elif fault.kind is FaultKind.SENSOR_FAILURE:
            sensors[p["sensor"]] = SensorFailure(p["mode"], p.get("value_c"))
    return Effects(
        fan_failure=fan,
        extra_heat_w=heat_w,
        ambient_c=ambient,
        main_lost=FaultKind.MAIN_POWER_LOSS in kinds,
        sag_v=sag,
        battery_failed=FaultKind.BATTERY_FAILURE in kinds,
        case_open=FaultKind.CASE_OPEN in kinds,
        motion=FaultKind.MOTION in kinds,
        sensors=sensors,
    )


class _Entry(msgspec.Struct):
    fault: Fault
    ends_at: float  # monotonic seconds; inf for "until cleared"


class FaultBook:
    """Active faults in injection order, each with the sim time at which it ends."""

    def __init__(self) -> None:
        self._entries: list[_Entry] = []
        self.next_end = math.inf

    def add(self, fault: Fault, now: float) -> None:
        ends = math.inf if fault.duration_s is None else now + fault.duration_s
        self._entries.append(_Entry(fault, ends))
        self.next_end = min(self.next_end, ends)

    def clear(self, kind: FaultKind | None) -> int:
        kept = [e for e in self._entries if kind is not None and e.fault.kind is not kind]
        ended = len(self._entries) - len(kept)
        self._set(kept)
        return ended

    def expire(self, now: float) -> bool:
        """Drop the faults whose time is up; true if any did."""
        if now < self.next_end:
            return False
        self._set([e for e in self._entries if e.ends_at > now])
        return True

    def faults(self) -> list[Fault]:
        return [e.fault for e in self._entries]

    def remaining_s(self, now: float) -> list[tuple[Fault, float | None]]:
        return [
            (e.fault, None if math.isinf(e.ends_at) else max(0.0, e.ends_at - now))
            for e in self._entries
        ]

    def _set(self, entries: list[_Entry]) -> None:
        self._entries = entries
        self.next_end = min((e.ends_at for e in entries), default=math.inf)
