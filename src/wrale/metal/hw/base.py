"""The hardware contract: what every backend (simulated or Linux) must provide.

Readings are immutable values with the unit in each name. A sensor that cannot be read
gives ``None`` for that value (the core treats it as unavailable and fails safe); a
backend raises ``HardwareError`` subclasses only for actuator failures and unknown lines.
Reads and writes are plain synchronous calls; a backend whose calls touch files or
devices sets ``blocking_io = True`` so the core runs them in a thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Protocol

import msgspec

# ----------------------------------------------------------------------------- thermal


class ThermalReading(msgspec.Struct, frozen=True):
    """Temperatures in °C; ``None`` where the sensor is missing or failed to read."""

    cpu_temp_c: float | None
    gpu_temp_c: float | None = None
    ambient_temp_c: float | None = None


class ThermalSensors(Protocol):
    """Reads the board's temperature sensors (CPU required; GPU and ambient optional)."""

    def read_thermal(self) -> ThermalReading: ...


class FanOwner(StrEnum):
    """Who drives the fan: metald (the core's curve), or the kernel's thermal governor."""

    METALD = "metald"
    KERNEL = "kernel"


class FanReading(msgspec.Struct, frozen=True):
    """The fan's duty (``duty_pct`` 0-100), its tachometer (``None``: no tach) and its owner.

    ``owner`` is KERNEL while the kernel's governor drives the fan (before metald's first
    ``set_fan_duty`` and after the board handed it back), METALD once metald drives it.
    """

    duty_pct: float
    rpm: float | None
    owner: FanOwner = FanOwner.METALD


class Fan(Protocol):
    """A PWM fan. ``set_fan_duty`` takes 0-100 % and makes metald the fan's only owner:
    an implementation whose kernel also drives the fan (a thermal governor) must take the
    fan from it first, so that nothing else overwrites the duty metald set."""

    def read_fan(self) -> FanReading: ...

    def set_fan_duty(self, percent: float) -> None: ...


class ThrottleReading(msgspec.Struct, frozen=True):
    """CPU frequency cap and the firmware's throttle flags (Raspberry Pi ``get_throttled``).

    ``max_freq_pct`` is the cap in force (100 = full speed), as the hardware applies it.
    ``min_freq_pct`` is the lowest cap the hardware honours (a Pi 5: 1.5 of 2.4 GHz =
    62.5 %; 0 = no floor known): a lower ``set_max_freq`` is applied as this floor.
    The ``*_now`` flags are bits 0-3 of ``get_throttled``; the ``*_occurred`` flags are
    bits 16-19, meaning "since boot" (a backend latches them itself where the firmware's
    own sticky bits are cleared by another reader).
    """

    max_freq_pct: float = 100.0
    min_freq_pct: float = 0.0
    under_voltage_now: bool = False
    freq_capped_now: bool = False
    throttled_now: bool = False
    soft_temp_limit_now: bool = False
    under_voltage_occurred: bool = False
    freq_capped_occurred: bool = False
    throttled_occurred: bool = False
    soft_temp_limit_occurred: bool = False

    @classmethod
    def from_bits(
        cls, bits: int, max_freq_pct: float = 100.0, min_freq_pct: float = 0.0
    ) -> ThrottleReading:
        """Decode the ``get_throttled`` word."""
        return cls(
            max_freq_pct=max_freq_pct,
            min_freq_pct=min_freq_pct,
            under_voltage_now=bool(bits & 0x1),
            freq_capped_now=bool(bits & 0x2),
            throttled_now=bool(bits & 0x4),
            soft_temp_limit_now=bool(bits & 0x8),
            under_voltage_occurred=bool(bits & 0x10000),
            freq_capped_occurred=bool(bits & 0x20000),
            throttled_occurred=bool(bits & 0x40000),
            soft_temp_limit_occurred=bool(bits & 0x80000),
        )


class Throttle(Protocol):
    """CPU frequency capping. ``set_max_freq`` takes the cap in % of full speed (10-100);
    a cap below the reading's ``min_freq_pct`` is applied as that floor, and a cap equal
    to the one in force writes nothing."""

    def read_throttle(self) -> ThrottleReading: ...

    def set_max_freq(self, percent: float) -> None: ...


# ----------------------------------------------------------------------------- power


class PowerSource(StrEnum):
    MAIN = "main"
    BATTERY = "battery"
    SOLAR = "solar"


