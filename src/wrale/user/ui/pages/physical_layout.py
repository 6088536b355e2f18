"""The physical view's layout maths (pure): racks drawn to scale (one U = ``U_PX`` user
units), each board in its slot as SVG, the power bar against the rack's budget and the
room's temperature heatmap."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

from wrale.fleet.brain.services import fleet_view as fv
from wrale.user.ui.pages import physical_overlays as ov
from wrale.user.ui.pages import physical_rollout_overlay as ro
from wrale.user.ui.pages.physical_scales import Metric, is_hot, temp_band

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


def board_svg(
    b: fv.Board,
    y: int,
    cls: str,
    metric: Metric,
    mark: str | None = None,
    marking: bool = False,
    wave: ro.BoardWave | None = None,
) -> str:
    """One board in its slot: a link to its page around a coloured rect, its name and its
    value (so colour is not the only signal). Built here rather than in Jinja: a page draws
    up to ``MAX_BOARDS_SHOWN`` of them and this is ten times faster. With ``marking`` (a job
    is shown) each board has a marker, lit when ``mark`` (its replica's state) is given;
    ``wave``: its wave number and state in the rollout shown, drawn left of it."""
    extra = (f", runs the job ({mark})" if mark else "") + (f", {wave.text}" if wave else "")
    did, aria = escape(b.id), escape(_aria(b) + extra)
    text_y = y + U_PX - 5
    on = f' job-on" data-job-state="{escape(mark)}' if mark else ""
    dot = (
        f'<circle class="job-mark" cx="{RAIL - 8}" cy="{y + (U_PX - 2) / 2:g}" r="4"/>'
        if marking
        else ""
    )
    if wave is not None:
        on += ro.wave_attrs(wave)
        dot += ro.wave_mark_svg(wave, RAIL - 8, y + (U_PX - 2) / 2)
    return (
        f'<a class="board{on}" id="board-{did}" href="/devices/{did}" data-device-id="{did}" '
        f'data-device-name="{escape(b.name)}" data-temp-c="{_num(b.temp_c)}" '
        f'aria-label="{aria}"><title>{aria}</title>{dot}'
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
    marks: Mapping[str, str] | None = None,
    caps: Mapping[str, ov.RackCap] | None = None,
    waves: Mapping[str, ro.BoardWave] | None = None,
) -> dict[str, Any]:
    """Everything a room's rack SVG needs: racks side by side, bottoms on one floor line,
    each ``units × U_PX`` tall, boards in their slots, a power bar under each rack (with
    the caps the capping loop holds there); ``marks``: the boards of the job shown;
    ``waves``: the boards of the rollout shown, with their wave and state."""
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
                    "".join(
                        board_svg(
                            d["b"],
                            d["y"],
                            d["cls"],
                            metric,
                            (marks or {}).get(d["b"].id),
                            marks is not None,
                            (waves or {}).get(d["b"].id),
                        )
                        for d in drawn
                    )
                ),
                "ticks": ticks,
                "max_temp": _num(st.max_temp_c),
                "max_temp_text": "—" if st.max_temp_c is None else f"{st.max_temp_c:.1f} °C",
                "hot": is_hot(st.max_temp_c),
                "draw": _num(st.draw_w),
                "bar": power_bar(st.draw_w, rack.budget_w),
                "cap": (caps or {}).get(rack.id, ov.RackCap()),
                "cap_text": ov.cap_text((caps or {}).get(rack.id, ov.RackCap())),
            }
        )
    n = len(racks)
    return {
        "racks": drawn_racks,
        "width": 2 * PAD + max(1, n) * RACK_W + max(0, n - 1) * RACK_GAP,
        "height": floor + FOOT + PAD,
        "floor": floor,
    }
