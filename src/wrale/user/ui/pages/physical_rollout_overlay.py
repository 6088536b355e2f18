"""The physical view's rollout overlay (``/physical?rollout=ID``): each board of a rollout
marked with its wave number and where it stands (waiting, in progress, passed, failed,
rolled back), from the rollout's view (its waves' states and each board's state). Read
only; the ``rollouts`` loop advances the rollout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from markupsafe import escape
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models.rollouts import Rollout
from wrale.fleet.brain.services import rollouts

# (state, legend text): the order of the legend
BOARD_STATES: tuple[tuple[str, str], ...] = (
    ("waiting", "waiting"),
    ("in_progress", "in progress"),
    ("passed", "passed"),
    ("failed", "failed"),
    ("rolled_back", "rolled back"),
)
STATE_TEXT = dict(BOARD_STATES)


def board_state(wave_state: str, device_state: str) -> str:
    """Where one board of a rollout stands, from its own state and its wave's: a board
    undone is rolled back, one whose change failed (or whose wave's gate failed) failed,
    one of a passed wave passed, one being changed or observed in progress, else (its wave
    not started, or skipped by an abort) waiting."""
    if device_state == "rolled_back" or wave_state == "rolled_back":
        return "rolled_back"
    if device_state == "failed" or wave_state == "failed":
        return "failed"
    if wave_state == "passed":
        return "passed"
    if device_state in ("applying", "applied") or wave_state == "observing":
        return "in_progress"
    return "waiting"


@dataclass(frozen=True, slots=True)
class BoardWave:
    """One board's mark: its wave (1, 2, …) and where it stands (a ``BOARD_STATES`` key)."""

    wave: int
    state: str

    @property
    def text(self) -> str:
        return f"wave {self.wave}, {STATE_TEXT.get(self.state, self.state)}"


@dataclass(frozen=True, slots=True)
class WaveLine:
    """A wave in the legend: its number, state and board count."""

    number: int
    state: str
    boards: int


@dataclass(frozen=True, slots=True)
class RolloutMarks:
    """One rollout's boards: device id → its mark; its waves for the legend; how many of
    its boards are in each state."""

    rollout: Rollout
    boards: dict[str, BoardWave]
    waves: list[WaveLine]
    counts: dict[str, int]


def marks_from_view(view: Mapping[str, Any]) -> tuple[dict[str, BoardWave], list[WaveLine]]:
    """The marks and legend lines of a rollout's view (``rollouts.rollout_view`` with its
    waves and devices)."""
    boards: dict[str, BoardWave] = {}
    lines: list[WaveLine] = []
    for w in view.get("waves") or []:
        number = int(w["index"]) + 1
        states: Mapping[str, Mapping[str, Any]] = w.get("device_states") or {}
        for device_id in w.get("devices") or []:
            device_state = str(states.get(device_id, {}).get("state") or "pending")
            boards[str(device_id)] = BoardWave(number, board_state(str(w["state"]), device_state))
        lines.append(WaveLine(number, str(w["state"]), len(w.get("devices") or [])))
    return boards, lines


async def rollout_marks(session: AsyncSession, tenant_id: str, rollout_id: str) -> RolloutMarks:
    """The boards of the rollout with their wave and state; another organisation's
    rollout or a malformed id is not found (404)."""
    r = await rollouts.get_rollout(session, tenant_id, rollout_id)
    waves = await rollouts.waves_of(session, r.id)
    devices = await rollouts.devices_of(session, r.id)
    boards, lines = marks_from_view(rollouts.rollout_view(r, waves, devices))
    counts = {key: 0 for key, _ in BOARD_STATES}
    for bw in boards.values():
        counts[bw.state] = counts.get(bw.state, 0) + 1
    return RolloutMarks(r, boards, lines, counts)


def wave_attrs(bw: BoardWave) -> str:
    """The attributes a marked board's ``<a>`` gains (its classes continue the class)."""
    state = escape(bw.state)
    return f' wave-on ws-{state}" data-wave="{bw.wave}" data-state="{state}'


def wave_mark_svg(bw: BoardWave, cx: float, cy: float) -> str:
    """The marker drawn left of a board: its wave number in a disc coloured by state."""
    return (
        f'<g class="wave-mark"><circle cx="{cx:g}" cy="{cy:g}" r="6"/>'
        f'<text x="{cx:g}" y="{cy + 3:g}">{bw.wave}</text></g>'
    )
