"""The physical view (``/physical``): sites → rooms → racks drawn to scale as server-rendered
SVG, each board in its U slot coloured by a metric (temperature, power, fan or status), a
power bar per rack against its budget, and a temperature heatmap per room.

The colour scales and the layout maths are pure functions here; the data comes from
``fleet_view`` (one query for every board shown, one GROUP BY for every rack's figures).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup, escape
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.services import fleet_view as fv
from wrale.shared.errors import InvalidRequestError, NotFoundError
from wrale.user.ui.web import SessionDep, ViewerDep, render

router = APIRouter(include_in_schema=False)

MAX_BOARDS_SHOWN = 500  # more boards than this: one room, then one page of its racks

# ----------------------------------------------------------------------------- colour scales

TEMP_WARN_C = 70.0  # a rack whose hottest board reaches this is "hot" (data-hot="true")
# (upper bound, css class, legend text): the first bound above the value wins
TEMP_BANDS: tuple[tuple[float, str, str], ...] = (
    (45.0, "t0", "< 45 °C cool"),
    (60.0, "t1", "45–60 °C"),
    (TEMP_WARN_C, "t2", "60–70 °C warm"),
    (80.0, "t3", "70–80 °C warning"),
    (math.inf, "t4", "≥ 80 °C hot (throttling)"),
)
POWER_BANDS: tuple[tuple[float, str, str], ...] = (
    (3.0, "p0", "< 3 W idle"),
    (4.5, "p1", "3–4.5 W"),
    (6.0, "p2", "4.5–6 W"),
    (7.0, "p3", "6–7 W busy"),
    (math.inf, "p4", "≥ 7 W full load"),
)
FAN_BANDS: tuple[tuple[float, str, str], ...] = (
    (1.0, "f0", "off"),
    (25.0, "f1", "1–25 %"),
    (50.0, "f2", "25–50 %"),
    (75.0, "f3", "50–75 %"),
    (math.inf, "f4", "≥ 75 %"),
)
STATUS_STYLE: dict[str, tuple[str, str]] = {  # status → (css class, short label)
    "online": ("s-online", "on"),
    "offline": ("s-offline", "off"),
    "error": ("s-error", "err"),
    "maintenance": ("s-maintenance", "mnt"),
    "quarantined": ("s-quarantined", "qtn"),
    "unknown": ("s-unknown", "?"),
    "decommissioned": ("s-decommissioned", "dec"),
}
NO_DATA = ("nd", f"no reading in the last {int(fv.FRESH_S // 60)} min")


def _band(value: float | None, bands: Sequence[tuple[float, str, str]]) -> tuple[str, str]:
    if value is None:
        return NO_DATA
    for upper, cls, text in bands:
        if value < upper:
            return cls, text
    return bands[-1][1], bands[-1][2]


def temp_band(value: float | None) -> tuple[str, str]:
    """(css class, legend text) of a temperature in °C."""
    return _band(value, TEMP_BANDS)


def power_band(value: float | None) -> tuple[str, str]:
    return _band(value, POWER_BANDS)


def fan_band(value: float | None) -> tuple[str, str]:
    return _band(value, FAN_BANDS)


def status_band(status: str) -> tuple[str, str]:
    return STATUS_STYLE.get(status, ("s-unknown", status[:3]))


def is_hot(max_temp_c: float | None) -> bool:
    return max_temp_c is not None and max_temp_c >= TEMP_WARN_C


@dataclass(frozen=True, slots=True)
class Metric:
    key: str
    title: str
    legend: tuple[tuple[str, str], ...]  # (css class, text)
    colour: Callable[[fv.Board], str]
    value: Callable[[fv.Board], str]  # the short text drawn on the board


def _legend(bands: Sequence[tuple[float, str, str]]) -> tuple[tuple[str, str], ...]:
    return (*((cls, text) for _, cls, text in bands), NO_DATA)


def _fmt(v: float | None, pattern: str) -> str:
    return "—" if v is None else pattern.format(v)


METRICS: dict[str, Metric] = {
    "temp": Metric(
        "temp",
        "CPU temperature",
        _legend(TEMP_BANDS),
        lambda b: temp_band(b.temp_c)[0],
        lambda b: _fmt(b.temp_c, "{:.0f}°"),
    ),
    "power": Metric(
        "power",
        "Power draw",
        _legend(POWER_BANDS),
        lambda b: power_band(b.power_w)[0],
        lambda b: _fmt(b.power_w, "{:.1f}W"),
    ),
    "fan": Metric(
        "fan",
        "Fan speed",
        _legend(FAN_BANDS),
        lambda b: fan_band(b.fan_pct)[0],
        lambda b: _fmt(b.fan_pct, "{:.0f}%"),
    ),
    "status": Metric(
        "status",
        "Status",
        tuple((c, f"{s} ({short})") for s, (c, short) in STATUS_STYLE.items()),
        lambda b: status_band(b.status)[0],
        lambda b: status_band(b.status)[1],
    ),
}


def parse_metric(value: str | None) -> Metric:
    metric = METRICS.get(value or "temp")
    if metric is None:
        raise InvalidRequestError(
            f"metric: choose one of {', '.join(METRICS)} (not {str(value)[:40]!r})",
            field="metric",
        )
    return metric


# ----------------------------------------------------------------------------- layout maths

U_PX = 14  # one rack unit, in SVG user units: every rack is drawn at this scale
RACK_W = 132
RACK_GAP = 28
RAIL = 18  # the rack's left rail, where the U numbers are
PAD = 12
HEAD = 34  # rack name and hottest temperature above each rack
FOOT = 56  # the power bar and its two lines of figures below
BAR_H = 10
NAME_CHARS = 12

BAND_U = 6  # heatmap: one cell per rack and 6 U band
CELL_W, CELL_H, AXIS_W, CELL_LABEL_H = 46, 20, 46, 18


def slot_y(units: int, slot_u: int) -> int:
    """Top of slot ``slot_u`` (U1 at the bottom) inside a rack of ``units``."""
    return (units - slot_u) * U_PX


def short_name(name: str, limit: int = NAME_CHARS) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _num(v: float | None, digits: int = 1) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def _aria(b: fv.Board) -> str:
    parts = [
        f"{b.name}, U{b.slot_u}",
        "—" if b.temp_c is None else f"{b.temp_c:.1f} °C",
        "—" if b.power_w is None else f"{b.power_w:.1f} W",
        "fan —" if b.fan_pct is None else f"fan {b.fan_pct:.0f} %",
        b.status,
    ]
    return ", ".join(parts)


def board_svg(b: fv.Board, y: int, cls: str, metric: Metric) -> str:
    """One board in its slot: a link to its page around a coloured rect, its name and its
    value (so colour is not the only signal). Built here rather than in Jinja: a page draws
    up to ``MAX_BOARDS_SHOWN`` of them and this is ten times faster."""
    did, aria = escape(b.id), escape(_aria(b))
    text_y = y + U_PX - 5
    return (
        f'<a class="board" id="board-{did}" href="/devices/{did}" data-device-id="{did}" '
        f'data-device-name="{escape(b.name)}" data-temp-c="{_num(b.temp_c)}" '
        f'aria-label="{aria}"><title>{aria}</title>'
        f'<rect class="{cls} st-{escape(b.status)}" x="{RAIL}" y="{y}" '
        f'width="{RACK_W - RAIL - 3}" height="{U_PX - 2}" rx="2"/>'
        f'<text x="{RAIL + 3}" y="{text_y}">{escape(short_name(b.name))}</text>'
        f'<text class="v" x="{RACK_W - 6}" y="{text_y}">'
        f"{escape(metric.value(b))}</text></a>"
    )


def power_bar(draw_w: float, budget_w: float | None) -> dict[str, Any]:
    """Geometry and words of a rack's power bar (``RACK_W`` wide): the fill is the draw's
    share of the budget (full when over), ``flag`` a second line of words when it matters."""
    if budget_w is None or budget_w <= 0:
        return {
            "fill": 0.0,
            "over": False,
            "pct": None,
            "text": f"{draw_w:.0f} W",
            "flag": "no budget set",
            "budget": "" if budget_w is None else _num(budget_w),
        }
    ratio = draw_w / budget_w
    over = draw_w > budget_w
    return {
        "fill": round(RACK_W * min(ratio, 1.0), 1),
        "over": over,
        "pct": round(100 * ratio),
        "text": f"{draw_w:.0f} / {budget_w:.0f} W · {100 * ratio:.0f} %",
        "flag": "⚠ OVER BUDGET" if over else "",
        "budget": _num(budget_w),
    }


def heatmap(
    racks: Sequence[fv.RackInfo],
    stats: dict[str, fv.RackStats],
    link: Callable[[fv.RackInfo], str],
) -> dict[str, Any]:
    """A room's heatmap: a column per rack (a link to its drawing, ``link``), a cell per
    ``BAND_U`` band of slots (U1 at the bottom) coloured by the hottest board of the band
    and showing its temperature; bands a rack does not have are left out, bands without
    boards are empty cells."""
    max_units = max((r.units for r in racks), default=0)
    rows = max(1, math.ceil(max_units / BAND_U))
    columns = []
    for i, rack in enumerate(racks):
        st = stats.get(rack.id, fv.RackStats())
        cells, lines = [], [f"Rack {rack.name}"]
        for band in range(math.ceil(rack.units / BAND_U)):
            bs = st.bands.get(band)
            low, high = band * BAND_U + 1, min(rack.units, (band + 1) * BAND_U)
            if bs is None or not bs.boards:
                cls, text, line = "empty", "", "no boards"
            elif bs.max_temp_c is None or bs.mean_temp_c is None:
                cls, text, line = "nd", "—", f"{bs.boards} board(s), no recent temperature"
            else:
                cls, text = temp_band(bs.max_temp_c)[0], f"{bs.max_temp_c:.0f}"
                line = (
                    f"{bs.boards} board(s), hottest {bs.max_temp_c:.1f} °C, "
                    f"mean {bs.mean_temp_c:.1f} °C"
                )
            cells.append({"y": (rows - 1 - band) * CELL_H, "cls": cls, "text": text})
            lines.append(f"U{low}–{high}: {line}")
        hottest = (
            "no recent temperature"
            if st.max_temp_c is None
            else (f"hottest {st.max_temp_c:.1f} °C")
        )
        columns.append(
            {
                "x": AXIS_W + i * CELL_W,
                "href": link(rack),
                "aria": f"Rack {rack.name}: {hottest}; show its boards",
                "title": "\n".join(lines),
                "cells": cells,
            }
        )
    axis = [
        {"y": (rows - 1 - band) * CELL_H, "text": f"U{band * BAND_U + 1}"} for band in range(rows)
    ]
    names = [
        {"x": AXIS_W + i * CELL_W + CELL_W / 2, "text": short_name(r.name, 7)}
        for i, r in enumerate(racks)
    ]
    width = AXIS_W + max(1, len(racks)) * CELL_W
    height = rows * CELL_H + CELL_LABEL_H
    return {
        "columns": columns,
        "width": width,
        "height": height,
        "svg": _heatmap_svg(columns, axis, names, rows * CELL_H + CELL_LABEL_H - 5),
    }


def _heatmap_svg(
    columns: list[dict[str, Any]],
    axis: list[dict[str, Any]],
    names: list[dict[str, Any]],
    names_y: int,
) -> Markup:
    """The inside of the heatmap's <svg> (built here: hundreds of cells)."""
    w, h, mid = CELL_W - 2, CELL_H - 2, (CELL_W - 2) / 2
    out = [
        f'<text class="axis" x="{AXIS_W - 5}" y="{a["y"] + CELL_H - 7}" text-anchor="end">'
        f"{a['text']}</text>"
        for a in axis
    ]
    for col in columns:
        out.append(
            f'<a href="{escape(col["href"])}" aria-label="{escape(col["aria"])}" '
            f'transform="translate({col["x"]} 0)"><title>{escape(col["title"])}</title>'
        )
        for c in col["cells"]:
            out.append(f'<rect class="cell {c["cls"]}" y="{c["y"]}" width="{w}" height="{h}"/>')
            if c["text"]:
                out.append(f'<text x="{mid:g}" y="{c["y"] + CELL_H - 7}">{c["text"]}</text>')
        out.append("</a>")
    out += [
        f'<text class="axis" x="{n["x"]:g}" y="{names_y}" text-anchor="middle">'
        f"{escape(n['text'])}</text>"
        for n in names
    ]
    return Markup("".join(out))  # noqa: S704 - every text in it went through escape()


