"""The maintenance page's rules and tasks without a browser, on both databases: a viewer
reads the rules but gets no form or buttons (and cannot post); an operator creates a rule
with the condition builder (a 422 names the field for a bad metric, a bad duration and
other hostile input, nothing saved) and deletes it; an open task shows in the queue beside
its board and on the device page, and is closed there with "Done" and a note."""

from __future__ import annotations

import time

import pytest

from tests.conftest import Central
from tests.user.ui.conftest import Browser, SignIn
from tests.user.ui.test_jobs_pages import post, rack_of_boards
from tests.user.ui.test_physical import elements
from wrale.fleet.brain.models.maintenance import MaintenanceRule
from wrale.fleet.brain.services.maintenance import tasks

API = "/api/v1"
FORM = {
    "name": "hot and slow fan",
    "scope": "fleet",
    "mode": "all",
    "c0_metric": "cpu_temp_c",
    "c0_op": ">",
    "c0_value": "75",
    "c0_for": "2h",
    "c1_metric": "fan_rpm",
    "c1_op": "<",
    "c1_value": "1500",
    "c1_for": "30m",
    "due_days": "3",
}
HOT = {"all": [{"metric": "cpu_temp_c", "op": ">", "value": 75, "for_s": 600}]}


async def rules_listed(c: Central) -> list[dict[str, object]]:
    r = await c.http.get(f"{API}/maintenance/rules", headers=c.admin)
    assert r.status_code == 200, r.text
    return list(r.json())


