"""The physical view's heatmap follows the metric chosen (cells, caption and legend in that
metric's unit and bands), also for a big room drawn a page of racks at a time; and racks
fold long empty runs so that their boards are at the top of the drawing."""

from __future__ import annotations

import re

import pytest

from tests.conftest import Central
from tests.user.ui.conftest import Browser
from tests.user.ui.test_physical import board, elements, machine_room, post, rack_of
from wrale.fleet.brain.services import fleet_view as fv
from wrale.user.ui.pages import physical as ph
from wrale.user.ui.pages import physical_heatmap as hmap
from wrale.user.ui.pages import physical_layout as lay
from wrale.user.ui.pages import physical_scales as sc

COLUMN = re.compile(r'<a href="[^"]*" aria-label="Rack ([^:"]+):[^"]*"[^>]*>(.*?)</a>', re.S)
CELL = re.compile(r'<rect class="cell ([\w-]+)"[^>]*/>(?:<text[^>]*>([^<]*)</text>)?')


def cells(page: str) -> dict[str, list[tuple[str, str]]]:
    """rack name → its heatmap cells (css class, text), bottom band (U1–6) first."""
    svg = page[page.index('<svg class="heatmap"') :]
    svg = svg[: svg.index("</svg>")]
    return {name: CELL.findall(inner) for name, inner in COLUMN.findall(svg)}


async def test_the_heatmap_follows_the_chosen_metric(central: Central, admin_ui: Browser) -> None:
    await machine_room(central)
    temp = (await admin_ui.page("/physical")).text
    assert 'data-metric="temp"' in temp
    assert "CPU temperature heatmap (°C): the hottest board of each rack" in temp
    assert cells(temp) == {"A1": [("t4", "82"), ("empty", "")], "A2": [("t0", "41")]}

    power = (await admin_ui.page("/physical", metric="power")).text
    assert 'data-metric="power"' in power
    assert "Power draw heatmap (W): the highest draw board of each rack" in power
    # A1's band U1–6: 7.5 W (full load) and 6.0 W; A2's: 3.2 W and a board without reading
    assert cells(power) == {"A1": [("p4", "7.5"), ("empty", "")], "A2": [("p1", "3.2")]}
    legend = power[power.index('class="legend heatmap-legend"') :]
    legend = legend[: legend.index("</p>")]
    assert "≥ 7 W full load" in legend
    assert "°C" not in legend
    assert "U1–6: 2 board(s), highest draw 7.50 W, mean 6.75 W" in power

    fan = (await admin_ui.page("/physical", metric="fan")).text
    assert cells(fan) == {"A1": [("f4", "100"), ("empty", "")], "A2": [("f0", "0")]}
    assert "Fan speed heatmap (%)" in fan

    status = (await admin_ui.page("/physical", metric="status")).text
    assert cells(status) == {"A1": [("s-unknown", "?"), ("empty", "")], "A2": [("s-unknown", "?")]}
    assert "Status heatmap: the worst status of each rack" in status
    assert "2 board(s): 2 unknown" in status


async def test_a_paged_rooms_heatmap_by_power_shows_the_racks_not_drawn(
    central: Central, admin_ui: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await machine_room(central)
    monkeypatch.setattr(ph, "MAX_BOARDS_SHOWN", 2)
    page = (await admin_ui.page("/physical", room=ids["room"], metric="power")).text
    assert [g["data-rack-name"] for g in elements(page, "g", "rack")] == ["A1"]  # one drawn
    assert cells(page) == {
        "A1": [("p4", "7.5"), ("empty", "")],
        "A2": [("p1", "3.2")],
    }  # both in the map


async def test_boards_low_in_a_tall_rack_are_at_the_top_of_the_drawing(
    central: Central, admin_ui: Browser
) -> None:
    site = await post(central, "/sites", {"name": "DC"})
    room = await post(central, "/rooms", {"site_id": site["id"], "name": "Hall"})
    rack = await post(central, "/racks", {"room_id": room["id"], "name": "R1", "units": 42})
    for slot in (1, 2, 3):
        await board(central, f"pi-low-{slot}", rack["id"], slot, cpu_temp_c=50.0 + slot)
    page = (await admin_ui.page("/physical")).text
    r1 = rack_of(page, "R1")
    assert "42 U" in r1["aria-label"]  # the true size is still said
    (gap,) = elements(page, "g", "gap")
    assert (gap["data-low-u"], gap["data-high-u"]) == ("4", "42")
    assert ">U4–U42 empty<" in page
    (frame,) = elements(page, "rect", "frame")
    assert int(frame["height"]) == lay.GAP_PX + 3 * lay.U_PX  # not 42 rows
    ys = [float(r["y"]) for r in elements(page, "rect") if "st-unknown" in r.get("class", "")]
    assert sorted(ys) == [lay.GAP_PX + 1, lay.GAP_PX + lay.U_PX + 1, lay.GAP_PX + 2 * lay.U_PX + 1]
    assert re.search(r'<text class="u"[^>]*>1</text>', page)  # true U numbers on the rail


def test_heatmap_cells_by_metric_from_the_boards() -> None:
    racks = [fv.RackInfo("r1", "A1", "m", 12, None)]
    boards = {
        "r1": [
            fv.Board("d1", "pi-1", "online", "r1", 1, 50.0, 2.5, 0.0),
            fv.Board("d2", "pi-2", "error", "r1", 2, None, 6.5, 80.0),
            fv.Board("d3", "pi-3", "offline", "r1", 9, None, None, None),
        ]
    }
    by = {k: hmap.heatmap(racks, {}, lambda r: "#", sc.METRICS[k], boards) for k in sc.METRICS}
    bottom, top = by["power"]["columns"][0]["cells"]
    assert (bottom["cls"], bottom["text"]) == ("p3", "6.5")
    assert (top["cls"], top["text"]) == ("nd", "—")
    assert [c["cls"] for c in by["fan"]["columns"][0]["cells"]] == ["f4", "nd"]
    assert [c["text"] for c in by["status"]["columns"][0]["cells"]] == ["err", "off"]
    # temperature comes from the racks' figures (none here: empty cells)
    assert [c["cls"] for c in by["temp"]["columns"][0]["cells"]] == ["empty", "empty"]
