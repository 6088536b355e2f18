"""The maintenance page and the device page's wear section without a browser, on both
databases: the queue with a worn board, windows created with the form and deleted, roles
(a viewer reads but has no form and cannot post), CSRF, and hostile form input (a 422
naming the field, nothing saved, never a 5xx)."""

from __future__ import annotations

import pytest

from tests.conftest import Central
from tests.fleet.brain.wear_kit import worn_fan
from tests.user.ui.conftest import Browser, SignIn
from tests.user.ui.test_jobs_pages import post, rack_of_boards
from tests.user.ui.test_physical import elements

API = "/api/v1"
FORM = {
    "name": "nightly",
    "scope": "fleet",
    "cron": "0 2 * * *",
    "duration_min": "120",
    "timezone": "Europe/Berlin",
    "not_on_battery": "on",
    "battery_min_pct": "40",
    "enabled": "on",
}


async def listed(c: Central) -> list[dict[str, object]]:
    r = await c.http.get(f"{API}/maintenance/windows", headers=c.admin)
    assert r.status_code == 200, r.text
    return list(r.json())


async def test_operator_creates_a_window_sees_it_listed_and_deletes_it(
    central: Central, ui_as: SignIn
) -> None:
    ui = await ui_as("operator")
    r = await ui.page("/maintenance")
    assert r.status_code == 200, r.text
    assert 'id="window-form"' in r.text
    assert "No maintenance windows" in r.text
    assert 'id="queue-empty"' in r.text
    r = await ui.post("/maintenance/windows", FORM)
    assert r.status_code == 200, r.text
    assert r.headers["HX-Redirect"] == "/maintenance"  # a hash alone would not reload
    (w,) = await listed(central)
    assert w["duration_s"] == 7200
    assert w["conditions"] == {"not_on_battery": True, "battery_min_pct": 40.0}
    assert w["timezone"] == "Europe/Berlin"
    r = await ui.page("/maintenance")
    row = next(a for a in elements(r.text, "tr") if a.get("data-window-id") == w["id"])
    assert row
    assert "nightly" in r.text
    assert "0 2 * * *" in r.text
    assert "2 h" in r.text
    assert "not on battery, battery ≥ 40 %" in r.text
    r = await ui.post(f"/maintenance/windows/{w['id']}/delete")
    assert r.status_code == 200
    assert await listed(central) == []


async def test_a_window_covers_a_site_chosen_in_the_picker(central: Central, ui_as: SignIn) -> None:
    site = await post(central, "/sites", {"name": "Depot"})
    ui = await ui_as("operator")
    r = await ui.page("/maintenance")
    assert f'<option value="{site["id"]}">Depot</option>' in r.text
    r = await ui.post("/maintenance/windows", FORM | {"scope": "site", "site_id": site["id"]})
    assert r.status_code == 200, r.text
    (w,) = await listed(central)
    assert (w["scope"], w["scope_id"]) == ("site", site["id"])
    assert "site Depot" in (await ui.page("/maintenance")).text


async def test_a_viewer_reads_but_cannot_create_or_delete(central: Central, ui_as: SignIn) -> None:
    made = await central.http.post(
        f"{API}/maintenance/windows",
        json={"name": "w", "cron": "0 3 * * *", "duration_s": 3600},
        headers=central.admin,
    )
    assert made.status_code == 201, made.text
    viewer = await ui_as("viewer")
    r = await viewer.page("/maintenance")
    assert r.status_code == 200
    assert made.json()["id"] in r.text
    assert 'id="window-form"' not in r.text
    assert "/delete" not in r.text
    assert (await viewer.post("/maintenance/windows", FORM)).status_code == 403
    assert (await viewer.post("/maintenance/windows", FORM, htmx=False)).status_code == 403
    wid = made.json()["id"]
    assert (await viewer.post(f"/maintenance/windows/{wid}/delete")).status_code == 403
    assert len(await listed(central)) == 1


async def test_a_post_without_the_csrf_token_is_refused(central: Central, ui_as: SignIn) -> None:
    ui = await ui_as("operator")
    await ui.page("/maintenance")
    assert (await ui.http.post("/maintenance/windows", data=FORM)).status_code == 403
    assert await listed(central) == []


