"""Wear detection on simulated boards over 46 simulated days, in simulated time.

The scenario was set from the physics and the issue's text before any result was seen:

* One site, racks R1-R4 of 7 simulated Pi 5 each (28 boards): Active Cooler, a UPS HAT of
  20 Wh, an air sensor on a HAT (it reads the air plus 0.3 °C per watt of the board, as the
  simulator's), an eMMC. Three boards get each slow fault of ``wrale.metal.hw.sim.wear``,
  one per rack in turn (fan wear, dust, battery fade on boards 0-8, eMMC wear on 9-11);
  the 16 others stay healthy.
* Slow faults, drawn from the seed (``seeded``): onset uniformly between day 8 and day 16;
  fan wear 1.5-3 % of the RPM at a duty lost per day; dust 1.5-3 % of the heat sink's
  resistance to the air gained per day; battery fade 0.3-0.6 % of the design capacity lost
  per day; eMMC wear 2.5-4 % of the eMMC's life used per day. Every eMMC has also lived
  before: 30-50 % of its life used at day 0, 0.02-0.05 % more a day (drawn per board from
  its own seed); it reports as the kernel would (``life_time``'s band: 10 % wide, its upper
  bound; ``pre_eol_info``), once a day, its worst of the day.
* The room's air: 22 °C, +3 °C at 15:00 and -3 °C at 03:00 (a sine), a weather offset per
  day drawn N(0, 1.5) °C, +1 °C per rack down the row, ±0.5 °C per board. Load per board:
  15 % at night to 70 % at 14:00 (a sine) plus ±15 % per sample, uniformly.
* One sample per board every 10 simulated minutes. The heat sink's time constant is about a
  minute, so each sample is the board's steady state for that sample's load, air and fan:
  the fan duty from metald's Pi 5 fan curve with its 5 °C hysteresis (``control.curve_level``)
  iterated with the steady state (``Cooling.steady_c`` of the simulator, the wear applied
  with ``wear.dusty``), the RPM of ``sim.fan`` times the wear's factor, the firmware's
  throttling from 80 °C (``firmware_freq_pct``) on the draw (``demand_w``). Sensor noise as
  the simulator's: σ 0.08 °C on each temperature, 0.5 % on the RPM.
* The central keeps hourly rollups (means of the hour's samples: die, air, power, duty, RPM;
  hours with throttling) and reads them as daily aggregates: the fan's days (hours driven at
  20 % or more, as ``recommendation_inputs.fan_days``), the thermal resistance per day and
  band of 400 RPM, throttling per day, the eMMC's day.
* Battery: each UPS runs a battery test at 03:00 every day: 60 minutes on battery, from
  full; the capacity measured across the discharge is the energy drawn over the drop of
  the battery percentage, which the HAT reports in whole percents; state of health = that
  capacity over the design 20 Wh.
* At each simulated midnight the pure detection (``wrale.fleet.brain.decisions.wear``,
  default policy) runs on every board's days so far. ``maintenance.detect_days.<kind>``:
  the most days from onset to the first flag of the right kind among that kind's boards
  (a board never flagged counts the days it was watched after its onset, and
  ``maintenance.missed`` counts it); ``maintenance.false_positives``: healthy boards flagged
  at least once over the 46 days; ``maintenance.misattributed``: worn boards flagged with a
  kind they do not have.

Run alone: ``python bench/maintenance_bench.py`` (``make bench`` runs it with the others).
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import Figure
from wrale.fleet.brain.decisions.analysis import FanDay
from wrale.fleet.brain.decisions.wear import (
    BATTERY_FADE,
    DUST,
    EMMC,
    FAN_WEAR,
    BatteryDay,
    BoardHistory,
    EmmcDay,
    EventDay,
    ThermalDay,
    board_wear,
)
from wrale.metal.core import control
from wrale.metal.hw.sim.fan import MAX_RPM, MIN_SPIN_DUTY_PCT, RPM_NOISE_FRACTION
from wrale.metal.hw.sim.thermal import ACTIVE_COOLER, AMBIENT_HAT_C_PER_W, demand_w
from wrale.metal.hw.sim.throttle import firmware_freq_pct
from wrale.metal.hw.sim.wear import DAY_S, Wear, WearKind, dusty, emmc_reading, seeded, wear_at
from wrale.shared.policy import ThermalPolicy

SEED = int(os.environ.get("BENCH_MAINTENANCE_SEED", "0"))
DAYS = 46
SAMPLE_S = 600.0
RACKS, PER_RACK = ("R1", "R2", "R3", "R4"), 7
DESIGN_WH = 20.0
TEST_HOUR, TEST_S = 3, 3600.0
FAN_DRIVEN_PCT = 20.0  # as the central's fan days
RPM_BAND = 400.0
SENSOR_SIGMA_C = 0.08
POLICY = ThermalPolicy()
CURVE = control.profile_curve(POLICY)
RATES = {
    WearKind.FAN_WEAR: (1.5, 3.0),
    WearKind.DUST: (1.5, 3.0),
    WearKind.BATTERY_FADE: (0.3, 0.6),
    WearKind.EMMC_WEAR: (2.5, 4.0),
}
EMMC_PAST_PCT, EMMC_AGEING = (30.0, 50.0), (0.02, 0.05)  # life used at day 0, % a day
# the trend's kind for each slow fault
DETECTED_AS = {k.value: k.value for k in WearKind} | {WearKind.EMMC_WEAR.value: EMMC}


@dataclass
class Board:
    device: str
    rack: str
    air_offset_c: float
    wears: list[Wear]
    level: int = -1
    hours: dict[int, list[tuple[float, ...]]] = field(default_factory=lambda: defaultdict(list))
    fans: list[FanDay] = field(default_factory=list)
    thermal: list[ThermalDay] = field(default_factory=list)
    battery: list[BatteryDay] = field(default_factory=list)
    events: list[EventDay] = field(default_factory=list)
    emmc: list[EmmcDay] = field(default_factory=list)


Sample = tuple[float, float, float, float, float, float]


def _steady(b: Board, t: float, air_c: float, load: float, rng: random.Random) -> Sample:
    """One sample: (die °C read, air °C read, watts, duty %, rpm read, throttled)."""
    worn = wear_at(b.wears, t)
    cooling = dusty(ACTIVE_COOLER, worn.sink_resistance_factor)
    die, freq, duty, rpm, watts = air_c, 100.0, 0.0, 0.0, 0.0
    for _ in range(4):
        b.level = control.curve_level(die, b.level, CURVE, POLICY.hysteresis_c)
        duty = control.pwm_to_pct(CURVE[b.level].pwm) if b.level >= 0 else 0.0
        rpm = MAX_RPM * duty / 100.0 * worn.rpm_factor if duty >= MIN_SPIN_DUTY_PCT else 0.0
        freq = firmware_freq_pct(die)
        watts = demand_w(load, freq)
        die, _sink = cooling.steady_c(air_c, watts, rpm / MAX_RPM)
    die_read = die + rng.gauss(0, SENSOR_SIGMA_C)
    air_read = air_c + AMBIENT_HAT_C_PER_W * watts + rng.gauss(0, SENSOR_SIGMA_C)
    rpm_read = rpm * (1 + rng.gauss(0, RPM_NOISE_FRACTION))
    return die_read, air_read, watts, duty, rpm_read, float(freq < 100.0)


def _close_day(b: Board, day: int) -> None:
    """The day's hourly rollups as the central's daily aggregates."""
    start = day * DAY_S
    driven, bands, throttled = [], defaultdict(list), 0
    for hour in sorted(b.hours):
        rows = b.hours[hour]
        die, air, watts, duty, rpm, thr = (sum(c) / len(rows) for c in zip(*rows, strict=True))
        if duty >= FAN_DRIVEN_PCT:
            driven.append((duty, rpm))
        if watts > 0:
            bands[int(rpm // RPM_BAND)].append((die - air) / watts)
        throttled += thr > 0
    if driven:
        n = len(driven)
        b.fans.append(
            FanDay(start, n, sum(d for d, _ in driven) / n, sum(r for _, r in driven) / n)
        )
    for band, values in bands.items():
        b.thermal.append(ThermalDay(start, band, len(values), sum(values) / len(values)))
    b.events.append(EventDay(start, throttled=throttled))
    b.hours.clear()
    worst = emmc_reading(wear_at(b.wears, start + DAY_S).emmc_used_pct)  # it only grows
    if worst.emmc_life_used_pct is not None:
        b.emmc.append(EmmcDay(start, worst.emmc_life_used_pct, worst.emmc_pre_eol))


def _emmc_past(i: int) -> Wear:
    """The eMMC's life before day 0: a slow wear since long before, from its own seed."""
    rng = random.Random(f"emmc-past:{SEED}:{i}")
    rate = rng.uniform(*EMMC_AGEING)
    past_days = rng.uniform(*EMMC_PAST_PCT) / rate
    return Wear(WearKind.EMMC_WEAR, -past_days * DAY_S, rate)


