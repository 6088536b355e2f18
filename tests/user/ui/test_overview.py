"""The fleet overview without a browser: devices, racks and telemetry made through the REST
API (statuses, alerts and events written as the device channel would), then each part of
the page and its htmx fragment checked; stale readings are left out of "now" figures."""

from __future__ import annotations

import time
from typing import Any

from tests.conftest import Central
from tests.user.ui.conftest import Browser
from tests.user.ui.test_physical import board, elements, post

API = "/api/v1"


async def tenant_of(c: Central) -> str:
    r = await c.http.get(f"{API}/auth/me", headers=c.admin)
    tenant: str = r.json()["tenant_id"]
    return tenant


async def set_statuses(c: Central, statuses: dict[str, str]) -> None:
    """device id → status, as the device channel sets online/offline/error."""
    from wrale.fleet.brain.models import Device

    async with c.db.session() as s:
        for device_id, status in statuses.items():
            device = await s.get(Device, device_id)
            assert device is not None
            device.status = status


async def add_alert(c: Central, device_id: str, severity: str, state: str, msg: str) -> None:
    from wrale.fleet.brain.models.alerts import Alert

    now = time.time()
    async with c.db.session() as s:
        s.add(
            Alert(
                tenant_id=await tenant_of(c),
                rule_name="test rule",
                key=device_id,
                device_id=device_id,
                metric="cpu_temp_c",
                severity=severity,
                state=state,
                message=msg,
                raised_at=now,
                updated_at=now,
            )
        )


async def add_event(c: Central, device_id: str, seq: int, kind: str, message: str) -> None:
    from wrale.fleet.brain.models.channel import DeviceEvent

    async with c.db.session() as s:
        s.add(
            DeviceEvent(
                tenant_id=await tenant_of(c),
                device_id=device_id,
                seq=seq,
                idx=0,
                ts=time.time(),
                type=kind,
                severity="warning",
                message=message,
                data={},
            )
        )


async def report(c: Central, device_id: str, seq: int, ago_s: float, **metrics: float) -> None:
    ts = time.time() - ago_s
    points = [{"metric": m, "ts": ts, "value": v} for m, v in metrics.items()]
    r = await c.http.post(
        f"{API}/devices/{device_id}/telemetry",
        json={"seq": seq, "points": points},
        headers=c.admin,
    )
    assert r.status_code == 200, r.text


async def small_fleet(c: Central) -> dict[str, Any]:
    """Room Lab with rack A1 (budget 10 W): pi-1 (hot, on battery), pi-2 and a stale pi-3;
    pi-4 is not in a rack."""
    site = await post(c, "/sites", {"name": "HQ"})
    room = await post(c, "/rooms", {"site_id": site["id"], "name": "Lab"})
    rack = await post(
        c, "/racks", {"room_id": room["id"], "name": "A1", "units": 8, "power_budget_w": 10}
    )
    d1 = await board(c, "pi-1", rack["id"], 1)
    d2 = await board(c, "pi-2", rack["id"], 2)
    d3 = await board(c, "pi-3", rack["id"], 3)
    d4 = (await post(c, "/devices", {"name": "pi-4"}))["id"]
    await report(c, d1, 1, 30, cpu_temp_c=81.0, power_w=6.0, on_battery=1, battery_pct=64)
    await report(c, d2, 1, 30, cpu_temp_c=52.0, power_w=5.0, on_battery=0)
    await report(c, d3, 1, 3600, cpu_temp_c=99.0, power_w=50.0, on_battery=1)  # an hour old
    await report(c, d4, 1, 30, cpu_temp_c=44.0, power_w=3.0)
    await set_statuses(c, {d1: "online", d2: "online", d3: "offline", d4: "error"})
    return {"room": room["id"], "rack": rack["id"], "ids": [d1, d2, d3, d4]}


