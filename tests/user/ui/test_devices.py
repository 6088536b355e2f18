"""The Devices page without a browser: list and grid, search, filters, sorting, counted
pages, bulk actions (confirmation naming the count, per-device outcome) and roles."""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import Central
from tests.user.ui.conftest import Browser
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.commands import Command
from wrale.fleet.brain.services import groups, telemetry
from wrale.user.simfleet import paper

ROW = re.compile(r'<tr data-device-id="([0-9a-f]{32})"')
CARD = re.compile(r'<li class="device-card[^"]*" data-device-id="([0-9a-f]{32})"')
COUNT = re.compile(r'id="result-count"[^>]*>\s*([^<]*?)\s*<')
CONFIRM = re.compile(r'hx-confirm="([^"]*)"')
DEVICES = 60


@pytest.fixture
async def fleet(central: Central) -> paper.PaperFleet:
    return await paper.seed(central.db, devices=DEVICES, rooms=2, seed=1)


async def _devices(central: Central) -> dict[str, Device]:
    async with central.db.session() as s:
        return {d.id: d for d in await s.scalars(select(Device))}


def _count(text: str) -> str:
    m = COUNT.search(text)
    assert m, text[:2000]
    return m.group(1)


def _confirm(text: str) -> str:
    m = CONFIRM.search(text)
    assert m, text
    return html.unescape(m.group(1))


async def test_the_list_counts_and_pages(admin_ui: Browser, fleet: paper.PaperFleet) -> None:
    r = await admin_ui.page("/devices", per=25)
    assert r.status_code == 200
    assert _count(r.text) == f"1–25 of {DEVICES}"
    ids = ROW.findall(r.text)
    assert len(ids) == 25
    assert set(ids) <= set(fleet.device_ids)
    assert 'rel="next"' in r.text
    assert "Page 1 of 3" in r.text
    assert f'href="/devices/{ids[0]}"' in r.text
    last = await admin_ui.page("/devices", per=25, page=3)
    assert _count(last.text) == f"51–60 of {DEVICES}"
    assert len(ROW.findall(last.text)) == 10
    assert not set(ROW.findall(last.text)) & set(ids)
    far = await admin_ui.page("/devices", per=25, page=99)  # past the end: the last page
    assert _count(far.text) == f"51–60 of {DEVICES}"


async def test_search_filters_and_sorting(
    admin_ui: Browser, central: Central, fleet: paper.PaperFleet
) -> None:
    devices = await _devices(central)
    hot_rack = fleet.rack_ids[fleet.hot_rack]
    r = await admin_ui.page("/devices", q=fleet.hot_rack.upper() + "-U0", per=200)
    expected = {i for i, d in devices.items() if d.name.startswith(fleet.hot_rack.lower() + "-u0")}
    assert set(ROW.findall(r.text)) == expected
    assert expected
    r = await admin_ui.page("/devices", rack=hot_rack, status=["online", "error"], per=200)
    expected = {
        i for i, d in devices.items() if d.rack_id == hot_rack and d.status in ("online", "error")
    }
    assert set(ROW.findall(r.text)) == expected
    assert _count(r.text) == f"1–{len(expected)} of {len(expected)}"
    r = await admin_ui.page("/devices", tag="prod web", per=200)
    assert set(ROW.findall(r.text)) == {
        i for i, d in devices.items() if {"prod", "web"} <= set(d.tags)
    }
    r = await admin_ui.page("/devices", alert="open", per=200)
    assert set(fleet.hot_device_ids) <= set(ROW.findall(r.text))
    r = await admin_ui.page("/devices", q="no-such-board")
    assert _count(r.text) == "0 of 0"
    assert "No device matches" in r.text
    # hottest first; the column header offers the other order
    r = await admin_ui.page("/devices", sort="cpu_temp", order="desc", per=200)
    async with central.db.session() as s:
        cpu = await telemetry.latest_values(s, fleet.tenant_id, "cpu_temp_c", list(devices))
    hottest = max(cpu, key=lambda k: cpu[k][1])
    assert ROW.findall(r.text)[0] == hottest
    assert 'aria-sort="descending"' in r.text
    assert 'href="/devices?sort=cpu_temp&amp;per=200">CPU' in r.text