def _battery_test(b: Board, day: int, watts: float) -> None:
    """A 60-minute discharge from full; the HAT reports whole percents."""
    capacity = DESIGN_WH * wear_at(b.wears, day * DAY_S + TEST_HOUR * 3600).capacity_factor
    drawn_wh = watts * TEST_S / 3600.0
    drop_pct = round(100.0) - round(100.0 * (capacity - drawn_wh) / capacity)
    if drop_pct > 0:
        b.battery.append(BatteryDay(day * DAY_S, drawn_wh / (drop_pct / 100.0) / DESIGN_WH))


def _room(rng: random.Random) -> tuple[list[Board], dict[str, tuple[str, float]]]:
    boards, onsets = [], {}
    kinds = [WearKind.FAN_WEAR, WearKind.DUST, WearKind.BATTERY_FADE] * 3
    kinds += [WearKind.EMMC_WEAR] * 3
    for i in range(len(RACKS) * PER_RACK):
        rack = RACKS[i % len(RACKS)]  # the worn boards fall one per rack in turn
        device = f"{rack}-b{i // len(RACKS):02d}"
        wears = [_emmc_past(i)]
        if i < len(kinds):
            w = seeded(
                kinds[i], SEED * 100 + i, onset_days=(8, 16), rate_pct_per_day=RATES[kinds[i]]
            )
            wears.append(w)
            onsets[device] = (DETECTED_AS[kinds[i].value], w.onset_s / DAY_S)
        offset = RACKS.index(rack) * 1.0 + rng.uniform(-0.5, 0.5)
        boards.append(Board(device, rack, offset, wears))
    return boards, onsets


