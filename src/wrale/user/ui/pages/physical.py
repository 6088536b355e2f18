"""The physical view (``/physical``): sites → rooms → racks drawn to scale as server-rendered
SVG, each board in its U slot coloured by a metric (temperature, power, fan or status), a
power bar per rack against its budget (with the caps the capping loop holds there), a
temperature heatmap per room, with ``?job=ID`` a mark on each board running that job, and
with ``?rollout=ID`` each board of that rollout marked with its wave and state.

The colour scales (``physical_scales``) and the layout maths (``physical_layout``) are pure
functions; the data comes from
``fleet_view`` (one query for every board shown, one GROUP BY for every rack's figures).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.services import fleet_view as fv
from wrale.shared.errors import NotFoundError
from wrale.user.ui.pages import physical_overlays as ov
from wrale.user.ui.pages import physical_rollout_overlay as ro
from wrale.user.ui.pages.physical_heatmap import heatmap
from wrale.user.ui.pages.physical_layout import (
    BAND_U,
    BAR_H,
    RACK_W,
    RAIL,
    U_PX,
    rack_drawings,
)
from wrale.user.ui.pages.physical_scales import (
    METRICS,
    TEMP_WARN_C,
    Metric,
    is_hot,
    parse_metric,
    temp_band,
)
from wrale.user.ui.web import SessionDep, ViewerDep, render

router = APIRouter(include_in_schema=False)

MAX_BOARDS_SHOWN = 500  # more boards than this: one room, then one page of its racks


# ----------------------------------------------------------------------------- scope


@dataclass(frozen=True, slots=True)
class RoomSummary:
    room: fv.RoomInfo
    boards: int
    max_temp_c: float | None
    hot_racks: int
    draw_w: float
    budget_w: float
    over_racks: int


def summarise(room: fv.RoomInfo, stats: dict[str, fv.RackStats]) -> RoomSummary:
    mine = [(r, stats.get(r.id, fv.RackStats())) for r in room.racks]
    temps = [s.max_temp_c for _, s in mine if s.max_temp_c is not None]
    return RoomSummary(
        room=room,
        boards=sum(s.boards for _, s in mine),
        max_temp_c=max(temps) if temps else None,
        hot_racks=sum(1 for _, s in mine if is_hot(s.max_temp_c)),
        draw_w=round(sum(s.draw_w for _, s in mine), 1),
        budget_w=round(sum(r.budget_w or 0.0 for r, _ in mine), 1),
        over_racks=sum(1 for r, s in mine if r.budget_w is not None and s.draw_w > r.budget_w),
    )


def _hottest_first(temp: float | None, index: int) -> tuple[bool, float, int]:
    return (temp is not None, temp or 0.0, -index)


def choose_rooms(
    candidates: Sequence[RoomSummary], limit: int | None = None
) -> tuple[list[RoomSummary], bool]:
    """The rooms to draw: all candidates when their boards fit in ``limit`` (default
    ``MAX_BOARDS_SHOWN``), else the hottest room alone (then the first). Returns (rooms,
    narrowed)."""
    limit = MAX_BOARDS_SHOWN if limit is None else limit
    if sum(c.boards for c in candidates) <= limit or len(candidates) <= 1:
        return list(candidates), False
    best = max(range(len(candidates)), key=lambda i: _hottest_first(candidates[i].max_temp_c, i))
    return [candidates[best]], True


def rack_pages(
    racks: Sequence[fv.RackInfo], stats: dict[str, fv.RackStats], limit: int | None = None
) -> list[list[fv.RackInfo]]:
    """A big room's racks in pages of at most ``limit`` boards (a rack is never split; a
    page has at least one rack), in the room's order."""
    limit = MAX_BOARDS_SHOWN if limit is None else limit
    pages: list[list[fv.RackInfo]] = [[]]
    boards = 0
    for rack in racks:
        n = stats.get(rack.id, fv.RackStats()).boards
        if pages[-1] and boards + n > limit:
            pages.append([])
            boards = 0
        pages[-1].append(rack)
        boards += n
    return pages


def hottest_rack(racks: Sequence[fv.RackInfo], stats: dict[str, fv.RackStats]) -> fv.RackInfo:
    def heat(i: int) -> tuple[bool, float, int]:
        return _hottest_first(stats.get(racks[i].id, fv.RackStats()).max_temp_c, i)

    return racks[max(range(len(racks)), key=heat)]