def rack_drawings(
    racks: Sequence[fv.RackInfo],
    boards: dict[str, list[fv.Board]],
    stats: dict[str, fv.RackStats],
    metric: Metric,
) -> dict[str, Any]:
    """Everything a room's rack SVG needs: racks side by side, bottoms on one floor line,
    each ``units × U_PX`` tall, boards in their slots, a power bar under each rack."""
    max_units = max((r.units for r in racks), default=0)
    floor = PAD + HEAD + max_units * U_PX
    drawn_racks: list[dict[str, Any]] = []
    for i, rack in enumerate(racks):
        st = stats.get(rack.id, fv.RackStats())
        drawn: list[dict[str, Any]] = []
        for b in boards.get(rack.id, []):
            if not 1 <= b.slot_u <= rack.units:
                continue  # a slot above a shrunk rack cannot be drawn (placement forbids it)
            drawn.append({"b": b, "y": slot_y(rack.units, b.slot_u) + 1, "cls": metric.colour(b)})
        ticks = [
            {"y": slot_y(rack.units, u) + U_PX - 3, "text": str(u)}
            for u in range(1, rack.units + 1)
            if u == 1 or u % 5 == 0
        ]
        drawn_racks.append(
            {
                "rack": rack,
                "x": PAD + i * (RACK_W + RACK_GAP),
                "top": floor - rack.units * U_PX,
                "height": rack.units * U_PX,
                "boards": drawn,
                # every text in it went through escape() in board_svg
                "boards_svg": Markup(  # noqa: S704
                    "".join(board_svg(d["b"], d["y"], d["cls"], metric) for d in drawn)
                ),
                "ticks": ticks,
                "max_temp": _num(st.max_temp_c),
                "max_temp_text": "—" if st.max_temp_c is None else f"{st.max_temp_c:.1f} °C",
                "hot": is_hot(st.max_temp_c),
                "draw": _num(st.draw_w),
                "bar": power_bar(st.draw_w, rack.budget_w),
            }
        )
    n = len(racks)
    return {
        "racks": drawn_racks,
        "width": 2 * PAD + max(1, n) * RACK_W + max(0, n - 1) * RACK_GAP,
        "height": floor + FOOT + PAD,
        "floor": floor,
    }


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
) -> dict[str, Any]:
    now = time.time()
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
                "heatmap": heatmap(room.racks, stats, link),
                "drawing": rack_drawings(racks, boards, stats, metric),
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
        "refresh_url": _href(
            metric.key, scope.site_id, scope.room_id, scope.rack_id, "/_physical/view"
        ),
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
) -> Response:
    ctx = await _view(session, viewer.tenant_id, parse_metric(metric), site, room, rack)
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
) -> Response:
    """The drawings alone (the inside of ``#physical-view``), for the live refresh."""
    ctx = await _view(session, viewer.tenant_id, parse_metric(metric), site, room, rack)
    return render(request, "physical/_view.html", ctx)
