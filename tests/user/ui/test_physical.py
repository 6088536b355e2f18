"""The physical view without a browser: topology and boards made through the REST API,
telemetry uploaded, then the server-rendered SVG checked through its stable DOM hooks
(racks to scale, the hot rack, board links, power bars, heatmap, metric switch, errors)."""

from __future__ import annotations

import time
from html.parser import HTMLParser
from typing import Any

import pytest

from tests.conftest import Central
from tests.user.ui.conftest import Browser
from wrale.fleet.brain.services import fleet_view as fv
from wrale.shared.errors import InvalidRequestError
from wrale.user.ui.pages import physical as ph
from wrale.user.ui.pages import physical_heatmap as hmap
from wrale.user.ui.pages import physical_layout as lay
from wrale.user.ui.pages import physical_scales as sc

API = "/api/v1"


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {k: v or "" for k, v in attrs}))


def elements(html: str, tag: str, cls: str | None = None) -> list[dict[str, str]]:
    """Attributes of every ``tag`` (with class ``cls``) in the page, in document order."""
    p = _Elements()
    p.feed(html)
    return [
        a for t, a in p.found if t == tag and (cls is None or cls in a.get("class", "").split())
    ]


async def post(c: Central, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await c.http.post(f"{API}{path}", json=body, headers=c.admin)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def board(c: Central, name: str, rack: str, slot: int, seq: int = 1, **metrics: float) -> str:
    """A device placed in ``rack`` at ``slot`` that reported ``metrics`` a minute ago."""
    device = (await post(c, "/devices", {"name": name}))["id"]
    r = await c.http.put(
        f"{API}/devices/{device}/location", json={"rack_id": rack, "slot_u": slot}, headers=c.admin
    )
    assert r.status_code == 200, r.text
    if metrics:
        ts = time.time() - 60
        points = [{"metric": m, "ts": ts, "value": v} for m, v in metrics.items()]
        r = await c.http.post(
            f"{API}/devices/{device}/telemetry",
            json={"seq": seq, "points": points},
            headers=c.admin,
        )
        assert r.status_code == 200, r.text
    return device


async def machine_room(c: Central) -> dict[str, str]:
    """Site HQ / room Lab: rack A1 (10 U, 12 W budget) with a hot board and rack A2 (6 U,
    100 W budget) with a cool one; A1 draws 13.5 W: over its budget."""
    site = await post(c, "/sites", {"name": "HQ"})
    room = await post(c, "/rooms", {"site_id": site["id"], "name": "Lab"})
    a1 = await post(
        c, "/racks", {"room_id": room["id"], "name": "A1", "units": 10, "power_budget_w": 12}
    )
    a2 = await post(
        c, "/racks", {"room_id": room["id"], "name": "A2", "units": 6, "power_budget_w": 100}
    )
    hot = await board(c, "pi-hot", a1["id"], 3, cpu_temp_c=82.4, power_w=7.5, fan_pct=100)
    warm = await board(c, "pi-warm", a1["id"], 4, cpu_temp_c=55.0, power_w=6.0, fan_pct=30)
    cool = await board(c, "pi-cool", a2["id"], 1, cpu_temp_c=41.0, power_w=3.2, fan_pct=0)
    silent = await board(c, "pi-silent", a2["id"], 6)
    return {
        "site": site["id"],
        "room": room["id"],
        "a1": a1["id"],
        "a2": a2["id"],
        "hot": hot,
        "warm": warm,
        "cool": cool,
        "silent": silent,
    }


def rack_of(html: str, name: str) -> dict[str, str]:
    (rack,) = [g for g in elements(html, "g", "rack") if g["data-rack-name"] == name]
    return rack


# ----------------------------------------------------------------------------- pages


async def test_the_hot_rack_its_boards_power_and_heatmap(central: Central, admin_ui: Browser):
    ids = await machine_room(central)
    r = await admin_ui.page("/physical")
    assert r.status_code == 200, r.text
    html = r.text
    a1, a2 = rack_of(html, "A1"), rack_of(html, "A2")
    assert a1["data-rack-id"] == ids["a1"]
    assert a1["data-hot"] == "true"
    assert a1["data-max-temp-c"] == "82.4"
    assert a1["data-draw-w"] == "13.5"
    assert a1["data-budget-w"] == "12.0"
    assert a2["data-hot"] == "false"
    assert a2["data-max-temp-c"] == "41.0"
    boards = {a["data-device-name"]: a for a in elements(html, "a", "board")}
    assert set(boards) == {"pi-hot", "pi-warm", "pi-cool", "pi-silent"}
    assert boards["pi-hot"]["href"] == f"/devices/{ids['hot']}"
    assert boards["pi-hot"]["data-device-id"] == ids["hot"]
    assert boards["pi-hot"]["data-temp-c"] == "82.4"
    assert boards["pi-silent"]["data-temp-c"] == ""  # no reading: no number, drawn dashed
    assert "82.4 °C" in boards["pi-hot"]["aria-label"]
    bars = elements(html, "g", "power-bar")
    assert [(b["data-draw-w"], b["data-budget-w"], b["data-over"]) for b in bars] == [
        ("13.5", "12.0", "true"),
        ("3.2", "100.0", "false"),
    ]
    assert "OVER BUDGET" in html
    assert len(elements(html, "svg", "heatmap")) == 1
    # one U a row, long empty runs folded into one band each, so the boards are in view:
    # A1 (10 U, boards in U3–4) is the band U5–U10 and four rows; A2 (6 U, boards in U1
    # and U6) a row, the band U2–U5 and a row
    frames = elements(html, "rect", "frame")
    assert [int(f["height"]) for f in frames] == [5 * lay.U_PX, 3 * lay.U_PX]
    gaps = [(g["data-low-u"], g["data-high-u"]) for g in elements(html, "g", "gap")]
    assert gaps == [("5", "10"), ("2", "5")]
    assert ">U5–U10 empty<" in html
    # colour is not the only signal: the value is written on the board
    assert ">82°<" in html
    assert 'aria-current="true">CPU temperature<' in html


async def test_metric_switch_colours_by_power_fan_and_status(
    central: Central, admin_ui: Browser
) -> None:
    ids = await machine_room(central)
    power = (await admin_ui.page("/physical", metric="power")).text
    assert ">7.5W<" in power
    assert 'aria-current="true">Power draw<' in power
    assert "p4" in power  # 7.5 W: full load band
    fan = (await admin_ui.page("/physical", metric="fan")).text
    assert ">100%<" in fan
    status = (await admin_ui.page("/physical", metric="status", room=ids["room"])).text
    assert "s-unknown" in status  # devices made through the API have not connected yet
    # the rack hooks do not depend on the metric
    assert rack_of(status, "A1")["data-hot"] == "true"
    links = {a["href"] for a in elements(status, "a")}
    assert f"/physical?metric=power&room={ids['room']}" in links  # the switch keeps the room


async def test_bad_metric_is_422_and_unknown_room_404(central: Central, admin_ui: Browser):
    await machine_room(central)
    r = await admin_ui.page("/physical", metric="humidity")
    assert r.status_code == 422
    assert "metric: choose one of temp, power, fan, status" in r.text
    r = await admin_ui.fragment("/_physical/view", metric="humidity")
    assert r.status_code == 422
    assert r.headers["HX-Reswap"] == "none"
    r = await admin_ui.page("/physical", room="nope")
    assert r.status_code == 404
    r = await admin_ui.page("/physical", site="x" * 500)
    assert r.status_code == 404


async def test_the_live_fragment_and_a_site_scope(central: Central, admin_ui: Browser):
    ids = await machine_room(central)
    r = await admin_ui.page("/physical", site=ids["site"], metric="fan")
    assert f'hx-get="/_physical/view?metric=fan&amp;site={ids["site"]}"' in r.text
    r = await admin_ui.fragment("/_physical/view", site=ids["site"], metric="fan")
    assert r.status_code == 200
    assert "<html" not in r.text
    assert len(elements(r.text, "g", "rack")) == 2


async def test_big_fleets_are_drawn_one_room_at_a_time(
    central: Central, admin_ui: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await machine_room(central)
    other = await post(central, "/rooms", {"site_id": ids["site"], "name": "Annex"})
    b1 = await post(central, "/racks", {"room_id": other["id"], "name": "B1", "units": 4})
    await board(central, "pi-annex", b1["id"], 1, cpu_temp_c=50.0)
    monkeypatch.setattr(ph, "MAX_BOARDS_SHOWN", 2)
    html = (await admin_ui.page("/physical")).text
    # the hottest room (Lab, 4 boards) alone, and of it the page of racks with the hot one
    assert "showing the hottest room" in html
    assert [g["data-rack-name"] for g in elements(html, "g", "rack")] == ["A1"]
    assert "page 1 of 2" in html
    room = ids["room"]
    assert f'href="/physical?room={room}&amp;rack={ids["a2"]}">Next racks' in html
    # the heatmap still shows every rack of the room; a cell of A2 leads to its page
    assert f'href="/physical?room={room}&amp;rack={ids["a2"]}#rack-{ids["a2"]}"' in html
    # the refresh keeps drawing that page; the list still offers the other room
    assert f'hx-get="/_physical/view?room={room}&amp;rack={ids["a1"]}"' in html
    assert f'href="/physical?room={other["id"]}"' in html
    r = await admin_ui.page("/physical", room=room, rack=ids["a2"], metric="power")
    assert [g["data-rack-name"] for g in elements(r.text, "g", "rack")] == ["A2"]
    r = await admin_ui.page("/physical", rack=ids["a2"])  # a rack alone names its room
    assert [g["data-rack-name"] for g in elements(r.text, "g", "rack")] == ["A2"]
    r = await admin_ui.page("/physical", room=other["id"], rack=ids["a2"])
    assert r.status_code == 404


async def test_empty_fleet_explains_how_to_describe_the_topology(
    central: Central, admin_ui: Browser
) -> None:
    r = await admin_ui.page("/physical")
    assert r.status_code == 200
    assert "No sites yet" in r.text
    assert "wrale sites create" in r.text
    assert "/api/v1/sites" in r.text
    site = await post(central, "/sites", {"name": "HQ"})
    r = await admin_ui.page("/physical")
    assert r.status_code == 200
    assert "No rooms yet" in r.text
    await post(central, "/rooms", {"site_id": site["id"], "name": "Lab"})
    r = await admin_ui.page("/physical", site=site["id"])
    assert r.status_code == 200
    assert "No racks in this room yet" in r.text
    assert "wrale racks create" in r.text


async def test_a_viewer_sees_the_view_without_actions(central: Central, ui_as: Any) -> None:
    await machine_room(central)
    viewer = await ui_as("viewer")
    r = await viewer.page("/physical", metric="status")
    assert r.status_code == 200
    assert "data-action" not in r.text
    forms = elements(r.text, "form")
    assert [f["action"] for f in forms if f.get("method") == "post"] == ["/logout"]
    assert len(elements(r.text, "a", "board")) == 4


# ----------------------------------------------------------------------------- pure parts


def test_temperature_scale_bands() -> None:
    assert sc.temp_band(None)[0] == "nd"
    assert [sc.temp_band(v)[0] for v in (20, 44.9, 45, 59.9, 60, 69.9, 70, 79.9, 80, 95)] == [
        "t0",
        "t0",
        "t1",
        "t1",
        "t2",
        "t2",
        "t3",
        "t3",
        "t4",
        "t4",
    ]
    assert not sc.is_hot(69.9)
    assert sc.is_hot(70.0)
    assert not sc.is_hot(None)
    assert sc.power_band(7.0)[0] == "p4"
    assert sc.fan_band(0.0)[0] == "f0"
    assert sc.status_band("online") == ("s-online", "on")
    assert sc.status_band("weird")[0] == "s-unknown"


def test_metric_parsing() -> None:
    assert sc.parse_metric(None).key == "temp"
    assert sc.parse_metric("").key == "temp"
    assert sc.parse_metric("status").key == "status"
    with pytest.raises(InvalidRequestError):
        sc.parse_metric("TEMP")


def test_slots_count_from_the_bottom_and_power_bars() -> None:
    full = lay.rack_rows(42, range(1, 43))
    assert (full.slot_y[42], full.slot_y[1], full.gaps) == (0, 41 * lay.U_PX, ())
    # boards in U1–U3 of a 42 U rack: U4–U42 is one band on top, the boards right under it
    low = lay.rack_rows(42, {1, 2, 3})
    assert low.gaps == ((0, 4, 42),)
    assert [low.slot_y[u] for u in (3, 2, 1)] == [lay.GAP_PX, lay.GAP_PX + lay.U_PX, 42]
    assert low.height == lay.GAP_PX + 3 * lay.U_PX
    # a short run stays drawn (U2–U4 between boards), a long one folds (U6–U10)
    mid = lay.rack_rows(12, {1, 5, 11, 12}, gap_min=4)
    assert [(lo, hi) for _, lo, hi in mid.gaps] == [(6, 10)]
    assert sorted(mid.slot_y) == [1, 2, 3, 4, 5, 11, 12]
    assert lay.rack_rows(6, set()).gaps == ((0, 1, 6),)
    bar = lay.power_bar(150.0, 100.0)
    assert (bar["over"], bar["fill"], bar["pct"]) == (True, lay.RACK_W, 150)
    assert "OVER" in bar["flag"]
    bar = lay.power_bar(25.0, 100.0)
    assert (bar["over"], bar["fill"], bar["flag"]) == (False, lay.RACK_W / 4, "")
    bar = lay.power_bar(25.0, None)
    assert (bar["budget"], bar["flag"], bar["fill"]) == ("", "no budget set", 0)
    assert lay.short_name("a-very-long-board-name") == "a-very-long…"


def _board(rack: str, slot: int, temp: float | None, status: str = "online") -> fv.Board:
    return fv.Board(f"d{rack}{slot}", f"pi-{slot}", status, rack, slot, temp, 5.0, 40.0)


def test_racks_side_by_side_on_one_floor_and_the_heatmap() -> None:
    racks = [fv.RackInfo("r1", "A1", "m", 12, 50.0), fv.RackInfo("r2", "A2", "m", 6, None)]
    boards = {"r1": [_board("r1", 1, 50.0), _board("r1", 12, 75.0)], "r2": []}
    bands = {0: fv.BandStats(1, 50.0, 50.0), 1: fv.BandStats(1, 75.0, 75.0)}
    stats = {"r1": fv.RackStats(2, 75.0, 62.5, 10.0, 2, bands)}
    d = lay.rack_drawings(racks, boards, stats, sc.METRICS["temp"])
    a1, a2 = d["racks"]
    assert a2["x"] - a1["x"] == lay.RACK_W + lay.RACK_GAP
    assert a1["top"] + a1["height"] == a2["top"] + a2["height"] == d["floor"]
    assert a1["height"] == 3 * a2["height"]  # U12, the band U2–U11, U1; A2: one band
    assert [g["text"] for g in a1["gaps"] + a2["gaps"]] == ["U2–U11 empty", "U1–U6 empty"]
    assert (a1["hot"], a2["hot"]) == (True, False)
    assert [b["y"] for b in a1["boards"]] == [lay.U_PX + lay.GAP_PX + 1, 1]
    assert [b["cls"] for b in a1["boards"]] == ["t1", "t3"]
    assert a2["bar"]["flag"] == "no budget set"
    # heatmap: 2 bands in A1 (U1–6 with 50 °C, U7–12 with 75 °C), 1 empty band in A2
    hm = hmap.heatmap(racks, stats, lambda r: f"#rack-{r.id}", sc.METRICS["temp"], boards)
    c1, c2 = hm["columns"]
    assert [(c["cls"], c["text"]) for c in c1["cells"]] == [("t1", "50"), ("t3", "75")]
    assert [(c["cls"], c["text"]) for c in c2["cells"]] == [("empty", "")]
    assert c1["cells"][0]["y"] > c1["cells"][1]["y"]  # the bottom band is drawn at the bottom
    assert c1["href"] == "#rack-r1"
    assert c1["aria"] == "Rack A1: hottest 75.0 °C; show its boards"
    assert "U7–12: 1 board(s), hottest 75.0 °C, mean 75.0 °C" in c1["title"]
    assert '<a href="#rack-r1"' in hm["svg"]


def test_big_rooms_are_paged_by_whole_racks() -> None:
    racks = [fv.RackInfo(f"r{i}", f"R{i}", "m", 42, None) for i in range(5)]
    stats = {f"r{i}": fv.RackStats(boards=40, max_temp_c=50.0 + i * (i % 2)) for i in range(5)}
    pages = ph.rack_pages(racks, stats, limit=100)
    assert [[r.name for r in p] for p in pages] == [["R0", "R1"], ["R2", "R3"], ["R4"]]
    assert ph.rack_pages(racks, stats, limit=10)[0] == [racks[0]]  # a rack is never split
    assert ph.hottest_rack(racks, stats).name == "R3"


def test_choose_rooms_narrows_to_the_hottest_room() -> None:
    def summary(name: str, boards: int, hottest: float | None) -> ph.RoomSummary:
        return ph.RoomSummary(fv.RoomInfo(name, name, "s", []), boards, hottest, 0, 0, 0, 0)

    rooms = [summary("a", 10, 50.0), summary("b", 10, 81.0), summary("c", 10, None)]
    assert ph.choose_rooms(rooms, limit=100) == (rooms, False)
    assert ph.choose_rooms(rooms, limit=20) == ([rooms[1]], True)
    cold = [summary("a", 10, None), summary("b", 10, None)]
    assert ph.choose_rooms(cold, limit=5) == ([cold[0]], True)