def _href(
    metric: str | None = None,
    site: str | None = None,
    room: str | None = None,
    rack: str | None = None,
    path: str = "/physical",
) -> str:
    params = {"metric": None if metric == "temp" else metric, "site": site, "room": room}
    params["rack"] = rack
    query = urlencode({k: v for k, v in params.items() if v})
    return path + (f"?{query}" if query else "")


def _with_job(href: str, marks: ov.JobMarks | None, waves: ov.RolloutMarks | None = None) -> str:
    """``href`` that also shows the job's boards and the rollout's (when shown)."""
    params = {"job": marks.job.id if marks else None}
    params["rollout"] = waves.rollout.id if waves else None
    query = urlencode({k: v for k, v in params.items() if v})
    if not query:
        return href
    return href + ("&" if "?" in href else "?") + query


def _find(items: Sequence[Any], wanted: str | None, what: str) -> Any:
    if not wanted:
        return None
    found = next((i for i in items if i.id == wanted), None)
    if found is None:
        raise NotFoundError(f"no {what} {wanted[:40]}", **{f"{what}_id": wanted[:40]})
    return found


@dataclass(frozen=True, slots=True)
class Scope:
    """What the page draws: rooms (all of a pool that fits, or one), and for one big room
    the page of its racks."""

    rooms: list[RoomSummary]
    narrowed: bool  # the rooms were chosen for the user (too many boards to draw)
    pages: list[list[fv.RackInfo]]  # of the one room, when it is too big; else []
    page: int
    site_id: str | None  # for links that keep the scope
    room_id: str | None
    rack_id: str | None


def resolve_scope(
    sites: Sequence[fv.SiteInfo],
    stats: dict[str, fv.RackStats],
    site_id: str | None,
    room_id: str | None,
    rack_id: str | None,
) -> Scope:
    """The rooms (and racks) a request asks for, narrowed to stay light; unknown ids 404."""
    rooms = [m for s in sites for m in s.rooms]
    site = _find(sites, site_id, "site")
    rack = _find([r for m in rooms for r in m.racks], rack_id, "rack")
    room = _find(rooms, room_id or (rack.room_id if rack else None), "room")
    if rack is not None and rack.room_id != room.id:
        raise NotFoundError(f"no rack {rack.id} in room {room.name!r}", rack_id=rack.id)
    if room is not None:
        shown, narrowed = [summarise(room, stats)], False
    else:
        pool = site.rooms if site else rooms
        shown, narrowed = choose_rooms([summarise(m, stats) for m in pool])
    pages: list[list[fv.RackInfo]] = []
    page = 0
    if len(shown) == 1 and shown[0].boards > MAX_BOARDS_SHOWN and shown[0].room.racks:
        pages = rack_pages(shown[0].room.racks, stats)
        target = rack or hottest_rack(shown[0].room.racks, stats)
        page = next(i for i, p in enumerate(pages) if target in p)
    one = shown[0].room.id if (narrowed or room or pages) else None
    return Scope(
        rooms=shown,
        narrowed=narrowed,
        pages=pages,
        page=page,
        site_id=site.id if site and not one else None,
        room_id=one,
        rack_id=pages[page][0].id if pages else None,
    )


