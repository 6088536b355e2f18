"""The group pages refresh live: their member lists follow the live stream's events (device
status, events, twins, and ``group.changed``, which each dashboard edit of a group announces
once committed, never for a refused one), with a slow poll for edits made elsewhere."""

from __future__ import annotations

import asyncio
import re

from tests.conftest import Central
from tests.user.ui.conftest import Browser
from tests.user.ui.test_groups import make_devices, tenant_of
from wrale.fleet.brain.bus import BusEvent
from wrale.user.ui.live import wanted

LIVE = re.compile(r'<div id="(members-live|groups-live)"[^>]*hx-trigger="([^"]*)"')


def test_every_page_hears_group_changes_and_placements() -> None:
    assert wanted(BusEvent("t1", "group.changed", {"group_id": "g"}), None)
    # the physical view listens for wrale-device-location: it must reach the page
    assert wanted(BusEvent("t1", "device.location", {"device_id": "d"}), None)


async def test_group_pages_refresh_on_live_events(central: Central, admin_ui: Browser) -> None:
    ids = await make_devices(central, ("rack-pi-1", {}), ("rack-pi-2", {}))
    bus = central.app.state.wrale.bus
    async with bus.subscribe(await tenant_of(central)) as queue:
        r = await admin_ui.post("/groups", {"name": "live", "kind": "static"})
        assert r.status_code == 200, r.text
        url = r.headers["HX-Redirect"]
        gid = url.removeprefix("/groups/")
        r = await admin_ui.post(f"{url}/members", {"device": "rack-pi-1"})
        assert r.status_code == 200, r.text
        r = await admin_ui.post(f"{url}/members", {"device": "nobody"})  # refused: no event
        assert r.status_code == 422
        r = await admin_ui.post(f"{url}/members/{ids['rack-pi-1']}/remove")
        assert r.status_code == 200, r.text
        seen = []
        while True:
            try:
                ev = await asyncio.wait_for(queue.get(), 1.0)
            except TimeoutError:
                break
            if ev.kind.startswith("group."):
                seen.append((ev.kind, ev.data["group_id"]))
    assert seen == [("group.changed", gid)] * 3  # created, added, removed

    for path, which in ((url, "members-live"), ("/groups", "groups-live")):
        page = (await admin_ui.page(path)).text
        m = LIVE.search(page)
        assert m, path
        assert m.group(1) == which
        for trigger in ("wrale-group from:body", "wrale-device from:body", "every 30s"):
            assert trigger in m.group(2), (path, trigger)
    # the members' refresh asks for the fragment and takes its list and count, not the form
    page = (await admin_ui.page(url)).text
    assert f'hx-get="/groups/{gid}/_members?page=1"' in page
    assert 'hx-select="#members-live" hx-select-oob="#members-count"' in page
    fragment = (await admin_ui.fragment(f"{url}/_members")).text
    assert '<div id="members-live"' in fragment
    assert 'id="members-count">(0)<' in fragment