HOSTILE: list[tuple[dict[str, str], str]] = [
    ({"name": ""}, "name"),
    ({"name": "x" * 300}, "name"),
    ({"name": "bad\x01name"}, "name"),
    ({"scope": "planet"}, "scope"),
    ({"scope": "site"}, "site_id"),
    ({"scope": "site", "site_id": "0" * 32}, "site_id"),
    ({"scope": "group", "group_id": "../../etc"}, "group_id"),
    ({"cron": ""}, "cron"),
    ({"cron": "61 * * * *"}, "cron"),
    ({"cron": "* * * * * * * *"}, "cron"),
    ({"cron": "0 2 * * *\x00"}, "cron"),
    ({"duration_min": ""}, "duration_min"),
    ({"duration_min": "abc"}, "duration_min"),
    ({"duration_min": "nan"}, "duration_min"),
    ({"duration_min": "inf"}, "duration_min"),
    ({"duration_min": "0"}, "duration_min"),
    ({"duration_min": "9" * 300}, "duration_min"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"timezone": "../../etc/passwd"}, "timezone"),
    ({"battery_min_pct": "150"}, "battery_min_pct"),
    ({"battery_min_pct": "-1"}, "battery_min_pct"),
    ({"battery_min_pct": "nan"}, "battery_min_pct"),
    ({"ambient_max_c": "1e999"}, "ambient_max_c"),
    ({"ambient_max_c": "warm"}, "ambient_max_c"),
]


@pytest.mark.parametrize(("change", "field"), HOSTILE)
async def test_hostile_forms_are_refused_with_the_field_named(
    central: Central, admin_ui: Browser, change: dict[str, str], field: str
) -> None:
    await admin_ui.page("/maintenance")
    r = await admin_ui.post("/maintenance/windows", FORM | change)
    assert r.status_code == 422, r.text
    assert f'id="{field}-error"' in r.text, r.text
    plain = await admin_ui.post("/maintenance/windows", FORM | change, htmx=False)
    assert plain.status_code == 422
    assert 'id="window-form"' in plain.text
    assert await listed(central) == []  # nothing of a refused form is kept


async def test_unknown_windows_and_empty_forms_are_4xx(central: Central, admin_ui: Browser) -> None:
    await admin_ui.page("/maintenance")
    assert (await admin_ui.post("/maintenance/windows", {})).status_code == 422
    for bad in ("nope", "0" * 32, "x" * 5000):
        r = await admin_ui.post(f"/maintenance/windows/{bad}/delete")
        assert r.status_code in (404, 405), bad


async def test_the_queue_and_the_device_page_show_a_worn_fan(
    central: Central, admin_ui: Browser
) -> None:
    rack_id, ids = await rack_of_boards(central, "sim-a", "sim-b")
    await worn_fan(central.db, ids["sim-a"])
    r = await admin_ui.page("/maintenance")
    assert r.status_code == 200, r.text
    visits = [a for a in elements(r.text, "li") if "data-rack-id" in a]
    assert [v["data-rack-id"] for v in visits] == [rack_id]
    rows = [a for a in elements(r.text, "tr") if "data-kind" in a]
    assert [(a["data-device-id"], a["data-kind"]) for a in rows] == [(ids["sim-a"], "fan_wear")]
    assert f'href="/devices/{ids["sim-a"]}#wear"' in r.text
    assert "Rack A1" in r.text
    assert "site HQ" in r.text
    assert "fan (bearing wear)" in r.text

    r = await admin_ui.page(f"/devices/{ids['sim-a']}")
    assert r.status_code == 200, r.text
    assert 'id="wear"' in r.text
    charts = [a for a in elements(r.text, "div") if a.get("data-kind") == "fan_wear"]
    assert charts[0]["data-worn"] == "true"
    assert "<polyline" in r.text
    assert "Replace before" in r.text
    assert 'data-may-disrupt="true"' in r.text  # no window covers it

    made = await central.http.post(
        f"{API}/maintenance/windows",
        json={"name": "w", "cron": "0 3 1 1 *", "duration_s": 3600},
        headers=central.admin,
    )
    assert made.status_code == 201, made.text
    r = await admin_ui.page(f"/devices/{ids['sim-b']}")
    assert 'data-may-disrupt="false"' in r.text
    assert "Next window opens" in r.text
    assert 'id="wear-none"' in r.text
