"""The fleet overview (``/``): devices by status, open alerts, power against budgets, the
temperature distribution, boards on battery and recent events. Each part is also a fragment
(``/_overview/<part>``) that htmx refreshes on its own, live or every 15 s.

Reads only, through ``fleet_view``'s aggregates: a few queries whatever the fleet's size.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.services import fleet_view as fv
from wrale.fleet.brain.services.alert_rules import SEVERITIES
from wrale.fleet.brain.services.registry import STATUSES
from wrale.shared.errors import NotFoundError
from wrale.user.ui.pages.physical_scales import temp_band
from wrale.user.ui.web import SessionDep, Viewer, ViewerDep, render

router = APIRouter(include_in_schema=False)

Part = Callable[[AsyncSession, Viewer, float], Awaitable[dict[str, Any]]]

# histogram drawing (SVG user units)
HIST_BAR_W, HIST_GAP, HIST_H, HIST_TOP, HIST_LABEL_H = 34, 6, 120, 18, 34


async def _status(session: AsyncSession, viewer: Viewer, now: float) -> dict[str, Any]:
    counts = await fv.status_counts(session, viewer.tenant_id)
    order = list(STATUSES) + sorted(set(counts) - set(STATUSES))
    return {
        "statuses": [{"name": s, "count": counts.get(s, 0)} for s in order],
        "total": sum(counts.values()),
    }


async def _alerts(session: AsyncSession, viewer: Viewer, now: float) -> dict[str, Any]:
    counts = await fv.alert_counts(session, viewer.tenant_id, SEVERITIES)
    recent = await fv.recent_alerts(session, viewer.tenant_id, limit=8)
    return {
        "severities": counts,
        "open_total": sum(c.total for c in counts),
        "unacked_total": sum(c.active for c in counts),
        "recent": [{"a": a, "device": dname, "rack": rname} for a, dname, rname in recent],
    }


def _pct(draw: float, budget: float) -> float | None:
    return None if budget <= 0 else round(100.0 * draw / budget, 1)


def _middle(b: fv.Bucket) -> float:
    """A temperature inside the bucket, to colour it like the physical view."""
    if b.low is None:
        return (b.high or 0.0) - 0.5
    if b.high is None:
        return b.low + 0.5
    return (b.low + b.high) / 2


def histogram_bars(dist: fv.Distribution) -> dict[str, Any]:
    """Bar geometry of the temperature histogram: heights scaled to the fullest bucket."""
    top = max((b.count for b in dist.buckets), default=0)
    bars = []
    for i, b in enumerate(dist.buckets):
        h = 0.0 if not top else round(HIST_H * b.count / top, 1)
        mid = _middle(b)
        bars.append(
            {
                "x": i * (HIST_BAR_W + HIST_GAP),
                "y": HIST_TOP + HIST_H - h,
                "h": h,
                "count": b.count,
                "label": b.label,
                "band": temp_band(mid)[0],
            }
        )
    width = len(bars) * (HIST_BAR_W + HIST_GAP) - HIST_GAP
    return {
        "bars": bars,
        "width": width,
        "height": HIST_TOP + HIST_H + HIST_LABEL_H,
        "bar_w": HIST_BAR_W,
        "base": HIST_TOP + HIST_H,
    }


async def _now(session: AsyncSession, viewer: Viewer, now: float) -> dict[str, Any]:
    """Power, temperatures and batteries: one walk over the fleet's fresh readings."""
    figures = await fv.now_figures(session, viewer.tenant_id, fv.fresh_since(now))
    total = await fv.device_count(session, viewer.tenant_id)
    power, dist = figures.power, figures.temperatures
    return {
        "power": power,
        "power_pct": _pct(power.racked_draw_w, power.budget_w),
        "dist": dist,
        "chart": histogram_bars(dist),
        "silent": max(0, total - dist.count),
        "battery": figures.battery,
    }


async def _events(session: AsyncSession, viewer: Viewer, now: float) -> dict[str, Any]:
    rows = await fv.recent_events(session, viewer.tenant_id, limit=10)
    return {"events": [{"e": e, "device": name} for e, name in rows]}


PARTS: dict[str, Part] = {
    "status": _status,
    "alerts": _alerts,
    "now": _now,
    "events": _events,
}


def _common(now: float) -> dict[str, Any]:
    return {"fresh_min": int(fv.FRESH_S // 60), "at": now}


@router.get("/")
async def overview(request: Request, viewer: ViewerDep, session: SessionDep) -> Response:
    now = time.time()
    ctx = _common(now)
    for build in PARTS.values():
        ctx.update(await build(session, viewer, now))
    return render(request, "overview/index.html", ctx)


@router.get("/_overview/{part}")
async def overview_part(
    part: str, request: Request, viewer: ViewerDep, session: SessionDep
) -> Response:
    """One part's inner HTML, for htmx to swap into its panel."""
    build = PARTS.get(part)
    if build is None:
        raise NotFoundError(f"the overview has no part {part[:40]!r}")
    now = time.time()
    ctx = _common(now) | await build(session, viewer, now)
    return render(request, f"overview/_{part}.html", ctx)
