"""The dry-run's answer: the two runs of the digital copy (without and with the change)
compared fleet-wide, per rack and per board, with a short summary for an operator.
Pure: reads the runs' tallies, nothing else."""

from __future__ import annotations

from typing import Any

from wrale.fleet.brain.services.dry_run_change import AddJob, Change, SetRackBudget, StopJob
from wrale.user.simfleet.room_sim import RackTotals, RoomSim, Totals

FIGURES = (
    "peak_temp_c",
    "throttled_board_s",
    "budget_violation_s",
    "work_done",
    "moves",
    "battery_job_s",
)
RACK_FIGURES = (*FIGURES, "mean_draw_w", "peak_draw_w")
MAX_BOARDS = 50  # the boards shown: those the change affects most
TINY = 1e-6


def _figures(t: Totals) -> dict[str, float]:
    return {k: round(float(getattr(t, k)), 3) for k in FIGURES}


def _rack_figures(t: RackTotals, duration_s: float) -> dict[str, float]:
    out = _figures(t)
    out["mean_draw_w"] = round(t.energy_ws / duration_s, 3) if duration_s > 0 else 0.0
    out["peak_draw_w"] = round(t.peak_draw_w, 3)
    return out


def _difference(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: round(b[k] - a[k], 3) for k in a}


def _triple(a: dict[str, float], b: dict[str, float]) -> dict[str, Any]:
    return {"without": a, "with": b, "difference": _difference(a, b)}


def _change_text(change: Change) -> str:
    if isinstance(change, AddJob):
        j = change.job
        return f"job {change.name!r} ({j.replicas} × {j.cpu_pct:g} % CPU, {j.strategy})"
    if isinstance(change, StopJob):
        return f"stopping job {change.job_id}"
    assert isinstance(change, SetRackBudget)
    return f"rack {change.name or change.rack_id} budget {change.watts:g} W"


def summary(change: Change, minutes: int, a: dict[str, float], b: dict[str, float]) -> str:
    """One sentence: each fleet-wide figure without → with the change."""

    def pair(key: str, unit: str, fmt: str = ".0f") -> str:
        return f"{a[key]:{fmt}} → {b[key]:{fmt}}{unit}"

    work = f"work {pair('work_done', ' CPU-s')}"
    if a["work_done"] > TINY:
        work += f" ({100.0 * (b['work_done'] - a['work_done']) / a['work_done']:+.1f} %)"
    parts = [
        f"peak {pair('peak_temp_c', ' °C', '.1f')}",
        f"throttled {pair('throttled_board_s', ' board-s')}",
        f"over budget {pair('budget_violation_s', ' rack-s')}",
        work,
        f"moves {pair('moves', '')}",
        f"on battery {pair('battery_job_s', ' replica-s')}",
    ]
    return f"{_change_text(change)}, next {minutes} min: " + "; ".join(parts) + "."


def _boards(without: RoomSim, with_change: RoomSim) -> tuple[list[dict[str, Any]], int]:
    rows = []
    for device, a_tot in without.per_board.items():
        b_tot = with_change.per_board.get(device)
        if b_tot is None:
            continue
        a, b = _figures(a_tot), _figures(b_tot)
        diff = _difference(a, b)
        if all(abs(v) <= TINY for v in diff.values()):
            continue
        slot = without.by_device[device]
        weight = abs(diff["work_done"]) / 100.0 + abs(diff["peak_temp_c"])
        weight += abs(diff["throttled_board_s"]) / 60.0 + diff["moves"] ** 2
        rows.append((weight, device, slot.template.rack_id, a, b))
    rows.sort(key=lambda r: (-r[0], r[1]))
    shown = [
        {"device_id": d, "rack": rack, **_triple(a, b)} for _, d, rack, a, b in rows[:MAX_BOARDS]
    ]
    return shown, len(rows)


def compare(
    without: RoomSim, with_change: RoomSim, change: Change, minutes: int, left_out: list[str]
) -> dict[str, Any]:
    """The dry-run's result (``docs/dry-run.md``)."""
    duration_s = minutes * 60.0
    a, b = _figures(without.totals), _figures(with_change.totals)
    racks = []
    for rack, a_tot in without.per_rack.items():
        if not rack:
            continue  # unracked boards: in the fleet figures and per board only
        b_tot = with_change.per_rack.get(rack, RackTotals())
        racks.append(
            {
                "rack": rack,
                "budget_w": {
                    "without": without.budgets.get(rack),
                    "with": with_change.budgets.get(rack),
                },
                **_triple(_rack_figures(a_tot, duration_s), _rack_figures(b_tot, duration_s)),
            }
        )
    boards, changed = _boards(without, with_change)
    return {
        "minutes": minutes,
        "simulated_s": duration_s,
        "boards_modelled": len(without.slots),
        "boards_left_out": sorted(left_out)[:MAX_BOARDS],
        "boards_left_out_count": len(left_out),
        "fleet": _triple(a, b),
        "racks": racks,
        "boards": boards,
        "boards_changed": changed,
        "summary": summary(change, minutes, a, b),
    }
