"""Recommendations: a situation analysis of the fleet view (plus a few trends read as plain
values) that tells operators what to fix, ranked, each with the figures it is based on.

Kinds: ``rack_hot`` (a rack runs hotter than the rest of its room at equal or lower load:
check its airflow), ``fan_failed`` (driven but not turning), ``fan_wear`` (RPM fell at
equal duty over days) and ``battery_runtime`` (a room on battery, minutes left at the
current drain; proposes stopping its low-priority jobs). One recommendation per (kind,
subject), at most ``max_recommendations``, highest score first. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wrale.fleet.brain.decisions.analysis_values import BoardMeans as BoardMeans
from wrale.fleet.brain.decisions.analysis_values import FanDay as FanDay
from wrale.fleet.brain.decisions.analysis_values import Recommendation as Recommendation
from wrale.fleet.brain.decisions.analysis_values import Trends as Trends
from wrale.fleet.brain.decisions.view import BoardView, FleetView

RACK_HOT, FAN_FAILED, FAN_WEAR, BATTERY_RUNTIME = (
    "rack_hot",
    "fan_failed",
    "fan_wear",
    "battery_runtime",
)
KINDS = (RACK_HOT, FAN_FAILED, FAN_WEAR, BATTERY_RUNTIME)
STOP_JOBS = "stop_jobs"  # the one automatic action: stop the jobs it names
DAY_S = 86400.0
PLAUSIBLE_C = (-40.0, 150.0)  # readings outside these are not from a working sensor
MAX_BOARD_W = 1000.0


@dataclass(frozen=True, slots=True)
class AnalysisPolicy:
    rack_hot_c: float = 5.0  # a rack this much hotter than its room is worth a look
    equal_load_w: float = 0.5  # "equal load": watts per board at most this much more …
    equal_load_ratio: float = 0.15  # … or this share more than the room's
    min_boards: int = 2  # boards with readings in the rack, and in the rest of its room
    fan_drop_pct: float = 20.0  # RPM fell this much at equal duty
    fan_equal_duty_pct: float = 10.0  # mean duties this close (points) count as equal
    fan_min_hours: int = 3  # hours of a driven fan in each day compared
    fan_min_days: float = 3.0  # the days compared are at least this far apart
    stop_below_priority: int = 50  # on battery, jobs below this priority may stop
    max_job_ids: int = 50
    max_recommendations: int = 50
    worse_by: float = 15.0  # a dismissed one comes back early when its score rose this much


DEFAULT_POLICY = AnalysisPolicy()


def severity(score: float) -> str:
    return "critical" if score >= 70 else "warning" if score >= 40 else "info"


def decided_kinds(trends: Trends) -> frozenset[str]:
    """The kinds this pass decided: an open recommendation of one of them that the pass
    did not raise again no longer applies."""
    kinds = set(KINDS)
    if trends.fans is None:
        kinds.discard(FAN_WEAR)
    return frozenset(kinds)


def markedly_worse(
    old_score: float, new_score: float, policy: AnalysisPolicy = DEFAULT_POLICY
) -> bool:
    return new_score >= old_score + policy.worse_by


def analyse(
    view: FleetView,
    trends: Trends = Trends(),  # noqa: B008 - frozen, shared safely
    policy: AnalysisPolicy = DEFAULT_POLICY,
) -> list[Recommendation]:
    """The recommendations of the moment, highest score first, one per (kind, subject)."""
    found = [
        *_hot_racks(view, trends, policy),
        *_failed_fans(view, trends),
        *_worn_fans(view, trends, policy),
        *_battery_rooms(view, trends, policy),
    ]
    best: dict[tuple[str, str], Recommendation] = {}
    for r in found:
        if not math.isfinite(r.score):
            continue
        kept = best.get(r.key)
        if kept is None or r.score > kept.score:
            best[r.key] = r
    ranked = sorted(best.values(), key=lambda r: (-r.score, r.kind, r.subject))
    return ranked[: max(0, policy.max_recommendations)]


def _label(trends: Trends, word: str, ident: str) -> str:
    name = trends.names.get(ident)
    if not name:
        return f"{word} {ident[:8]}"
    return name if name.lower().startswith(word.lower()) else f"{word} {name}"


def _mean(values: Iterable[float]) -> float | None:
    got = [v for v in values if math.isfinite(v)]
    return sum(got) / len(got) if got else None


def _finite_or_zero(value: float | None) -> float:
    return value if value is not None and math.isfinite(value) else 0.0


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _reading(b: BoardView, trends: Trends) -> tuple[float, float] | None:
    """(temperature, power) of a board: its recent means, else its fresh readings."""
    m = trends.means.get(b.device_id)
    temp = m.temp_c if m is not None and m.temp_c is not None else b.known_temp_c
    power = m.power_w if m is not None and m.power_w is not None else b.known_power_w
    if not b.online or temp is None or power is None:
        return None
    if not (PLAUSIBLE_C[0] <= temp <= PLAUSIBLE_C[1] and 0 <= power <= MAX_BOARD_W):
        return None  # not a reading a board can give (NaN fails too)
    return temp, power


def _hot_racks(view: FleetView, trends: Trends, policy: AnalysisPolicy) -> list[Recommendation]:
    by_room: dict[str, dict[str, list[tuple[BoardView, float, float]]]] = {}
    for b in view.boards:
        rack = view.rack(b.rack_id)
        room = b.room_id or (rack.room_id if rack is not None else None)
        got = _reading(b, trends)
        if b.rack_id is None or room is None or got is None:
            continue
        by_room.setdefault(room, {}).setdefault(b.rack_id, []).append((b, *got))
    out = []
    for racks in by_room.values():
        for rack_id, mine in sorted(racks.items()):
            others = [x for r, xs in racks.items() if r != rack_id for x in xs]
            if len(mine) < policy.min_boards or len(others) < policy.min_boards:
                continue
            rec = _hot_rack(rack_id, mine, others, trends, policy)
            if rec is not None:
                out.append(rec)
    return out


def _hot_rack(
    rack_id: str,
    mine: Sequence[tuple[BoardView, float, float]],
    others: Sequence[tuple[BoardView, float, float]],
    trends: Trends,
    policy: AnalysisPolicy,
) -> Recommendation | None:
    temp, room_temp = _mean(t for _, t, _ in mine), _mean(t for _, t, _ in others)
    watts, room_watts = _mean(w for _, _, w in mine), _mean(w for _, _, w in others)
    if temp is None or room_temp is None or watts is None or room_watts is None:
        return None
    delta = temp - room_temp
    if not (math.isfinite(delta) and math.isfinite(watts) and math.isfinite(room_watts)):
        return None
    tolerance = max(policy.equal_load_w, policy.equal_load_ratio * room_watts)
    if delta < policy.rack_hot_c or watts > room_watts + tolerance:
        return None
    ambient = _mean(a for b, _, _ in mine if (a := b.known_ambient_c) is not None)
    room_ambient = _mean(a for b, _, _ in others if (a := b.known_ambient_c) is not None)
    inlet = ambient is not None and room_ambient is not None and ambient - room_ambient >= 2.0
    advice = (
        "its inlet air is warmer than the room's: look for hot air coming back to its "
        "front (gaps, missing blanking panels, a blocked aisle)"
        if inlet
        else "check its airflow: fans, filters, blanking panels, cables in the way"
    )
    name = _label(trends, "Rack", rack_id)
    return Recommendation(
        kind=RACK_HOT,
        subject=rack_id,
        title=f"{name} runs {delta:.0f} °C above the room at equal load: check its airflow",
        evidence={
            "rack_temp_c": round(temp, 1),
            "room_temp_c": round(room_temp, 1),
            "delta_c": round(delta, 1),
            "rack_w_per_board": round(watts, 2),
            "room_w_per_board": round(room_watts, 2),
            "rack_ambient_c": None if ambient is None else round(ambient, 1),
            "room_ambient_c": None if room_ambient is None else round(room_ambient, 1),
            "boards": len(mine),
            "room_boards": len(others),
        },
        score=min(80.0, 30.0 + 4.0 * delta),
        advice=advice,
    )


def _failed_fans(view: FleetView, trends: Trends) -> list[Recommendation]:
    out = []
    for b in view.boards:
        if not (b.online and b.fresh and b.fan_failed):
            continue
        name = trends.names.get(b.device_id) or b.device_id[:8]
        duty = _finite_or_zero(b.fan_duty_pct)
        rpm = _finite_or_zero(b.fan_rpm)
        out.append(
            Recommendation(
                kind=FAN_FAILED,
                subject=b.device_id,
                title=f"{name}: fan driven at {duty:.0f} % but turning at {rpm:.0f} RPM: "
                "replace it",
                evidence={
                    "fan_duty_pct": duty,
                    "fan_rpm": rpm,
                    "cpu_temp_c": b.known_temp_c,
                    "placements": len(b.placements),
                },
                score=85.0,
                advice="replace the fan; the brain moves restartable work off the board",
            )
        )
    return out


def _worn_fans(view: FleetView, trends: Trends, policy: AnalysisPolicy) -> list[Recommendation]:
    if trends.fans is None:
        return []
    failed = {b.device_id for b in view.boards if b.fan_failed}
    out = []
    for device_id, days in sorted(trends.fans.items()):
        if device_id in failed:
            continue  # fan_failed says more
        rec = _worn_fan(device_id, days, view.now, trends, policy)
        if rec is not None:
            out.append(rec)
    return out


def _usable(d: FanDay, policy: AnalysisPolicy) -> bool:
    return (
        d.hours >= policy.fan_min_hours
        and math.isfinite(d.duty_pct)
        and math.isfinite(d.rpm)
        and math.isfinite(d.day_start)
        and d.rpm >= 0
    )


def _worn_fan(
    device_id: str, days: Sequence[FanDay], now: float, trends: Trends, policy: AnalysisPolicy
) -> Recommendation | None:
    """The newest usable day against the oldest one at equal duty, days apart."""
    usable = sorted((d for d in days if _usable(d, policy)), key=lambda d: d.day_start)
    if len(usable) < 2:
        return None
    recent = usable[-1]
    base = next(
        (
            d
            for d in usable[:-1]
            if recent.day_start - d.day_start >= policy.fan_min_days * DAY_S
            and abs(recent.duty_pct - d.duty_pct) <= policy.fan_equal_duty_pct
            and d.rpm > 0
        ),
        None,
    )
    if base is None:
        return None
    drop = 100.0 * (1.0 - recent.rpm / base.rpm)
    if drop < policy.fan_drop_pct:
        return None
    span_days = max(0.0, (now - base.day_start) / DAY_S)  # from the older day to now
    name = trends.names.get(device_id) or device_id[:8]
    return Recommendation(
        kind=FAN_WEAR,
        subject=device_id,
        title=f"{name}: fan RPM fell {drop:.0f} % at equal duty over {span_days:.0f} days",
        evidence={
            "rpm_before": round(base.rpm),
            "rpm_now": round(recent.rpm),
            "drop_pct": round(drop, 1),
            "duty_before_pct": round(base.duty_pct, 1),
            "duty_now_pct": round(recent.duty_pct, 1),
            "days": round(span_days, 1),
            "hours_before": base.hours,
            "hours_now": recent.hours,
        },
        score=min(75.0, 20.0 + 0.6 * drop),
        advice="clean or replace the fan before it fails (dust, a worn bearing)",
    )


def _battery_rooms(view: FleetView, trends: Trends, policy: AnalysisPolicy) -> list[Recommendation]:
    groups: dict[tuple[str, str], list[BoardView]] = {}
    for b in view.boards:
        if not (b.online and b.on_battery):
            continue
        rack = view.rack(b.rack_id)
        room = b.room_id or (rack.room_id if rack is not None else None)
        key = ("Room", room) if room else ("Rack", b.rack_id) if b.rack_id else ("", b.device_id)
        groups.setdefault(key, []).append(b)
    return [
        _battery_room(word, ident, boards, trends, policy)
        for (word, ident), boards in sorted(groups.items())
    ]


def _battery_pct(b: BoardView) -> float | None:
    pct = b.battery_pct
    return pct if pct is not None and 0.0 <= pct <= 100.0 else None


def _runtime_min(b: BoardView, trends: Trends) -> float | None:
    drain = trends.battery_drain.get(b.device_id)
    pct = _battery_pct(b)
    if drain is None or pct is None or not math.isfinite(drain):
        return None
    if drain >= -0.01:
        return None  # not draining (measurably): no estimate
    return pct / -drain


def _battery_room(
    word: str, ident: str, boards: Sequence[BoardView], trends: Trends, policy: AnalysisPolicy
) -> Recommendation:
    runtimes = [r for b in boards if (r := _runtime_min(b, trends)) is not None]
    runtime = min(runtimes) if runtimes else None
    pcts = [p for b in boards if (p := _battery_pct(b)) is not None]
    draw = sum(w for b in boards if (w := b.known_power_w) is not None)
    below = sorted(
        {p.job_id for b in boards for p in b.placements if p.priority < policy.stop_below_priority}
    )[: policy.max_job_ids]
    name = _label(trends, word, ident) if word else trends.names.get(ident) or ident[:8]
    left = (
        f"{runtime:.0f} min of runtime left at current draw"
        if runtime is not None
        else "runtime unknown" + ("" if not pcts else f" (battery at {min(pcts):.0f} %)")
    )
    if below:
        ask = f"stop priority < {policy.stop_below_priority} jobs?"
        action: Mapping[str, Any] | None = {
            "kind": STOP_JOBS,
            "job_ids": below,
            "below_priority": policy.stop_below_priority,
        }
    else:
        ask, action = f"no jobs below priority {policy.stop_below_priority} to stop", None
    score = 60.0 if runtime is None else max(40.0, min(95.0, 95.0 - runtime))
    return Recommendation(
        kind=BATTERY_RUNTIME,
        subject=ident,
        title=f"{name} on battery: {left}; {ask}",
        evidence={
            "boards_on_battery": len(boards),
            "runtime_min": None if runtime is None else round(runtime, 1),
            "battery_pct_min": min(pcts) if pcts else None,
            "drain_pct_per_min": _round(
                _mean(d for b in boards if (d := trends.battery_drain.get(b.device_id)) is not None)
            ),
            "draw_w": round(draw, 2),
            "jobs_below_priority": len(below),
        },
        score=score,
        advice="restore mains power, or lighten the load to keep the boards up longer",
        action=action,
    )