async def test_overview_counts_statuses_alerts_power_temperatures_battery_and_events(
    central: Central, admin_ui: Browser
) -> None:
    fleet = await small_fleet(central)
    d1, d2, *_ = fleet["ids"]
    await add_alert(central, d1, "CRITICAL", "active", "pi-1 is too hot")
    await add_alert(central, d2, "MAJOR", "acknowledged", "pi-2 fan slow")
    await add_alert(central, d2, "MAJOR", "cleared", "old news")
    await add_event(central, d1, 1, "power.source_changed", "mains lost: on battery")
    r = await admin_ui.page("/")
    assert r.status_code == 200, r.text
    html = r.text
    tiles = {a["data-status"]: a for a in elements(html, "a", "tile")}
    assert tiles["online"]["data-count"] == "2"
    assert tiles["offline"]["data-count"] == "1"
    assert tiles["error"]["data-count"] == "1"
    assert tiles["maintenance"]["data-count"] == "0"
    assert tiles["online"]["href"] == "/devices?status=online"
    sev = {t["data-severity"]: t for t in elements(html, "tr") if "data-severity" in t}
    assert (sev["critical"]["data-active"], sev["critical"]["data-acknowledged"]) == ("1", "0")
    assert (sev["major"]["data-active"], sev["major"]["data-acknowledged"]) == ("0", "1")
    assert "pi-1 is too hot" in html
    assert "old news" not in html  # cleared alerts are not open
    # power: only fresh readings (pi-3's 50 W is an hour old); A1 draws 11 of 10 W
    (draw,) = [e for e in elements(html, "div") if "data-draw-w" in e]
    assert float(draw["data-draw-w"]) == 14.0  # pi-1 + pi-2 + pi-4 (not racked)
    assert "11 W</strong> of 10 W" in html
    assert "1 rack over budget" in html
    # temperatures: three fresh readings, 44 / 52 / 81
    (median,) = [e for e in elements(html, "strong") if "data-median-c" in e]
    assert float(median["data-median-c"]) == 52.0
    bars = {g["data-label"]: int(g["data-count"]) for g in elements(html, "g", "bar")}
    assert {k: v for k, v in bars.items() if v} == {"40–45": 1, "50–55": 1, "80–85": 1}
    assert "1 without a recent reading" in html
    # battery: pi-1 only (pi-3's reading is stale)
    (on_battery,) = [e for e in elements(html, "div") if "data-on-battery" in e]
    assert on_battery["data-on-battery"] == "1"
    assert f'href="/devices/{d1}"' in html
    assert f"/physical?metric=status&amp;room={fleet['room']}" in html
    # events
    assert len([t for t in elements(html, "tr") if "data-event-id" in t]) == 1
    assert "mains lost: on battery" in html
    assert "power.source_changed" in html
    # the live hooks
    assert 'hx-get="/_overview/now" hx-trigger="every 15s' in html
    assert 'hx-trigger="wrale-alert from:body throttle:2s"' in html


async def test_each_part_is_a_fragment(central: Central, admin_ui: Browser) -> None:
    await small_fleet(central)
    parts = {
        "status": ["status"],
        "alerts": ["alerts"],
        "now": ["power", "temperature", "battery"],  # one read, one fragment
        "events": ["events"],
    }
    for part, panels in parts.items():
        r = await admin_ui.fragment(f"/_overview/{part}")
        assert r.status_code == 200, (part, r.text)
        assert "<html" not in r.text
        for panel in panels:
            assert f'id="ov-{panel}-h"' in r.text
    r = await admin_ui.fragment("/_overview/secrets")
    assert r.status_code == 404
    assert r.headers["HX-Reswap"] == "none"


async def test_empty_fleet(admin_ui: Browser) -> None:
    r = await admin_ui.page("/")
    assert r.status_code == 200
    assert "No devices yet" in r.text
    assert "No open alerts" in r.text
    assert "No events from the boards yet" in r.text
    assert "No board has reported a CPU temperature" in r.text


async def test_a_viewer_sees_the_overview_without_actions(central: Central, ui_as: Any) -> None:
    await small_fleet(central)
    viewer = await ui_as("viewer")
    r = await viewer.page("/")
    assert r.status_code == 200
    assert "data-action" not in r.text
    forms = elements(r.text, "form")
    assert [f["action"] for f in forms if f.get("method") == "post"] == ["/logout"]