class SourceReading(msgspec.Struct, frozen=True):
    """One supply: whether it can power the board now, and what it delivers."""

    source: PowerSource
    available: bool
    voltage_v: float | None = None
    power_w: float | None = None


class PowerReading(msgspec.Struct, frozen=True):
    """The board's supply: the source in use, the rail at the board and the battery.

    ``voltage_v``/``current_a``/``power_w`` are measured at the board's 5 V rail.
    ``battery_pct`` is ``None`` without a battery (or when it cannot be read).
    ``battery_health_pct`` is the battery's state of health as its gauge reports it (the
    kernel's ``charge_full / charge_full_design`` × 100); ``None`` where nothing reports it.
    ``sources`` lists every source the board has, in no particular order.
    """

    source: PowerSource
    voltage_v: float | None
    current_a: float | None
    power_w: float | None
    battery_pct: float | None = None
    battery_charging: bool = False
    battery_healthy: bool = True
    sources: tuple[SourceReading, ...] = ()
    battery_health_pct: float | None = None

    def available(self, source: PowerSource) -> bool:
        return any(s.source is source and s.available for s in self.sources)


class Power(Protocol):
    """Supplies and their selection, and the board's own shutdown."""

    def read_power(self) -> PowerReading: ...

    def select_source(self, source: PowerSource) -> None:
        """Prefer ``source``; hardware may still fall over by itself if it disappears."""
        ...

    def request_shutdown(self, reason: str) -> None:
        """Ask the operating system for a graceful shutdown (the sim records it)."""
        ...


# ----------------------------------------------------------------------------- storage


class StorageReading(msgspec.Struct, frozen=True):
    """The boot storage's own wear estimate (an eMMC's ``life_time`` / ``pre_eol_info``):
    ``emmc_life_used_pct`` the upper bound of the worse of its two estimates (10 … 100 %),
    ``emmc_pre_eol`` 1 normal, 2 warning, 3 urgent. ``None``: no eMMC (an SD card, NVMe)."""

    emmc_life_used_pct: float | None = None
    emmc_pre_eol: int | None = None


class Storage(Protocol):
    def read_storage(self) -> StorageReading: ...


# ----------------------------------------------------------------------------- tamper


class TamperInput(StrEnum):
    CASE = "case"
    MOTION = "motion"
    VOLTAGE = "voltage"


class TamperReading(msgspec.Struct, frozen=True):
    """Raw tamper inputs; ``None`` where the board has no such sensor.

    ``transitions`` counts the changes each input made since the previous read (latched
    by the backend), so that a case opened and closed between two samples is not missed.
    """

    case_open: bool | None
    motion_detected: bool | None
    voltage_normal: bool | None
    transitions: Mapping[TamperInput, int] = msgspec.field(default_factory=dict)


class Tamper(Protocol):
    def read_tamper(self) -> TamperReading: ...


class CaseContact(StrEnum):
    """The case switch's contact while the lid is ON (alarm-trade wording), wired to GND.

    ``nc``: closed while the lid is on (magnetic reed alarm contacts), so the pulled-up line
    reads 0 when shut and 1 when opened or when the wire is cut (fails safe).
    ``no``: open while the lid is on, closes when the lid opens: 1 shut, 0 open (a cut wire
    reads shut: the operator's choice, said in the docs).
    """

    NC = "nc"
    NO = "no"


class MotionActive(StrEnum):
    """The PIR output's level for "motion": ``high`` (HC-SR501, AM312) or ``low`` (open-drain)."""

    HIGH = "high"
    LOW = "low"


class TamperWiring(msgspec.Struct, frozen=True):
    """How the case switch and the PIR are wired; both backends decode line levels with it.

    Both inputs are pulled up: a switch to GND needs it, an open-drain (active-low) PIR needs
    it, and an active-high PIR with a cut wire then reads motion (an alarm, not silence).
    """

    case_contact: CaseContact = CaseContact.NC
    motion_active: MotionActive = MotionActive.HIGH

    def case_open(self, level: int) -> bool:
        return bool(level) is (self.case_contact is CaseContact.NC)

    def case_level(self, case_open: bool) -> int:
        """The level the case line reads when the case is (not) open."""
        return int(case_open is (self.case_contact is CaseContact.NC))

    def motion(self, level: int) -> bool:
        return bool(level) is (self.motion_active is MotionActive.HIGH)

    def motion_level(self, motion: bool) -> int:
        return int(motion is (self.motion_active is MotionActive.HIGH))