def simulate() -> dict[str, float]:
    rng = random.Random(SEED)
    boards, onsets = _room(rng)
    first_flag: dict[str, dict[str, float]] = defaultdict(dict)
    per_day = int(DAY_S // SAMPLE_S)
    for day in range(DAYS):
        weather = rng.gauss(0, 1.5)
        for k in range(per_day):
            t = day * DAY_S + k * SAMPLE_S
            hour = (t % DAY_S) / 3600.0
            air = 22.0 + 3.0 * math.sin((hour - 9.0) / 24.0 * 2 * math.pi) + weather
            base_load = 42.5 + 27.5 * math.sin((hour - 8.0) / 24.0 * 2 * math.pi)
            for b in boards:
                load = min(100.0, max(0.0, base_load + rng.uniform(-15, 15)))
                sample = _steady(b, t, air + b.air_offset_c, load, rng)
                b.hours[int(hour)].append(sample)
                if k * SAMPLE_S == TEST_HOUR * 3600:
                    _battery_test(b, day, sample[2])
        for b in boards:
            _close_day(b, day)
            history = BoardHistory(
                b.device, "site-1", b.rack, b.fans, b.thermal, b.battery, b.events, emmc=b.emmc
            )
            for tr in board_wear(history).worn:
                first_flag[b.device].setdefault(tr.kind, day + 1.0)  # decided at midnight
    return _figures(boards, onsets, first_flag)


def _figures(
    boards: list[Board],
    onsets: dict[str, tuple[str, float]],
    first_flag: dict[str, dict[str, float]],
) -> dict[str, float]:
    detect: dict[str, list[float]] = defaultdict(list)
    missed = misattributed = false_pos = 0
    for b in boards:
        flags = first_flag.get(b.device, {})
        if b.device not in onsets:
            false_pos += bool(flags)
            continue
        kind, onset = onsets[b.device]
        if kind in flags:
            detect[kind].append(flags[kind] - onset)
        else:
            missed += 1
            detect[kind].append(DAYS - onset)
        misattributed += any(k != kind for k in flags)
        print(f"  {b.device}: {kind} from day {onset:.1f}, flags {flags}")
    out = {f"detect_days.{k}": max(detect[k]) for k in (FAN_WEAR, DUST, BATTERY_FADE, EMMC)}
    out.update(missed=missed, misattributed=misattributed, false_positives=false_pos)
    out["healthy_boards"] = len(boards) - len(onsets)
    return out


def run() -> list[Figure]:
    started = time.perf_counter()
    got = simulate()
    wall = time.perf_counter() - started
    return [
        Figure("maintenance.detect_days.fan_wear", got[f"detect_days.{FAN_WEAR}"], "days"),
        Figure("maintenance.detect_days.dust", got[f"detect_days.{DUST}"], "days"),
        Figure("maintenance.detect_days.battery_fade", got[f"detect_days.{BATTERY_FADE}"], "days"),
        Figure("maintenance.detect_days.emmc_wear", got[f"detect_days.{EMMC}"], "days"),
        Figure("maintenance.missed", got["missed"], "boards", "0"),
        Figure("maintenance.misattributed", got["misattributed"], "boards", "0"),
        Figure(
            "maintenance.false_positives",
            got["false_positives"],
            f"of {got['healthy_boards']:.0f} healthy boards over {DAYS} days",
            "0",
        ),
        Figure("maintenance.wall_s", wall, "s", "< 60"),
    ]


if __name__ == "__main__":
    for figure in run():
        print(figure.line())