async def make_rule(c: Central, **more: object) -> dict[str, object]:
    r = await c.http.post(
        f"{API}/maintenance/rules",
        json={"name": "hot", "title": "Clean the heatsink", "condition": HOT} | more,
        headers=c.admin,
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def open_a_task(c: Central, rule_id: str, device_id: str) -> str:
    """An open task of the rule on the board, as the rules runner opens one."""
    async with c.db.session() as s:
        rule = await s.get(MaintenanceRule, rule_id)
        assert rule is not None
        t = tasks.open_task(s, rule, device_id, {"cpu_temp_c": 81.0}, time.time())
        await s.flush()
        return t.id


async def test_operator_creates_a_rule_sees_it_listed_and_deletes_it(
    central: Central, ui_as: SignIn
) -> None:
    site = await post(central, "/sites", {"name": "Depot"})
    ui = await ui_as("operator")
    r = await ui.page("/maintenance")
    assert r.status_code == 200, r.text
    assert 'id="rule-form"' in r.text
    assert "No maintenance rules" in r.text
    assert f'<option value="{site["id"]}">Depot</option>' in r.text
    r = await ui.post("/maintenance/rules", FORM | {"scope": "site", "site_id": site["id"]})
    assert r.status_code == 200, r.text
    assert r.headers["HX-Redirect"] == "/maintenance"
    (rule,) = await rules_listed(central)
    assert rule["condition"] == {
        "all": [
            {"metric": "cpu_temp_c", "op": ">", "value": 75.0, "for_s": 7200.0},
            {"metric": "fan_rpm", "op": "<", "value": 1500.0, "for_s": 1800.0},
        ]
    }
    assert (rule["scope"], rule["scope_id"], rule["due_in_s"]) == ("site", site["id"], 259_200)
    r = await ui.page("/maintenance")
    (row,) = [a for a in elements(r.text, "tr") if a.get("data-rule-id") == rule["id"]]
    assert row
    assert "cpu_temp_c &gt; 75 for 2h AND fan_rpm &lt; 1500 for 30m" in r.text
    assert "site Depot" in r.text
    assert "3 days" in r.text
    assert f'hx-post="/maintenance/rules/{rule["id"]}/delete"' in r.text
    r = await ui.post(f"/maintenance/rules/{rule['id']}/delete")
    assert r.status_code == 200, r.text
    assert await rules_listed(central) == []


async def test_any_of_the_rows_and_empty_rows_ignored(central: Central, ui_as: SignIn) -> None:
    ui = await ui_as("operator")
    await ui.page("/maintenance")
    form = {k: v for k, v in FORM.items() if not k.startswith("c0_")} | {"mode": "any"}
    r = await ui.post("/maintenance/rules", form, htmx=False)
    assert r.status_code == 303, r.text
    (rule,) = await rules_listed(central)
    assert rule["condition"] == {
        "any": [{"metric": "fan_rpm", "op": "<", "value": 1500.0, "for_s": 1800.0}]
    }


async def test_a_viewer_reads_the_rules_but_cannot_change_them(
    central: Central, ui_as: SignIn
) -> None:
    _, ids = await rack_of_boards(central, "sim-a")
    rule = await make_rule(central)
    task_id = await open_a_task(central, str(rule["id"]), ids["sim-a"])
    viewer = await ui_as("viewer")
    r = await viewer.page("/maintenance")
    assert r.status_code == 200
    assert "cpu_temp_c &gt; 75 for 10m" in r.text
    assert 'id="rule-form"' not in r.text
    assert "/delete" not in r.text
    assert "/done" not in r.text
    assert task_id in r.text  # the task is listed, without its form
    assert (await viewer.post("/maintenance/rules", FORM)).status_code == 403
    assert (await viewer.post(f"/maintenance/rules/{rule['id']}/delete")).status_code == 403
    assert (await viewer.post(f"/maintenance/tasks/{task_id}/done")).status_code == 403
    r = await viewer.page(f"/devices/{ids['sim-a']}")
    assert task_id in r.text
    assert "/done" not in r.text
    assert len(await rules_listed(central)) == 1


HOSTILE: list[tuple[dict[str, str], str]] = [
    ({"c1_metric": "no_such_metric"}, "c1_metric"),
    ({"c0_metric": "Bad Metric!"}, "c0_metric"),
    ({"c1_for": "soon"}, "c1_for"),
    ({"c0_for": "-5m"}, "c0_for"),
    ({"c0_for": "9d"}, "c0_for"),
    ({"c0_value": "warm"}, "c0_value"),
    ({"c0_value": "nan"}, "c0_value"),
    ({"c1_value": ""}, "c1_value"),
    ({"c0_op": "=~"}, "c0_op"),
    (
        {
            "c0_metric": "",
            "c0_value": "",
            "c0_for": "",
            "c1_metric": "",
            "c1_value": "",
            "c1_for": "",
        },
        "c0_metric",
    ),
    ({"name": ""}, "name"),
    ({"name": "x" * 300}, "name"),
    ({"name": "bad\x01name"}, "name"),
    ({"scope": "planet"}, "scope"),
    ({"mode": "most"}, "mode"),
    ({"scope": "rack"}, "rack_id"),
    ({"scope": "device", "device_id": "0" * 32}, "device_id"),
    ({"scope": "group", "group_id": "../../etc"}, "group_id"),
    ({"due_days": ""}, "due_days"),
    ({"due_days": "0"}, "due_days"),
    ({"due_days": "inf"}, "due_days"),
    ({"due_days": "9" * 300}, "due_days"),
]


@pytest.mark.parametrize(("change", "field"), HOSTILE)
async def test_hostile_rule_forms_are_refused_with_the_field_named(
    central: Central, admin_ui: Browser, change: dict[str, str], field: str
) -> None:
    await admin_ui.page("/maintenance")
    r = await admin_ui.post("/maintenance/rules", FORM | change)
    assert r.status_code == 422, r.text
    assert f'id="{field}-error"' in r.text, r.text
    assert 'id="rule-form"' in r.text
    plain = await admin_ui.post("/maintenance/rules", FORM | change, htmx=False)
    assert plain.status_code == 422
    assert f'id="{field}-error"' in plain.text
    assert await rules_listed(central) == []  # nothing of a refused form is kept


async def test_unknown_rules_and_tasks_are_4xx(central: Central, admin_ui: Browser) -> None:
    await admin_ui.page("/maintenance")
    assert (await admin_ui.post("/maintenance/rules", {})).status_code == 422
    for bad in ("nope", "0" * 32, "x" * 5000):
        assert (await admin_ui.post(f"/maintenance/rules/{bad}/delete")).status_code in (404, 405)
        r = await admin_ui.post(f"/maintenance/tasks/{bad}/done", {"note": "x"})
        assert r.status_code in (404, 405), bad


async def test_an_open_task_in_the_queue_and_on_the_device_page_closed_with_done(
    central: Central, admin_ui: Browser
) -> None:
    rack_id, ids = await rack_of_boards(central, "sim-a", "sim-b")
    rule = await make_rule(central, due_in_s=2 * 86_400)
    first = await open_a_task(central, str(rule["id"]), ids["sim-a"])
    second = await open_a_task(central, str(rule["id"]), ids["sim-b"])

    r = await admin_ui.page("/maintenance")
    assert r.status_code == 200, r.text
    visits = [a for a in elements(r.text, "li") if "data-rack-id" in a]
    assert [v["data-rack-id"] for v in visits] == [rack_id]  # tasks only: the rack's visit
    rows = [a for a in elements(r.text, "tr") if "data-task-id" in a]
    assert {(a["data-device-id"], a["data-task-id"]) for a in rows} == {
        (ids["sim-a"], first),
        (ids["sim-b"], second),
    }
    assert "Clean the heatsink" in r.text
    assert "rule hot" in r.text
    assert "Rack A1" in r.text
    assert f'hx-post="/maintenance/tasks/{first}/done"' in r.text
    (rrow,) = [a for a in elements(r.text, "tr") if a.get("data-rule-id") == rule["id"]]
    assert rrow

    r = await admin_ui.post(f"/maintenance/tasks/{first}/done", {"note": "heatsink cleaned"})
    assert r.status_code == 200, r.text
    assert r.headers["HX-Redirect"] == "/maintenance"
    done = await central.http.get(
        f"{API}/maintenance/tasks", params={"state": "done"}, headers=central.admin
    )
    assert [(t["id"], t["note"], t["close_reason"]) for t in done.json()] == [
        (first, "heatsink cleaned", "done")
    ]
    r = await admin_ui.page("/maintenance")
    assert first not in r.text
    assert second in r.text
    again = await admin_ui.post(f"/maintenance/tasks/{first}/done", {"note": "twice"})
    assert again.status_code == 409

    r = await admin_ui.page(f"/devices/{ids['sim-b']}")
    assert r.status_code == 200, r.text
    (item,) = [a for a in elements(r.text, "li") if a.get("data-task-id") == second]
    assert item
    assert "Open maintenance tasks" in r.text
    assert f'hx-post="/maintenance/tasks/{second}/done?from=device"' in r.text
    r = await admin_ui.post(f"/maintenance/tasks/{second}/done?from=device", {"note": ""})
    assert r.status_code == 200, r.text
    assert r.headers["HX-Redirect"] == f"/devices/{ids['sim-b']}"
    r = await admin_ui.page(f"/devices/{ids['sim-b']}")
    assert second not in r.text
    assert "Open maintenance tasks" not in r.text
    r = await admin_ui.page("/maintenance")
    assert 'id="queue-empty"' in r.text
