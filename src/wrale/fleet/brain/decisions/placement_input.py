"""The seam between the placement loop's service (``services/job_placement.py``, which
reads the database and applies what is chosen) and the placement decision: a job and its
eligible boards as plain values in, the boards in order of preference out.

``choose`` is pure (no I/O, no clock). The service has already applied the hard rules
(online, not in SAFE mode or a lockdown, the selector, not on battery unless allowed, one
replica of a job per board, CPU room, ``max_per_rack``), so every candidate may take the
replica; ``choose`` only orders them, and may leave some (or all) out. ``physical`` asks
``decisions.placement.place`` with the period's fleet view for the one best candidate;
``spread`` is the round-robin baseline.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from wrale.fleet.brain.decisions.placement import Ledger, place, rack_air_c, score_board
from wrale.fleet.brain.decisions.view import FleetView, Inputs, JobSpec

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
    inputs: Inputs = field(default_factory=dict)


def spread_order(candidates: Sequence[Candidate]) -> list[Ranked]:
    """Round-robin, blind to temperature, power and place: the board with the fewest
    placements first, then by name (and id), so successive replicas and jobs take the
    boards in turn."""
    ordered = sorted(candidates, key=lambda c: (c.placements, c.name, c.device_id))
    return [
        Ranked(c, f"spread: next eligible board in turn ({c.placements} placements on it)")
        for c in ordered
    ]


def job_spec(job: PlacementJob, candidates: Sequence[Candidate]) -> JobSpec:
    """The job as ``decisions.placement`` sees it, limited to the candidates."""
    return JobSpec(
        id=job.id,
        priority=job.priority,
        cpu_pct=job.cpu_pct,
        watts=job.watts,
        restartable=job.restartable,
        max_per_rack=job.max_per_rack,
        allow_battery=job.allow_battery,
        strategy=PHYSICAL,
        devices=frozenset(c.device_id for c in candidates),
    )


def physical_order(
    job: PlacementJob, candidates: Sequence[Candidate], view: FleetView
) -> list[Ranked]:
    """The best candidate for one replica by the physical score (empty: none is fit)."""
    by_id = {c.device_id: c for c in candidates}
    return [
        Ranked(by_id[a.device_id], a.reason, a.inputs)
        for a in place(job_spec(job, candidates), 1, view)
        if a.device_id in by_id
    ]


def physical_refusals(
    job: PlacementJob, candidates: Sequence[Candidate], view: FleetView
) -> Counter[str]:
    """Why the physical score took none of the candidates, counted by reason."""
    spec, ledger, air = job_spec(job, candidates), Ledger(), rack_air_c(view)
    out: Counter[str] = Counter()
    for c in candidates:
        board = view.board(c.device_id)
        got = (
            "not in the fleet view"
            if board is None
            else score_board(board, spec, view, ledger, air)
        )
        if isinstance(got, str):
            out[got] += 1
    return out


def choose(
    job: PlacementJob,
    candidates: Sequence[Candidate],
    strategy: str,
    view: FleetView | None = None,
) -> list[Ranked]:
    """The candidates for one replica of ``job``, best first (empty: place none now).

    ``spread``: ``spread_order``. ``physical``: ``physical_order`` on ``view`` (thermal
    headroom, rack power against its budget, power source, spreading across racks).
    When no candidate has fresh readings (no view, or boards without telemetry) the
    physical score has nothing to go on: the spread order, and its reasons say so; when
    some have, a job the score refuses everywhere waits."""
    if strategy == SPREAD:
        return spread_order(candidates)
    if view is not None and any(
        (b := view.board(c.device_id)) is not None and b.fresh for c in candidates
    ):
        return physical_order(job, candidates, view)
    return [
        Ranked(r.candidate, f"physical: no candidate has fresh readings, placed as {r.why}")
        for r in spread_order(candidates)
    ]
