"""The physical view's layout maths (pure): racks drawn one U = ``U_PX`` user units with
long empty runs folded into thin bands (``rack_rows``), each board in its slot as SVG, and
the power bar against the rack's budget. The room's heatmap is ``physical_heatmap``."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

from wrale.fleet.brain.services import fleet_view as fv
from wrale.user.ui.pages import physical_overlays as ov
from wrale.user.ui.pages import physical_rollout_overlay as ro
from wrale.user.ui.pages.physical_scales import Metric, is_hot
from wrale.user.ui.units import reading

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

BAND_U = 6  # heatmap (``physical_heatmap``): one cell per rack and 6 U band


GAP_MIN_U = 4  # a run of at least this many empty slots is drawn as one thin band
GAP_PX = U_PX  # the band's height: "U12–U40 empty"


@dataclass(frozen=True, slots=True)
class RackRows:
    """A rack's drawn rows, top down: each occupied or short-gap slot at full ``U_PX`` and
    each long run of empty slots as one ``GAP_PX`` band, so that boards low in a 42 U rack
    are on the first screen. ``slot_y``: top of each drawn slot; ``gaps``: (top, lowest U,
    highest U) of each band; ``height``: the whole drawing. The U numbers stay true."""

    slot_y: dict[int, int]
    gaps: tuple[tuple[int, int, int], ...]
    height: int


def rack_rows(units: int, occupied: Collection[int], gap_min: int = GAP_MIN_U) -> RackRows:
    """The rows of a rack of ``units`` whose slots ``occupied`` hold boards (U1 at the
    bottom): runs of ``gap_min`` or more empty slots become one band."""
    runs: list[tuple[bool, int, int]] = []  # (empty, top U, bottom U), top down
    for u in range(units, 0, -1):
        empty = u not in occupied
        if runs and runs[-1][0] == empty:
            runs[-1] = (empty, runs[-1][1], u)
        else:
            runs.append((empty, u, u))
    y, slots, gaps = 0, {}, []
    for empty, top, bottom in runs:
        if empty and top - bottom + 1 >= gap_min:
            gaps.append((y, bottom, top))
            y += GAP_PX
            continue
        for u in range(top, bottom - 1, -1):
            slots[u] = y
            y += U_PX
    return RackRows(slots, tuple(gaps), y)


def short_name(name: str, limit: int = NAME_CHARS) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _num(v: float | None, digits: int = 1) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def _aria(b: fv.Board) -> str:
    parts = [
        f"{b.name}, U{b.slot_u}",
        reading(b.temp_c, "cpu_temp_c"),
        reading(b.power_w, "power_w"),
        f"fan {reading(b.fan_pct, 'fan_pct')}",
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
    each in ``U_PX`` rows with long empty runs folded into thin bands (``rack_rows``),
    boards in their slots, a power bar under each rack (with the caps the capping loop
    holds there); ``marks``: the boards of the job shown; ``waves``: the boards of the
    rollout shown, with their wave and state."""
    layouts = []
    for rack in racks:
        mine = [b for b in boards.get(rack.id, []) if 1 <= b.slot_u <= rack.units]
        # (a slot above a shrunk rack cannot be drawn: placement forbids it)
        layouts.append((rack, mine, rack_rows(rack.units, {b.slot_u for b in mine})))
    floor = PAD + HEAD + max((rows.height for _, _, rows in layouts), default=0)
    drawn_racks: list[dict[str, Any]] = []
    for i, (rack, mine, rows) in enumerate(layouts):
        st = stats.get(rack.id, fv.RackStats())
        drawn: list[dict[str, Any]] = [
            {"b": b, "y": rows.slot_y[b.slot_u] + 1, "cls": metric.colour(b)} for b in mine
        ]
        ticks = [
            {"y": y + U_PX - 3, "text": str(u)}
            for u, y in rows.slot_y.items()
            if u == 1 or u % 5 == 0 or u == rack.units
        ]
        gaps = [
            {
                "y": y,
                "low": low,
                "high": high,
                "text": f"U{low}–U{high} empty" if low != high else f"U{low} empty",
            }
            for y, low, high in rows.gaps
        ]
        drawn_racks.append(
            {
                "rack": rack,
                "x": PAD + i * (RACK_W + RACK_GAP),
                "top": floor - rows.height,
                "height": rows.height,
                "boards": drawn,
                "gaps": gaps,
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
