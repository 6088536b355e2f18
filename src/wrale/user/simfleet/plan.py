"""What a simulated fleet is made of: each board's hardware, place and conditions.

Pure and deterministic (a seed decides everything): ``plan_fleet`` lays N boards out in
rooms and racks, mixes board kinds (Pi 5 with a UPS HAT, Pi 4, CM4 on solar…), sets the
ambient temperature by room, rack and height, and gives each board a load pattern.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from wrale.shared.config import SimSettings
from wrale.shared.policy import FanProfile


@dataclass(frozen=True, slots=True)
class Hardware:
    """A kind of board in the mix (``key`` is the registry's ``hardware_profile``)."""

    key: str
    model: str
    battery_wh: float
    solar_peak_w: float = 0.0
    fan_profile: FanProfile = FanProfile.BALANCE
    capabilities: tuple[str, ...] = ("sim", "fan", "battery")
    # an air sensor (a BME280 breakout) for the room: a bare board reports no ambient
    ambient_sensor: bool = True


PI5_UPS = Hardware("pi5-ups", "Raspberry Pi 5 Model B (simulated)", battery_wh=20.0)
PI5_UPS_MINI = Hardware(
    "pi5-ups-mini",
    "Raspberry Pi 5 Model B (simulated)",
    battery_wh=1.0,
    fan_profile=FanProfile.COOL,
    ambient_sensor=False,
)
PI4_UPS = Hardware(
    "pi4-ups", "Raspberry Pi 4 Model B (simulated)", battery_wh=10.0, fan_profile=FanProfile.QUIET
)
CM4_SOLAR = Hardware(
    "cm4-solar",
    "Compute Module 4 (simulated)",
    battery_wh=5.0,
    solar_peak_w=12.0,
    fan_profile=FanProfile.COOL,
    capabilities=("sim", "fan", "battery", "solar"),
)
# The mix, by position in a rack: mostly Pi 5s on a UPS HAT, a few older or odd ones;
# all but the mini carry an air sensor, so a rack's heat shows on most of its boards.
RACK_MIX: tuple[Hardware, ...] = (
    PI5_UPS,
    PI5_UPS,
    PI4_UPS,
    PI5_UPS,
    CM4_SOLAR,
    PI5_UPS,
    PI4_UPS,
    PI5_UPS_MINI,
)


@dataclass(frozen=True, slots=True)
class LoadPattern:
    """CPU load over time: a slow wave around ``base_pct`` (a daily-ish rhythm, compressed)."""

    base_pct: float
    swing_pct: float = 0.0
    period_s: float = 600.0
    phase_s: float = 0.0

    def at(self, t_s: float) -> float:
        wave = math.sin(2 * math.pi * (t_s + self.phase_s) / self.period_s)
        return round(min(100.0, max(0.0, self.base_pct + self.swing_pct * wave)), 1)


@dataclass(frozen=True, slots=True)
class Layout:
    """How boards fill racks and racks fill rooms; ambient by room, aisle and height."""

    boards_per_rack: int = 8
    racks_per_room: int = 2
    first_slot_u: int = 4
    rack_units: int = 42
    room_ambient_c: tuple[float, ...] = (22.0, 25.0, 20.0, 27.0)
    rack_step_c: float = 1.5  # each rack further down the row sits in warmer air
    slot_step_c: float = 0.15  # warm air rises: higher slots run warmer


@dataclass(frozen=True, slots=True)
class BoardSpec:
    index: int
    name: str
    hardware: Hardware
    room: str  # "A"
    rack: str  # "A1"
    slot_u: int
    ambient_c: float
    load: LoadPattern
    seed: int
    battery_pct: float = 100.0
    tags: tuple[str, ...] = field(default=())

    @property
    def room_name(self) -> str:
        return f"Room {self.room}"

    @property
    def rack_name(self) -> str:
        return f"Rack {self.rack}"

    def sim_settings(self, *, noise: bool = True) -> SimSettings:
        return SimSettings(
            seed=self.seed,
            model=self.hardware.model,
            ambient_c=self.ambient_c,
            load_pct=self.load.at(0.0),
            battery_wh=self.hardware.battery_wh,
            battery_pct=self.battery_pct,
            solar_peak_w=self.hardware.solar_peak_w,
            noise=noise,
            ambient_sensor=self.hardware.ambient_sensor,
        )


def room_label(i: int) -> str:
    """A, B, … Z, then R27, R28, …"""
    return chr(ord("A") + i) if i < 26 else f"R{i + 1}"


DEFAULT_LAYOUT = Layout()


def plan_fleet(
    n: int, *, prefix: str = "sim", layout: Layout = DEFAULT_LAYOUT, seed: int = 0
) -> list[BoardSpec]:
    """``n`` boards, rack by rack, room by room; the same arguments give the same fleet."""
    if n < 0:
        raise ValueError("n must be 0 or more")
    if not 1 <= layout.boards_per_rack <= layout.rack_units - layout.first_slot_u + 1:
        raise ValueError("boards_per_rack must fit in the rack")
    specs = []
    for i in range(n):
        rng = random.Random(seed * 1_000_003 + i)
        rack_no, pos = divmod(i, layout.boards_per_rack)
        room_no, rack_in_room = divmod(rack_no, layout.racks_per_room)
        room = room_label(room_no)
        rack = f"{room}{rack_in_room + 1}"
        slot = layout.first_slot_u + pos
        hw = RACK_MIX[pos % len(RACK_MIX)]
        ambient = (
            layout.room_ambient_c[room_no % len(layout.room_ambient_c)]
            + rack_in_room * layout.rack_step_c
            + pos * layout.slot_step_c
            + rng.uniform(-0.5, 0.5)
        )
        load = LoadPattern(
            base_pct=round(rng.uniform(10, 55), 1),
            swing_pct=round(rng.uniform(5, 30), 1),
            period_s=round(rng.uniform(300, 1800)),
            phase_s=round(rng.uniform(0, 1800)),
        )
        battery_pct = round(rng.uniform(30, 36), 1) if hw is PI5_UPS_MINI else 100.0
        specs.append(
            BoardSpec(
                index=i,
                name=f"{prefix}-{rack.lower()}-u{slot:02d}",
                hardware=hw,
                room=room,
                rack=rack,
                slot_u=slot,
                ambient_c=round(ambient, 2),
                load=load,
                seed=seed * 1_000_003 + i,
                battery_pct=battery_pct,
                tags=("sim", f"room-{room.lower()}", f"rack-{rack.lower()}", hw.key),
            )
        )
    return specs


def racks_by_room(specs: list[BoardSpec]) -> dict[str, list[str]]:
    """Rooms and their racks in the order the plan fills them."""
    out: dict[str, list[str]] = {}
    for s in specs:
        racks = out.setdefault(s.room, [])
        if s.rack not in racks:
            racks.append(s.rack)
    return out
