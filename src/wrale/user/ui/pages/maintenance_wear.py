"""The device page's "Wear" section: each wear trend's evidence (its daily points) as a small
server-rendered SVG chart with its "replace before" date and range, and whether disruptive
work may happen on the board now (``services.maintenance.windows``), with the reason and
the next opening of its windows; the maintenance rules' open tasks on the board."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.decisions.wear import Trend
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.services.maintenance import tasks, wear, windows
from wrale.user.ui.pages.maintenance import PART_NAMES

WIDTH, HEIGHT = 300.0, 120.0
LEFT, RIGHT, TOP, BOTTOM = 34.0, 6.0, 8.0, 18.0  # room for the axis labels


def chart(points: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """The SVG geometry of [(day start, wear %)]: the polyline, its dots and the y axis
    ticks (pure). Non-finite points are left out; an empty series draws nothing."""
    pts = [(t, v) for t, v in points if math.isfinite(t) and math.isfinite(v)]
    geo: dict[str, Any] = {"width": WIDTH, "height": HEIGHT, "line": "", "dots": [], "ticks": []}
    geo |= {"left": LEFT, "right": WIDTH - RIGHT, "top": TOP, "bottom": HEIGHT - BOTTOM}
    if not pts:
        return geo
    t0, t1 = min(t for t, _ in pts), max(t for t, _ in pts)
    lo = min(0.0, min(v for _, v in pts))
    hi = max(10.0, max(v for _, v in pts))
    span_t = (t1 - t0) or 1.0

    def x(t: float) -> float:
        return round(LEFT + (t - t0) / span_t * (WIDTH - LEFT - RIGHT), 1)

    def y(v: float) -> float:
        return round(HEIGHT - BOTTOM - (v - lo) / (hi - lo) * (HEIGHT - TOP - BOTTOM), 1)

    dots = [(x(t), y(v)) for t, v in pts]
    geo["line"] = " ".join(f"{a},{b}" for a, b in dots)
    geo["dots"] = dots
    geo["ticks"] = [(y(v), f"{v:.0f} %") for v in (lo, (lo + hi) / 2, hi)]
    geo["days"] = round((t1 - t0) / 86_400)
    geo["first"], geo["last"] = t0, t1
    return geo


def trend_view(t: Trend) -> dict[str, Any]:
    return {
        "kind": t.kind,
        "part": PART_NAMES.get(t.kind, t.kind),
        "worn": t.worn,
        "wear_pct": t.wear_pct,
        "slope": t.slope_pct_per_day,
        "replace_before": t.replace_before,
        "earliest": t.replace_earliest,
        "latest": t.replace_latest,
        "points": len(t.points),
        "chart": chart(t.points),
    }


async def wear_ctx(session: AsyncSession, device: Device, now: float) -> dict[str, Any]:
    """The section's context: the trends, the board's due date, its maintenance status
    and the maintenance rules' open tasks on it."""
    w = await wear.device_wear(session, device.tenant_id, device.id, now)
    found = await tasks.list_tasks(session, device.tenant_id, "open", device.id)
    status = await windows.device_status(session, device.tenant_id, device.id, now)
    return {
        "wear_trends": [trend_view(t) for t in w.trends],
        "wear_due": w.due,
        "wear_events": (w.throttled_days, w.under_voltage_days),
        "upkeep": status,
        "wear_tasks": [tasks.task_view(t, device.name) for t in found],
    }