async def _view(
    session: AsyncSession,
    tenant_id: str,
    metric: Metric,
    site_id: str | None,
    room_id: str | None,
    rack_id: str | None,
    job_id: str | None = None,
    rollout_id: str | None = None,
) -> dict[str, Any]:
    now = time.time()
    marks = await ov.job_marks(session, tenant_id, job_id) if job_id else None
    waves = await ov.rollout_marks(session, tenant_id, rollout_id) if rollout_id else None
    caps = await ov.rack_caps(session, tenant_id)
    since = fv.fresh_since(now)
    sites = await fv.layout(session, tenant_id)
    stats = await fv.rack_stats(session, tenant_id, since, BAND_U)
    scope = resolve_scope(sites, stats, site_id, room_id, rack_id)
    drawn = scope.pages[scope.page] if scope.pages else None
    boards = await fv.boards_in_rooms(
        session,
        tenant_id,
        [s.room.id for s in scope.rooms],
        since,
        rack_ids=None if drawn is None else [r.id for r in drawn],
    )
    # the heatmap of a paged room shows every rack: by a metric other than temperature
    # (which the racks' figures carry) it needs the boards of the racks not drawn too
    heat_boards = boards
    if drawn is not None and metric.key != "temp":
        heat_boards = await fv.boards_in_rooms(
            session, tenant_id, [s.room.id for s in scope.rooms], since
        )
    site_names = {s.id: s.name for s in sites}
    drawings = []
    for summary in scope.rooms:
        room = summary.room
        racks = drawn if drawn is not None else room.racks
        inside = {r.id for r in racks}

        def link(r: fv.RackInfo, room: fv.RoomInfo = room, inside: set[str] = inside) -> str:
            if r.id in inside:
                return f"#rack-{r.id}"
            return _href(metric.key, None, room.id, r.id) + f"#rack-{r.id}"

        drawings.append(
            {
                "room": room,
                "site_name": site_names.get(room.site_id, ""),
                "summary": summary,
                "heatmap": heatmap(room.racks, stats, link, metric, heat_boards),
                "drawing": rack_drawings(
                    racks,
                    boards,
                    stats,
                    metric,
                    marks.boards if marks else None,
                    caps,
                    waves.boards if waves else None,
                ),
            }
        )
    placed = sum(s.boards for s in stats.values())
    pager = None
    if scope.pages:
        room_id_ = scope.rooms[0].room.id
        pager = {
            "index": scope.page,
            "count": len(scope.pages),
            "first": scope.pages[scope.page][0].name,
            "last": scope.pages[scope.page][-1].name,
            "racks": len(scope.rooms[0].room.racks),
            "prev": _href(metric.key, None, room_id_, scope.pages[scope.page - 1][0].id)
            if scope.page > 0
            else None,
            "next": _href(metric.key, None, room_id_, scope.pages[scope.page + 1][0].id)
            if scope.page + 1 < len(scope.pages)
            else None,
        }
    return {
        "metric": metric,
        "metrics": list(METRICS.values()),
        "sites": sites,
        "summaries": {m.id: summarise(m, stats) for s in sites for m in s.rooms},
        "scope": scope,
        "drawings": drawings,
        "pager": pager,
        "shown_ids": {s.room.id for s in scope.rooms},
        "unplaced": max(0, await fv.device_count(session, tenant_id) - placed),
        "fresh_min": int(fv.FRESH_S // 60),
        "temp_warn_c": TEMP_WARN_C,
        "max_boards": MAX_BOARDS_SHOWN,
        "at": now,
        "href": _href,
        # the live refresh asks for the same rooms and racks, even those chosen for us
        "refresh_url": _with_job(
            _href(metric.key, scope.site_id, scope.room_id, scope.rack_id, "/_physical/view"),
            marks,
            waves,
        ),
        "job_marks": marks,
        "rollout_marks": waves,
        "wave_states": ro.BOARD_STATES,
        # the metric switch keeps the job and the rollout shown
        "with_job": lambda href: _with_job(href, marks, waves),
        "temp_class": lambda v: temp_band(v)[0],
        "u_px": U_PX,
        "rack_w": RACK_W,
        "rail": RAIL,
        "bar_h": BAR_H,
    }


@router.get("/physical")
async def physical(
    request: Request,
    viewer: ViewerDep,
    session: SessionDep,
    metric: str | None = None,
    site: str | None = None,
    room: str | None = None,
    rack: str | None = None,
    job: str | None = None,
    rollout: str | None = None,
) -> Response:
    ctx = await _view(
        session, viewer.tenant_id, parse_metric(metric), site, room, rack, job, rollout
    )
    return render(request, "physical/index.html", ctx)


@router.get("/_physical/view")
async def physical_view(
    request: Request,
    viewer: ViewerDep,
    session: SessionDep,
    metric: str | None = None,
    site: str | None = None,
    room: str | None = None,
    rack: str | None = None,
    job: str | None = None,
    rollout: str | None = None,
) -> Response:
    """The drawings alone (the inside of ``#physical-view``), for the live refresh."""
    ctx = await _view(
        session, viewer.tenant_id, parse_metric(metric), site, room, rack, job, rollout
    )
    return render(request, "physical/_view.html", ctx)