async def test_group_filter_takes_static_and_dynamic_groups(
    admin_ui: Browser, central: Central, fleet: paper.PaperFleet
) -> None:
    p = await paper.admin_principal(central.db)
    async with central.db.session() as s:
        static = await groups.create_group(s, p, "three")
        for device_id in fleet.device_ids[:3]:
            await groups.add_member(s, p, static.id, device_id)
        dynamic = await groups.create_group(
            s, p, "cameras", kind="dynamic", selector={"tags_all": ["camera"]}
        )
    r = await admin_ui.page("/devices", group=static.id)
    assert set(ROW.findall(r.text)) == set(fleet.device_ids[:3])
    assert "three (static)" in r.text
    assert "cameras (dynamic)" in r.text
    r = await admin_ui.page("/devices", group=dynamic.id, per=200)
    devices = await _devices(central)
    assert set(ROW.findall(r.text)) == {i for i, d in devices.items() if "camera" in d.tags}


async def test_grid_view(admin_ui: Browser, fleet: paper.PaperFleet) -> None:
    r = await admin_ui.page("/devices", view="grid", per=25)
    cards = CARD.findall(r.text)
    assert len(cards) == 25
    assert not ROW.findall(r.text)
    assert "°C" in r.text
    assert " W" in r.text
    assert "· U" in r.text
    assert 'aria-current="page">▦ Grid' in r.text
    assert 'name="ids"' in r.text  # an operator picks cards too


async def test_htmx_gets_only_the_results_and_a_clean_url(
    admin_ui: Browser, fleet: paper.PaperFleet
) -> None:
    r = await admin_ui.http.get(
        "/devices",
        params={"q": "", "tag": "", "group": "", "status": "online", "sort": "name", "per": "25"},
        headers={"HX-Request": "true", "HX-Trigger": "filters"},
    )
    assert r.status_code == 200
    assert "<html" not in r.text
    assert 'id="results"' in r.text
    assert 'id="filters"' not in r.text
    assert r.headers["HX-Push-Url"] == "/devices?status=online&per=25"
    assert 'hx-trigger="wrale-device-status from:body throttle:2s' in r.text
    # a live refresh keeps what was ticked
    picked = fleet.device_ids[0]
    r = await admin_ui.fragment("/devices", ids=picked, per=200)
    assert "HX-Push-Url" not in r.headers
    assert re.search(rf'value="{picked}" id="pick-{picked}" data-pick[^>]*checked', r.text)
    # going back in history asks for the whole page
    r = await admin_ui.http.get(
        "/devices", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"}
    )
    assert 'id="filters"' in r.text


BAD = (
    {"sort": "bogus"},
    {"order": "sideways"},
    {"status": "sleepy"},
    {"page": "0"},
    {"per": "7"},
    {"rack": "not-an-id"},
    {"tag": "bad tag!"},
    {"alert": "maybe"},
    {"view": "3d"},
    {"q": "x" * 101},
    {"group": "0" * 32},
)


async def test_bad_parameters_answer_422_not_500(admin_ui: Browser) -> None:
    for params in BAD:
        r = await admin_ui.page("/devices", **params)
        assert r.status_code == 422, (params, r.text)
        name = next(iter(params))
        assert "Invalid input" in r.text, params
        assert f"{name}:" in r.text, params
        r = await admin_ui.fragment("/devices", **params)
        assert r.status_code == 422, params
        assert r.headers["HX-Reswap"] == "none", params


def _bulk(ids: list[str], expected: int | None = None, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"ids": ids, **fields}
    if expected is not None:
        data["expected"] = str(expected)
    return data


