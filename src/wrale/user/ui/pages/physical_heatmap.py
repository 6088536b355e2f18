"""The physical view's room heatmap (pure): a column per rack, a cell per ``BAND_U`` band of
slots, coloured and labelled by the metric shown (temperature from the racks' figures;
power, fan and status from the boards), with its legend in that metric's unit."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

from wrale.fleet.brain.services import fleet_view as fv
from wrale.user.ui.pages.physical_layout import BAND_U, short_name
from wrale.user.ui.pages.physical_scales import Metric, status_band, temp_band
from wrale.user.ui.units import reading, unit_of

CELL_W, CELL_H, AXIS_W, CELL_LABEL_H = 46, 20, 46, 18
# a band's status cell shows its worst board: the first of these it has
STATUS_WORST = (
    "error",
    "offline",
    "quarantined",
    "unknown",
    "maintenance",
    "decommissioned",
    "online",
)


@dataclass(frozen=True, slots=True)
class Cell:
    """One band of one rack: how it is drawn and what its tooltip line says."""

    cls: str
    text: str
    line: str


def _temp_cell(bs: fv.BandStats | None) -> Cell:
    if bs is None or not bs.boards:
        return Cell("empty", "", "no boards")
    if bs.max_temp_c is None or bs.mean_temp_c is None:
        return Cell("nd", "—", f"{bs.boards} board(s), no recent temperature")
    hottest, mean = reading(bs.max_temp_c, "cpu_temp_c"), reading(bs.mean_temp_c, "cpu_temp_c")
    line = f"{bs.boards} board(s), hottest {hottest}, mean {mean}"
    return Cell(temp_band(bs.max_temp_c)[0], f"{bs.max_temp_c:.0f}", line)


def _board_cell(metric: Metric, band: Sequence[fv.Board]) -> Cell:
    if not band:
        return Cell("empty", "", "no boards")
    if not metric.reading:  # by status: the worst board's
        rank = {s: i for i, s in enumerate(STATUS_WORST)}
        worst = min(band, key=lambda b: rank.get(b.status, rank["unknown"]))
        counts: dict[str, int] = {}
        for b in band:
            counts[b.status] = counts.get(b.status, 0) + 1
        cls, short = status_band(worst.status)
        line = f"{len(band)} board(s): " + ", ".join(f"{n} {s}" for s, n in counts.items())
        return Cell(cls, short, line)
    values = [v for v in (metric.of(b) for b in band) if v is not None]
    if not values:
        return Cell("nd", "—", f"{len(band)} board(s), no recent {metric.title.lower()}")
    top, mean = max(values), sum(values) / len(values)
    line = (
        f"{len(band)} board(s), {metric.most} {reading(top, metric.reading)}, "
        f"mean {reading(mean, metric.reading)}"
    )
    return Cell(metric.band(top)[0], metric.cell.format(top), line)


def _rack_line(metric: Metric, cells: Sequence[Cell], st: fv.RackStats) -> str:
    if metric.key == "temp":
        if st.max_temp_c is None:
            return "no recent temperature"
        return f"hottest {reading(st.max_temp_c, 'cpu_temp_c')}"
    shown = sum(1 for c in cells if c.cls != "empty")
    return f"{shown} band(s) with boards"


def heatmap(
    racks: Sequence[fv.RackInfo],
    stats: Mapping[str, fv.RackStats],
    link: Callable[[fv.RackInfo], str],
    metric: Metric,
    boards: Mapping[str, Sequence[fv.Board]] | None = None,
) -> dict[str, Any]:
    """A room's heatmap by ``metric``: a column per rack (a link to its drawing, ``link``),
    a cell per ``BAND_U`` band of slots (U1 at the bottom) coloured by the band's top board
    (hottest, highest draw, fastest fan, worst status) and showing its value; bands a rack
    does not have are left out, bands without boards are empty cells. Temperature comes
    from ``stats`` (every rack, one GROUP BY); the other metrics from ``boards``."""
    max_units = max((r.units for r in racks), default=0)
    rows = max(1, math.ceil(max_units / BAND_U))
    columns = []
    for i, rack in enumerate(racks):
        st = stats.get(rack.id, fv.RackStats())
        by_band: dict[int, list[fv.Board]] = {}
        for b in (boards or {}).get(rack.id, []):
            if 1 <= b.slot_u <= rack.units:
                by_band.setdefault((b.slot_u - 1) // BAND_U, []).append(b)
        cells: list[dict[str, Any]] = []
        lines = [f"Rack {rack.name}"]
        for band in range(math.ceil(rack.units / BAND_U)):
            low, high = band * BAND_U + 1, min(rack.units, (band + 1) * BAND_U)
            if metric.key == "temp":
                c = _temp_cell(st.bands.get(band))
            else:
                c = _board_cell(metric, by_band.get(band, []))
            cells.append({"y": (rows - 1 - band) * CELL_H, "cls": c.cls, "text": c.text})
            lines.append(f"U{low}–{high}: {c.line}")
        summary = _rack_line(metric, [Cell(c["cls"], "", "") for c in cells], st)
        columns.append(
            {
                "x": AXIS_W + i * CELL_W,
                "href": link(rack),
                "aria": f"Rack {rack.name}: {summary}; show its boards",
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
    unit = unit_of(metric.reading) if metric.reading else None
    return {
        "columns": columns,
        "width": width,
        "height": height,
        "metric": metric.key,
        "caption": heatmap_caption(metric, unit.symbol if unit else ""),
        "legend": metric.legend,
        "svg": _heatmap_svg(columns, axis, names, rows * CELL_H + CELL_LABEL_H - 5),
    }


def heatmap_caption(metric: Metric, unit: str) -> str:
    """'Power draw heatmap (W): the highest draw board of each rack and 6 U band'."""
    what = metric.title + " heatmap" + (f" ({unit})" if unit else "")
    top = "worst status" if not metric.reading else f"{metric.most} board"
    return f"{what}: the {top} of each rack and {BAND_U} U band"


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
                out.append(
                    f'<text x="{mid:g}" y="{c["y"] + CELL_H - 7}">{escape(c["text"])}</text>'
                )
        out.append("</a>")
    out += [
        f'<text class="axis" x="{n["x"]:g}" y="{names_y}" text-anchor="middle">'
        f"{escape(n['text'])}</text>"
        for n in names
    ]
    return Markup("".join(out))  # noqa: S704 - every text in it went through escape()
