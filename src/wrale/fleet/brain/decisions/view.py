"""The fleet view: the one immutable snapshot a period's decisions read.

Readings, topology, rack budgets, jobs and placements as plain values, built once per control
period by whoever reads the database (or the simulator); ``now`` is a field, never a clock
read. A reading older than its board's ``stale_after_s`` is unknown: the ``known_*``
properties give ``None`` for it, and the decisions treat unknown as the worst plausible case.
Nothing here does I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

# Raspberry Pi 5 defaults (DESIGN §5): the board policy's warning temperature, the
# firmware's soft and hard throttling limits, the lowest clock (1.5 of 2.4 GHz), and the
# power it draws idle and flat out.
PI5_WARNING_C = 70.0
PI5_THROTTLE_C = 80.0
PI5_HARD_C = 85.0
PI5_MIN_FREQ_PCT = 62.5
PI5_IDLE_W = 2.7
PI5_MAX_W = 7.0
STALE_AFTER_S = 60.0  # six missed 10 s reports: the board's readings are no longer "now"
SAFE_MODE = "safe"

Input = float | int | str | bool | None
Inputs = Mapping[str, Input]


class Source(StrEnum):
    """Where a board's power comes from."""

    MAIN = "main"
    BATTERY = "battery"
    SOLAR = "solar"


@dataclass(frozen=True, slots=True)
class PlacementView:
    """One replica of a job on a board, with the CPU quota the brain allows it.

    ``cpu_pct`` is the job's CPU hint (the share it asks for), ``cpu_quota_pct`` the cgroup
    quota in force (``None``: none); ``starting`` placements do not show in the board's
    measured power yet."""

    id: str
    job_id: str
    priority: int = 50
    cpu_pct: float = 25.0
    watts: float | None = None
    restartable: bool = True
    cpu_quota_pct: float | None = None
    starting: bool = False

    @property
    def cpu_limit_pct(self) -> float:
        """The CPU it may use now: its hint, bounded by its quota."""
        if self.cpu_quota_pct is None:
            return self.cpu_pct
        return max(0.0, min(self.cpu_pct, self.cpu_quota_pct))


@dataclass(frozen=True, slots=True)
class BoardView:
    """A board's identity, place, state, latest readings and placements."""

    device_id: str
    rack_id: str | None = None
    room_id: str | None = None
    site_id: str | None = None
    online: bool = True
    mode: str = "normal"
    lockdown: bool = False
    cpu_temp_c: float | None = None
    temp_trend_c_per_min: float | None = None
    ambient_c: float | None = None
    ambient_trend_c_per_min: float | None = None
    warning_c: float = PI5_WARNING_C
    throttle_c: float = PI5_THROTTLE_C
    hard_c: float = PI5_HARD_C
    fan_duty_pct: float | None = None
    fan_rpm: float | None = None
    fan_failed: bool = False
    power_w: float | None = None
    power_source: Source | None = None
    battery_pct: float | None = None
    throttled: bool = False
    under_voltage: bool = False  # the supply sagged below the firmware's threshold lately
    freq_cap_pct: float | None = None  # the brain's cap in force (None: none)
    min_freq_pct: float = PI5_MIN_FREQ_PCT
    idle_w: float = PI5_IDLE_W
    max_w: float = PI5_MAX_W
    reading_age_s: float | None = None  # None: it never reported
    stale_after_s: float = STALE_AFTER_S
    placements: tuple[PlacementView, ...] = ()
    name: str | None = None  # what operators call it (reasons say this, else the id)

    @property
    def label(self) -> str:
        return self.name or self.device_id

    @property
    def fresh(self) -> bool:
        age = self.reading_age_s
        return age is not None and math.isfinite(age) and age <= self.stale_after_s

    @property
    def eligible_state(self) -> bool:
        """Online, not in SAFE mode, not in a tamper lockdown."""
        return self.online and self.mode != SAFE_MODE and not self.lockdown

    @property
    def known_temp_c(self) -> float | None:
        return _finite(self.cpu_temp_c) if self.fresh else None

    @property
    def known_trend_c_per_min(self) -> float | None:
        return _finite(self.temp_trend_c_per_min) if self.fresh else None

    @property
    def known_ambient_c(self) -> float | None:
        return _finite(self.ambient_c) if self.fresh else None

    @property
    def known_ambient_trend_c_per_min(self) -> float | None:
        return _finite(self.ambient_trend_c_per_min) if self.fresh else None

    @property
    def known_power_w(self) -> float | None:
        value = _finite(self.power_w) if self.fresh else None
        return None if value is None or value < 0 else value

    @property
    def known_source(self) -> Source | None:
        return self.power_source if self.fresh else None

    @property
    def on_battery(self) -> bool:
        """Known to run on its battery now."""
        return self.known_source is Source.BATTERY

    @property
    def maybe_on_battery(self) -> bool:
        """On battery, or its power source is unknown (no fresh reading)."""
        return self.known_source in (Source.BATTERY, None)

    @property
    def dynamic_w(self) -> float:
        """What CPU load adds to its idle draw, flat out at full clock."""
        return max(0.0, self.max_w - self.idle_w)

    @property
    def cpu_reserved_pct(self) -> float:
        """CPU its placements ask for (their hints, whatever their quotas)."""
        return sum(p.cpu_pct for p in self.placements)

    @property
    def draw_or_worst_w(self) -> float:
        """Its measured draw, or flat out when unknown (a silent board may draw anything)."""
        known = self.known_power_w
        return self.max_w if known is None else known

    def watts_for(self, cpu_pct: float, watts: float | None = None) -> float:
        """What a placement asking ``cpu_pct`` adds to this board's draw: its hint, else
        its share of the dynamic power."""
        if watts is not None and math.isfinite(watts) and watts >= 0:
            return watts
        return self.dynamic_w * max(0.0, cpu_pct) / 100.0