async def test_bulk_command_is_confirmed_with_the_count_and_reports_each_device(
    admin_ui: Browser, central: Central, fleet: paper.PaperFleet
) -> None:
    ready = fleet.device_ids[:2]
    held = fleet.device_ids[2]
    async with central.db.session() as s:
        for device_id in (*ready, held):
            device = await s.get(Device, device_id)
            assert device is not None
            device.status = "maintenance" if device_id == held else "online"
    devices = await _devices(central)
    await admin_ui.page("/devices")
    bar = await admin_ui.post(
        "/devices/bulk/bar", _bulk([*ready, held], action="command", op="reboot")
    )
    assert bar.status_code == 200
    assert _confirm(bar.text) == "Send reboot to 3 devices?"
    assert 'name="expected" value="3"' in bar.text
    assert 'id="bulk-arg_delay_s"' in bar.text
    one = await admin_ui.post("/devices/bulk/bar", _bulk(ready[:1], action="command", op="set_fan"))
    assert _confirm(one.text) == "Send set_fan to 1 device?"
    assert 'name="arg_percent"' in one.text
    r = await admin_ui.post(
        "/devices/bulk", _bulk([*ready, held], 3, action="command", op="reboot", arg_delay_s="5")
    )
    assert r.status_code == 200, r.text
    assert "reboot: 2 queued, 1 refused" in r.text
    assert devices[held].name in r.text
    assert devices[held].status in r.text
    assert r.headers["HX-Trigger"] == "wrale-devices-changed"
    async with central.db.session() as s:
        made = list(await s.scalars(select(Command)))
    assert sorted(c.device_id for c in made) == sorted(ready)
    assert all(c.op == "reboot" and c.args == {"delay_s": 5.0} for c in made)


async def test_bulk_refuses_an_unconfirmed_or_stale_count_and_bad_arguments(
    admin_ui: Browser, central: Central, fleet: paper.PaperFleet
) -> None:
    ids = fleet.device_ids[:3]
    await admin_ui.page("/devices")
    r = await admin_ui.post("/devices/bulk", _bulk(ids, 5, action="command", op="reboot"))
    assert r.status_code == 409
    assert r.headers["HX-Retarget"] == "#bulk-body"
    assert "the selection is now 3 devices" in r.text
    assert _confirm(r.text) == "Send reboot to 3 devices?"  # the bar again, to confirm anew
    r = await admin_ui.post("/devices/bulk", _bulk(ids, None, action="command", op="reboot"))
    assert r.status_code == 422
    assert "confirm" in r.text
    r = await admin_ui.post("/devices/bulk", _bulk(ids, 3, action="command", op="set_fan"))
    assert r.status_code == 422
    assert 'id="arg_percent-error"' in r.text
    assert 'aria-invalid="true" aria-describedby="arg_percent-error"' in r.text
    r = await admin_ui.post(
        "/devices/bulk", _bulk(ids, 3, action="command", op="set_fan", arg_percent="150")
    )
    assert r.status_code == 422
    assert "arg_percent-error" in r.text
    assert "100" in r.text
    r = await admin_ui.post("/devices/bulk", _bulk([], 0, action="command", op="reboot"))
    assert r.status_code == 422
    assert "select devices first" in r.text
    r = await admin_ui.post("/devices/bulk", _bulk(ids, 3, action="tag_add", tag="no spaces"))
    assert r.status_code == 422
    assert 'id="tag-error"' in r.text
    p = await paper.admin_principal(central.db)
    async with central.db.session() as s:
        dynamic = await groups.create_group(
            s, p, "dyn", kind="dynamic", selector={"tags_all": ["x"]}
        )
    r = await admin_ui.post("/devices/bulk", _bulk(ids, 3, action="group_add", group_id=dynamic.id))
    assert r.status_code == 409
    assert 'id="group_id-error"' in r.text
    assert "dynamic" in r.text
    async with central.db.session() as s:
        assert not list(await s.scalars(select(Command)))