# ----------------------------------------------------------------------------- gpio


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class Pull(StrEnum):
    NONE = "none"
    UP = "up"
    DOWN = "down"


class Edge(StrEnum):
    NONE = "none"
    RISING = "rising"
    FALLING = "falling"
    BOTH = "both"


class LineConfig(msgspec.Struct, frozen=True):
    direction: Direction = Direction.IN
    pull: Pull = Pull.NONE
    edge: Edge = Edge.NONE
    debounce_ms: float = 50.0


class EdgeEvent(msgspec.Struct, frozen=True):
    """A debounced edge on an input line; ``kind`` is RISING or FALLING."""

    line: int
    kind: Edge
    at: float  # seconds since the epoch


class LineState(msgspec.Struct, frozen=True):
    line: int
    config: LineConfig
    value: int
    pwm_frequency_hz: float | None = None
    pwm_duty_pct: float | None = None


class Gpio(Protocol):
    """GPIO lines by offset. Unknown or unconfigured lines raise ``NotFoundError``."""

    def configure_line(self, line: int, config: LineConfig) -> None: ...

    def read_line(self, line: int) -> int: ...

    def write_line(self, line: int, value: int) -> None:
        """Drive an output line to 0 or 1; an input line raises ``ConflictError``."""
        ...

    def set_pwm(self, line: int, frequency_hz: float, duty_pct: float) -> None:
        """Hardware PWM on a line; ``UnsupportedError`` where the backend has none."""
        ...

    def lines(self) -> list[LineState]: ...

    def drain_edge_events(self) -> list[EdgeEvent]:
        """Edges seen since the last call, oldest first (never blocks)."""
        ...


# ----------------------------------------------------------------------------- simulation


class FaultKind(StrEnum):
    """Faults the simulator can be told to have (and ``POST /v1/sim/faults`` accepts)."""

    FAN_FAILURE = "fan_failure"  # params: mode "stalled" | "degraded", rpm_factor 0-1
    HEAT_SPIKE = "heat_spike"  # params: watts (extra heat), duration_s
    AMBIENT_CHANGE = "ambient_change"  # params: celsius
    MAIN_POWER_LOSS = "main_power_loss"
    VOLTAGE_SAG = "voltage_sag"  # params: voltage_v
    BATTERY_FAILURE = "battery_failure"
    CASE_OPEN = "case_open"
    MOTION = "motion"  # params: duration_s
    SENSOR_FAILURE = "sensor_failure"  # params: sensor cpu|gpu|ambient, mode stuck|range|missing
    # slow faults (sim/wear.py), until cleared; params: rate_pct_per_day, onset_in_s
    FAN_WEAR = "fan_wear"
    DUST = "dust"
    BATTERY_FADE = "battery_fade"
    EMMC_WEAR = "emmc_wear"


class Fault(msgspec.Struct, frozen=True):
    kind: FaultKind
    params: Mapping[str, Any] = msgspec.field(default_factory=dict)
    duration_s: float | None = None  # None: until cleared


class SimControls(Protocol):
    """What a simulated board lets tests, demos and ``/v1/sim`` drive."""

    def set_ambient(self, celsius: float) -> None: ...

    def set_load(self, percent: float) -> None:
        """The background load, 0-100 % of the board (the simulated fleet's pattern)."""
        ...

    def set_job_load(self, percent: float) -> None:
        """The load of the agent's ``sim_load`` jobs, 0-100 %, on top of the background
        load: the board works at min(100, background + jobs)."""
        ...

    def inject_fault(self, fault: Fault) -> None:
        """Start a fault; ``InvalidRequestError`` for parameters out of range."""
        ...

    def clear_faults(self, kind: FaultKind | None = None) -> int:
        """End all faults (or those of one kind); returns how many ended."""
        ...

    def active_faults(self) -> list[Fault]: ...

    def status(self) -> dict[str, Any]:
        """Physics state for humans: load, ambient, shutdown requests, battery energy."""
        ...


# ----------------------------------------------------------------------------- board


class Board(Protocol):
    """One board's hardware, as the core sees it."""

    name: str
    model: str
    backend: str  # "sim" or "linux"
    blocking_io: bool
    thermal: ThermalSensors
    fan: Fan
    throttle: Throttle
    power: Power
    storage: Storage
    tamper: Tamper
    gpio: Gpio
    sim: SimControls | None  # only simulated boards

    def close(self) -> None: ...
