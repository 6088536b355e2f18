"""Slow faults of the simulator: a fan that wears, a heat sink that gathers dust, a battery
that fades. Each starts at an onset (sim time, seconds) and worsens linearly at a rate per
day until a floor; all of it is a pure function of time, so a run is deterministic.

- ``fan_wear``: the RPM the fan reaches at a given duty falls ``rate_pct_per_day`` % of its
  new speed per day (a worn bearing, fluff on the blades);
- ``dust``: the heat sink's resistance to the air (passive and with the fan) rises
  ``rate_pct_per_day`` % per day (clogged fins): the die runs hotter per watt at equal airflow;
- ``battery_fade``: the battery's full capacity falls ``rate_pct_per_day`` % of its design
  capacity per day (the board reports it as ``battery_health_pct``, as a gauge's
  ``charge_full / charge_full_design``);
- ``emmc_wear``: the board boots from an eMMC whose life used grows ``rate_pct_per_day`` %
  per day from 0 at the onset; ``SimStorage`` reports it as the kernel's ``life_time`` band
  would (the band's upper bound: 10 % in the first tenth of the life, 100 % past it) and a
  ``pre_eol_info`` of 2 from 80 % used and 3 from 90 % (a real device counts its reserved
  blocks for that; the simulator ties both to one wear). A board without this wear has no
  eMMC (it boots from an SD card).

``SimBoard.add_wear`` applies them, re-evaluated every simulated ``WEAR_STEP_S`` (wear is
slow; between updates the fan and the heat sink are constant, so the exact exponential
steps of the board's physics stay exact). ``seeded`` draws an onset and a rate from a seed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from enum import StrEnum

import msgspec

from wrale.metal.hw.base import StorageReading
from wrale.metal.hw.sim.checks import check_number
from wrale.metal.hw.sim.fan import SimFan
from wrale.metal.hw.sim.power import SimPower
from wrale.metal.hw.sim.runtime import Runtime
from wrale.metal.hw.sim.thermal import Cooling, SimThermal
from wrale.shared.errors import InvalidRequestError

DAY_S = 86400.0
WEAR_STEP_S = 3600.0  # the wear in force is updated once per simulated hour
MAX_RATE_PCT_PER_DAY = 50.0
MAX_ONSET_S = 10 * 365 * DAY_S
FLOOR = 0.05  # a worn fan still turns at 5 %, a faded battery keeps 5 %; dust stops at 20x
EMMC_MAX_USED_PCT = 120.0  # past its estimated life (0x0B) the eMMC reads the same


class WearKind(StrEnum):
    FAN_WEAR = "fan_wear"
    DUST = "dust"
    BATTERY_FADE = "battery_fade"
    EMMC_WEAR = "emmc_wear"


WEAR_KINDS = frozenset(k.value for k in WearKind)


class Wear(msgspec.Struct, frozen=True):
    """One slow fault: ``kind`` from ``onset_s`` (sim monotonic seconds; may lie before the
    board's start: wear already under way) at ``rate_pct_per_day``."""

    kind: WearKind
    onset_s: float
    rate_pct_per_day: float


class WearState(msgspec.Struct, frozen=True):
    """What the active wear does at one time: multipliers of the fan's RPM at its duty, of
    the sink-to-air resistance, and of the battery's design capacity; the eMMC's life used
    in % (``None``: no eMMC)."""

    rpm_factor: float = 1.0
    sink_resistance_factor: float = 1.0
    capacity_factor: float = 1.0
    emmc_used_pct: float | None = None


HEALTHY = WearState()


def check_wear(wear: Wear) -> Wear:
    """``wear`` with its kind and numbers checked (``InvalidRequestError`` otherwise)."""
    try:
        kind = WearKind(wear.kind)
    except ValueError:
        known = ", ".join(k.value for k in WearKind)
        raise InvalidRequestError(f"unknown wear kind {wear.kind!r} (known: {known})") from None
    onset = check_number(f"{kind.value}: onset_s", wear.onset_s, -MAX_ONSET_S, MAX_ONSET_S)
    rate = check_number(
        f"{kind.value}: rate_pct_per_day", wear.rate_pct_per_day, 0.0, MAX_RATE_PCT_PER_DAY
    )
    return Wear(kind, onset, rate)


def _progress(wear: Wear, t_s: float) -> float:
    """The fraction worn at ``t_s`` (0 before the onset)."""
    days = max(0.0, (t_s - wear.onset_s) / DAY_S)
    return wear.rate_pct_per_day / 100.0 * days


def wear_at(wears: Iterable[Wear], t_s: float) -> WearState:
    """The combined wear at sim time ``t_s`` (two wears of one kind multiply)."""
    rpm, resistance, capacity = 1.0, 1.0, 1.0
    emmc: float | None = None
    for w in wears:
        worn = _progress(w, t_s)
        if w.kind is WearKind.FAN_WEAR:
            rpm *= max(FLOOR, 1.0 - worn)
        elif w.kind is WearKind.DUST:
            resistance *= min(1.0 / FLOOR, 1.0 + worn)
        elif w.kind is WearKind.EMMC_WEAR:
            emmc = min(EMMC_MAX_USED_PCT, (emmc or 0.0) + 100.0 * worn)
        else:
            capacity *= max(FLOOR, 1.0 - worn)
    return WearState(rpm, resistance, capacity, emmc)


def emmc_reading(used_pct: float | None) -> StorageReading:
    """What the kernel would show for an eMMC with ``used_pct`` of its life used: the
    ``life_time`` band's upper bound (0x01 = 0-10 % -> 10, …, 0x0B past it -> 100) and
    ``pre_eol_info`` (1 normal, 2 from 80 % used, 3 from 90 %)."""
    if used_pct is None:
        return StorageReading()
    band = min(11, int(used_pct // 10.0) + 1)
    pre_eol = 3 if used_pct >= 90.0 else 2 if used_pct >= 80.0 else 1
    return StorageReading(emmc_life_used_pct=10.0 * min(band, 10), emmc_pre_eol=pre_eol)


class SimStorage:
    """The board's storage as ``Storage``: an eMMC while an ``emmc_wear`` is on, else none."""

    def __init__(self, rt: Runtime, book: WearBook) -> None:
        self._rt, self._book = rt, book

    def read_storage(self) -> StorageReading:
        with self._rt.reading():
            return emmc_reading(self._book.state.emmc_used_pct)


def dusty(cooling: Cooling, resistance_factor: float) -> Cooling:
    """``cooling`` with its sink-to-air resistance (passive and fan) multiplied."""
    if resistance_factor == 1.0:
        return cooling
    return msgspec.structs.replace(
        cooling,
        sink_passive_w_per_k=cooling.sink_passive_w_per_k / resistance_factor,
        sink_fan_w_per_k=cooling.sink_fan_w_per_k / resistance_factor,
    )


def seeded(
    kind: WearKind,
    seed: int,
    *,
    onset_days: tuple[float, float],
    rate_pct_per_day: tuple[float, float],
) -> Wear:
    """A wear of ``kind`` with its onset (days) and rate drawn uniformly from the ranges,
    the same for the same seed."""
    rng = random.Random(f"{kind.value}:{seed}")
    onset = rng.uniform(*onset_days) * DAY_S
    rate = rng.uniform(*rate_pct_per_day)
    return check_wear(Wear(kind, onset, rate))


class WearBook:
    """A board's slow faults and the components they act on; ``apply`` sets the wear in
    force at a time and schedules the next update (``next_s``; ``inf``: none active)."""

    def __init__(self, thermal: SimThermal, fan: SimFan, power: SimPower) -> None:
        self._thermal, self._fan, self._power = thermal, fan, power
        self._cooling = thermal.cooling
        self._design_wh = power.capacity_wh
        self.wears: list[Wear] = []
        self.state = HEALTHY
        self.next_s = math.inf

    def add(self, wear: Wear, now: float) -> None:
        self.wears.append(check_wear(wear))
        self.apply(now)

    def clear(self, now: float, kind: str | None = None) -> int:
        """End the wears (of ``kind`` only if given); how many ended."""
        kept = [w for w in self.wears if kind is not None and w.kind.value != kind]
        count = len(self.wears) - len(kept)
        self.wears = kept
        self.apply(now)
        return count

    def apply(self, now: float) -> None:
        state = self.state = wear_at(self.wears, now)
        self._fan.wear_factor = state.rpm_factor
        self._thermal.cooling = dusty(self._cooling, state.sink_resistance_factor)
        if self._design_wh > 0:
            power = self._power
            power.capacity_wh = self._design_wh * state.capacity_factor
            power.energy_wh = min(power.energy_wh, power.capacity_wh)
        self.next_s = now + WEAR_STEP_S if self.wears else math.inf