async def test_bulk_tags_add_and_remove(
    admin_ui: Browser, central: Central, fleet: paper.PaperFleet
) -> None:
    ids = fleet.device_ids[:4]
    await admin_ui.page("/devices")
    bar = await admin_ui.post("/devices/bulk/bar", _bulk(ids, action="tag_add", tag="rack-audit"))
    assert _confirm(bar.text) == 'Add tag "rack-audit" to 4 devices?'
    r = await admin_ui.post("/devices/bulk", _bulk(ids, 4, action="tag_add", tag="rack-audit"))
    assert r.status_code == 200
    assert 'Tag "rack-audit" added to 4 devices; 0 unchanged' in html.unescape(r.text)
    again = await admin_ui.post(
        "/devices/bulk", _bulk(ids[:2], 2, action="tag_add", tag="rack-audit")
    )
    assert "added to 0 devices; 2 unchanged" in again.text
    assert "has it already" in again.text
    devices = await _devices(central)
    assert all("rack-audit" in devices[i].tags for i in ids)
    listed = await admin_ui.page("/devices", tag="rack-audit")
    assert set(ROW.findall(listed.text)) == set(ids)
    r = await admin_ui.post(
        "/devices/bulk", _bulk(ids[:1], 1, action="tag_remove", tag="rack-audit")
    )
    assert "removed from 1 device;" in html.unescape(r.text)
    devices = await _devices(central)
    assert "rack-audit" not in devices[ids[0]].tags
    assert "rack-audit" in devices[ids[1]].tags


async def test_select_all_matching_acts_on_the_filter_not_the_page(
    admin_ui: Browser, central: Central, fleet: paper.PaperFleet
) -> None:
    p = await paper.admin_principal(central.db)
    async with central.db.session() as s:
        group = await groups.create_group(s, p, "room b")
    room_b = fleet.room_ids[1]
    page = await admin_ui.page("/devices", room=room_b, per=25)
    total = int(_count(page.text).rsplit(" ", 1)[1])
    assert total > 25
    assert f"Select all {total} matching devices" in page.text
    flt = html.unescape(
        re.search(r'id="bulk-filter" name="filter" value="([^"]*)"', page.text).group(1)
    )
    assert flt == f"room={room_b}"
    form = {"all_matching": "1", "filter": flt, "action": "group_add", "group_id": group.id}
    bar = await admin_ui.post("/devices/bulk/bar", form)
    assert _confirm(bar.text) == f'Add all {total} matching devices to group "room b"?'
    r = await admin_ui.post("/devices/bulk", {**form, "expected": str(total)})
    assert r.status_code == 200, r.text
    assert f'{total} devices added to group "room b"' in html.unescape(r.text)
    async with central.db.session() as s:
        members = await groups.static_members(s, p.tenant_id, group.id)
    devices = await _devices(central)
    in_room = await admin_ui.page("/devices", room=room_b, per=200)
    assert {d.id for d in members} == set(ROW.findall(in_room.text))
    assert len(members) == total
    assert all(d.id in devices for d in members)


async def test_a_viewer_sees_no_selection_and_cannot_post(
    ui_as: Callable[[str], Awaitable[Browser]], fleet: paper.PaperFleet
) -> None:
    viewer: Browser = await ui_as("viewer")
    r = await viewer.page("/devices")
    assert r.status_code == 200
    assert len(ROW.findall(r.text)) == 50
    assert 'name="ids"' not in r.text
    assert 'id="bulk"' not in r.text
    assert "data-action" not in r.text
    assert "all_matching" not in r.text
    posts = re.findall(r'<form[^>]*method="post"[^>]*>', r.text)
    assert posts == ['<form method="post" action="/logout" class="inline">']
    for path in ("/devices/bulk", "/devices/bulk/bar"):
        r = await viewer.post(path, _bulk(fleet.device_ids[:2], 2, action="command", op="reboot"))
        assert r.status_code == 403
    operator: Browser = await ui_as("operator")
    r = await operator.page("/devices")
    assert 'name="ids"' in r.text
    assert 'id="bulk"' in r.text
    assert ">disarm<" not in r.text  # disarm needs an admin, and the server says so too
    r = await operator.post(
        "/devices/bulk", _bulk(fleet.device_ids[:1], 1, action="command", op="disarm")
    )
    assert r.status_code == 403
