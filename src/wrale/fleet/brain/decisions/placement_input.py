"""The seam between the placement loop's service (``services/job_placement.py``, which
reads the database and applies what is chosen) and the placement decision: a job and its
eligible boards as plain values in, the boards in order of preference out.

``choose`` is pure (no I/O, no clock). The service has already applied the hard rules
(online, not in SAFE mode or a lockdown, the selector, not on battery unless allowed, one
replica of a job per board, CPU room, ``max_per_rack``), so every candidate may take the
replica; ``choose`` only orders them, and may leave some (or all) out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

SPREAD = "spread"
PHYSICAL = "physical"
STRATEGIES = (PHYSICAL, SPREAD)


@dataclass(frozen=True, slots=True)
class PlacementJob:
    """What the decision needs of a job (the stored job, as values)."""

    id: str
    name: str
    priority: int
    strategy: str
    cpu_pct: float
    watts: float
    allow_battery: bool
    max_per_rack: int | None
    restartable: bool


@dataclass(frozen=True, slots=True)
class Candidate:
    """An eligible board for one replica. ``placements`` counts the active placements of
    every job on it (including those chosen earlier in the same pass); ``cpu_pct`` the
    CPU their hints take; ``on_battery`` is None without a fresh reading."""

    device_id: str
    name: str
    rack_id: str | None
    room_id: str | None
    site_id: str | None
    placements: int
    cpu_pct: float
    on_battery: bool | None


@dataclass(frozen=True, slots=True)
class Ranked:
    """A candidate in the chosen order, with the one-line reason for the decision log."""

    candidate: Candidate
    why: str


def spread_order(candidates: Sequence[Candidate]) -> list[Ranked]:
    """Round-robin, blind to temperature, power and place: the board with the fewest
    placements first, then by name (and id), so successive replicas and jobs take the
    boards in turn."""
    ordered = sorted(candidates, key=lambda c: (c.placements, c.name, c.device_id))
    return [
        Ranked(c, f"spread: next eligible board in turn ({c.placements} placements on it)")
        for c in ordered
    ]


def choose(job: PlacementJob, candidates: Sequence[Candidate], strategy: str) -> list[Ranked]:
    """The candidates for one replica of ``job``, best first (empty: place none now).

    ``spread``: ``spread_order``. ``physical``: for now the spread order too — the
    physical scoring (thermal headroom, rack power against its budget, power source,
    spreading across racks) is written in this package and takes over here; until then
    a ``physical`` job is placed as the baseline, and its reasons say so."""
    ranked = spread_order(candidates)
    if strategy == SPREAD:
        return ranked
    return [
        Ranked(r.candidate, f"physical scoring not wired yet, placed as {r.why}") for r in ranked
    ]