@dataclass(frozen=True, slots=True)
class RackView:
    """A rack: its room, its power budget (``None``: none) and its measured draw
    (``None``: the sum of its boards' readings, unknown ones counted flat out)."""

    id: str
    room_id: str | None = None
    budget_w: float | None = None
    draw_w: float | None = None
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.id


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a job asks of the brain; ``devices`` is its selector resolved to device ids
    (``None``: any board)."""

    id: str
    priority: int = 50
    replicas: int = 1
    cpu_pct: float = 25.0
    watts: float | None = None
    restartable: bool = True
    max_per_rack: int | None = None
    allow_battery: bool = False
    strategy: str = "physical"
    devices: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class FleetView:
    """Boards, racks and jobs as they stand at ``now`` (seconds, the builder's clock)."""

    boards: tuple[BoardView, ...]
    racks: tuple[RackView, ...] = ()
    jobs: tuple[JobSpec, ...] = ()
    now: float = 0.0
    _boards: Mapping[str, BoardView] = field(init=False, repr=False, compare=False)
    _racks: Mapping[str, RackView] = field(init=False, repr=False, compare=False)
    _jobs: Mapping[str, JobSpec] = field(init=False, repr=False, compare=False)
    _in_rack: Mapping[str, tuple[BoardView, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        in_rack: dict[str, list[BoardView]] = {}
        for b in self.boards:
            if b.rack_id is not None:
                in_rack.setdefault(b.rack_id, []).append(b)
        object.__setattr__(self, "_boards", {b.device_id: b for b in self.boards})
        object.__setattr__(self, "_racks", {r.id: r for r in self.racks})
        object.__setattr__(self, "_jobs", {j.id: j for j in self.jobs})
        object.__setattr__(self, "_in_rack", {k: tuple(v) for k, v in in_rack.items()})

    def board(self, device_id: str) -> BoardView | None:
        return self._boards.get(device_id)

    def rack(self, rack_id: str | None) -> RackView | None:
        return None if rack_id is None else self._racks.get(rack_id)

    def rack_label(self, rack_id: str | None) -> str:
        """The rack's name for a reason (its id when it has none in the view)."""
        rack = self.rack(rack_id)
        return rack.label if rack is not None else str(rack_id)

    def job(self, job_id: str) -> JobSpec | None:
        return self._jobs.get(job_id)

    def boards_in(self, rack_id: str | None) -> tuple[BoardView, ...]:
        return () if rack_id is None else self._in_rack.get(rack_id, ())

    def budget_w(self, rack_id: str | None) -> float | None:
        rack = self.rack(rack_id)
        if rack is None or rack.budget_w is None or not math.isfinite(rack.budget_w):
            return None
        return rack.budget_w

    def rack_draw_w(self, rack_id: str | None) -> float:
        """The rack's measured draw, else the sum of its boards' (unknown ones flat out)."""
        rack = self.rack(rack_id)
        if rack is not None and rack.draw_w is not None and math.isfinite(rack.draw_w):
            return max(0.0, rack.draw_w)
        return sum(b.draw_or_worst_w for b in self.boards_in(rack_id))

    def starting_w(self, rack_id: str | None) -> float:
        """Watts of the rack's placements that are starting (not in its draw yet)."""
        return sum(
            b.watts_for(p.cpu_pct, p.watts)
            for b in self.boards_in(rack_id)
            for p in b.placements
            if p.starting
        )


def slope_per_min(samples: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of ``(t_s, value)`` samples, per minute (``None``: fewer than
    two distinct times). For the view's builder: a temperature trend from recent readings."""
    pts = [(t, v) for t, v in samples if math.isfinite(t) and math.isfinite(v)]
    if len(pts) < 2:
        return None
    mean_t = sum(t for t, _ in pts) / len(pts)
    mean_v = sum(v for _, v in pts) / len(pts)
    var = sum((t - mean_t) ** 2 for t, _ in pts)
    if var <= 0:
        return None
    cov = sum((t - mean_t) * (v - mean_v) for t, v in pts)
    return 60.0 * cov / var


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
