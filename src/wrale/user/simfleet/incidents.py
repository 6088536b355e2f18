"""The demo's scripted incidents: a schedule (pure) and its executor (the boards' sim controls).

``demo_schedule`` picks its targets from the fleet plan — a fan that dies in one board, a heat
wave in one rack, a main power loss in one room (batteries take over, then main returns), a
case opened — at times relative to the start, over the first few minutes. Times and
durations are real seconds; the executor converts durations to the boards' (sped-up) time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from msgspec.structs import replace

from wrale.metal.hw.base import Fault, FaultKind, SimControls
from wrale.shared.clock import Clock
from wrale.shared.errors import WraleError
from wrale.user.simfleet.plan import BoardSpec, racks_by_room

log = logging.getLogger(__name__)

HEAT_WAVE_C = 41.0  # above the default ambient warning (40 °C)
HOT_LOAD_PCT = 95.0  # the board whose fan dies is busy: it heats up fast


@dataclass(frozen=True, slots=True)
class Step:
    """At ``at_s`` seconds after the start, do one thing to ``boards``.

    One of: inject ``fault`` (its ``duration_s`` in real seconds, None = until cleared),
    ``clear`` faults of a kind, or pin the load to ``load_pct`` (``unpin_load`` gives the
    boards back to their load pattern)."""

    at_s: float
    title: str
    boards: tuple[str, ...]
    fault: Fault | None = None
    clear: FaultKind | None = None
    load_pct: float | None = None
    unpin_load: bool = False


def demo_schedule(specs: Sequence[BoardSpec], *, start_s: float = 20.0) -> list[Step]:
    """The demo's incidents for this fleet (an empty list for an empty fleet)."""
    if not specs:
        return []
    rooms = racks_by_room(list(specs))
    room_names = list(rooms)
    all_racks = [r for racks in rooms.values() for r in racks]
    first_rack = all_racks[0]
    hot_rack = all_racks[1] if len(all_racks) > 1 else first_rack
    dark_room = room_names[-1] if len(room_names) > 1 else room_names[0]
    in_rack = {r: [s for s in specs if s.rack == r] for r in all_racks}

    fan_board = in_rack[first_rack][min(1, len(in_rack[first_rack]) - 1)].name
    tamper_rack = in_rack[all_racks[-1]]
    case_board = tamper_rack[len(tamper_rack) // 2].name
    heat_boards = tuple(s.name for s in in_rack[hot_rack])
    dark_boards = tuple(s.name for s in specs if s.room == dark_room)
    t = start_s
    return [
        Step(t, f"{fan_board}: busy ({HOT_LOAD_PCT:.0f} % load)", (fan_board,), load_pct=95.0),
        Step(
            t + 10,
            f"{fan_board}: its fan stalls (it will heat up, throttle, and raise alerts)",
            (fan_board,),
            fault=Fault(FaultKind.FAN_FAILURE, {"mode": "stalled"}),
        ),
        Step(
            t + 40,
            f"heat wave in Rack {hot_rack}: ambient {HEAT_WAVE_C:.0f} °C for 3 minutes",
            heat_boards,
            fault=Fault(FaultKind.AMBIENT_CHANGE, {"celsius": HEAT_WAVE_C}, duration_s=180.0),
        ),
        Step(
            t + 70,
            f"main power lost in Room {dark_room}: batteries take over for 2 minutes",
            dark_boards,
            fault=Fault(FaultKind.MAIN_POWER_LOSS, duration_s=120.0),
        ),
        Step(
            t + 130,
            f"{case_board}: someone opens the case (tamper) for 30 s",
            (case_board,),
            fault=Fault(FaultKind.CASE_OPEN, duration_s=30.0),
        ),
        Step(
            t + 250,
            f"{fan_board}: fan replaced, back to its usual load",
            (fan_board,),
            clear=FaultKind.FAN_FAILURE,
            unpin_load=True,
        ),
    ]


class FleetControls(Protocol):
    """What the executor needs of a fleet: each board's sim controls and its load pin."""

    def sim_controls(self, name: str) -> SimControls | None: ...

    def pin_load(self, name: str, percent: float | None) -> None: ...


def apply_step(step: Step, fleet: FleetControls, *, speed: float = 1.0) -> int:
    """Do ``step`` to each of its boards now; returns on how many it worked.

    A board that is missing or refuses (e.g. a fault it cannot have) is logged and skipped.
    """
    done = 0
    for name in step.boards:
        sim = fleet.sim_controls(name)
        if sim is None:
            log.warning("incident %r: no simulated board %s", step.title, name)
            continue
        try:
            if step.load_pct is not None:
                fleet.pin_load(name, step.load_pct)
            if step.unpin_load:
                fleet.pin_load(name, None)
            if step.fault is not None:
                fault = step.fault
                if fault.duration_s is not None:
                    fault = replace(fault, duration_s=fault.duration_s * speed)
                sim.inject_fault(fault)
            if step.clear is not None:
                sim.clear_faults(step.clear)
        except WraleError as exc:
            log.warning("incident %r on %s: %s", step.title, name, exc.message)
            continue
        done += 1
    return done


async def run_schedule(
    steps: Sequence[Step],
    fleet: FleetControls,
    clock: Clock,
    *,
    speed: float = 1.0,
    is_stopped: Callable[[], bool] = lambda: False,
    on_step: Callable[[Step, int], None] | None = None,
) -> int:
    """Run the steps at their times on ``clock`` (a real-time clock in the demo); returns
    how many ran before the end or the stop."""
    t0 = clock.monotonic()
    ran = 0
    for step in sorted(steps, key=lambda s: s.at_s):
        while not is_stopped():
            left = t0 + step.at_s - clock.monotonic()
            if left <= 0:
                break
            await clock.sleep(min(left, 0.5))
        if is_stopped():
            break
        done = apply_step(step, fleet, speed=speed)
        ran += 1
        if on_step is not None:
            on_step(step, done)
    return ran
