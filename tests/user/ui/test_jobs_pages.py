"""The jobs pages without a browser, on both databases: the list and its create form
(operators), a job's placements and their history, stopping it, the physical view's job
marks and capping marks on the rack power bars, roles (a viewer reads but cannot create
or stop), and hostile form input (always a 4xx naming the field, never a 5xx)."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.conftest import Central
from tests.user.ui.conftest import Browser, SignIn
from tests.user.ui.test_physical import elements
from wrale.fleet.brain.bus import BusEvent
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.jobs import JobPlacement
from wrale.fleet.brain.services.decision_loops import save_state
from wrale.user.ui.live import wanted
from wrale.user.ui.pages import jobs as jobs_page

API = "/api/v1"
SIM = {"kind": "sim_load", "cpu_pct": 30}
FORM = {
    "name": "render-ui",
    "kind": "sim_load",
    "cpu_pct": "30",
    "argv": "",
    "replicas": "2",
    "priority": "60",
    "strategy": "spread",
}


async def post(c: Central, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await c.http.post(f"{API}{path}", json=body, headers=c.admin)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def rack_of_boards(c: Central, *names: str) -> tuple[str, dict[str, str]]:
    """A rack (budget 12 W) holding simulated boards, online now; returns (rack id, ids)."""
    site = await post(c, "/sites", {"name": "HQ"})
    room = await post(c, "/rooms", {"site_id": site["id"], "name": "Lab"})
    rack = await post(
        c, "/racks", {"room_id": room["id"], "name": "A1", "units": 10, "power_budget_w": 12}
    )
    ids = {}
    for slot, name in enumerate(names, start=1):
        ids[name] = (await post(c, "/devices", {"name": name, "capabilities": ["sim"]}))["id"]
        r = await c.http.put(
            f"{API}/devices/{ids[name]}/location",
            json={"rack_id": rack["id"], "slot_u": slot},
            headers=c.admin,
        )
        assert r.status_code == 200, r.text
    async with c.db.session() as s:
        for device_id in ids.values():
            d = await s.get(Device, device_id)
            assert d is not None
            d.status, d.last_seen_at = "online", time.time()
    return rack["id"], ids


async def create_in_ui(ui: Browser, form: dict[str, str]) -> str:
    await ui.page("/jobs")
    r = await ui.post("/jobs", form)
    assert r.status_code == 200, r.text
    location = r.headers["HX-Redirect"]
    assert re.fullmatch(r"/jobs/[0-9a-f]{32}", location), location
    return location.rsplit("/", 1)[1]


async def test_operator_creates_a_job_sees_its_placements_and_stops_it(
    central: Central, ui_as: SignIn
) -> None:
    c = central
    _, boards = await rack_of_boards(c, "sim-a", "sim-b")
    ui = await ui_as("operator")
    r = await ui.page("/jobs")
    assert r.status_code == 200
    assert 'id="job-form"' in r.text
    assert "No jobs" in r.text
    job_id = await create_in_ui(ui, FORM)

    r = await ui.page(f"/jobs/{job_id}")
    assert r.status_code == 200, r.text
    rows = elements(r.text, "tr")
    placed = [a for a in rows if "data-placement-id" in a]
    assert len(placed) == 2
    assert {a["data-device-id"] for a in placed} == set(boards.values())
    assert {a["data-state"] for a in placed} == {"starting"}
    assert "sim-a" in r.text
    assert "sim-b" in r.text
    assert ">A1<" in r.text
    assert "pending → <strong>starting</strong>" in r.text  # each placement's history
    assert f'href="/physical?job={job_id}"' in r.text

    r = await ui.page("/jobs")
    row = next(a for a in elements(r.text, "tr") if a.get("data-job-id") == job_id)
    assert (row["data-placed"], row["data-replicas"], row["data-state"]) == ("2", "2", "running")
    assert "render-ui" in r.text
    assert ">spread<" in r.text
    assert ">60<" in r.text

    frag = await ui.fragment(f"/jobs/{job_id}/_placements")
    assert frag.status_code == 200
    assert 'id="placements"' in frag.text
    assert "<html" not in frag.text

    await ui.page(f"/jobs/{job_id}")
    r = await ui.post(f"/jobs/{job_id}/stop")
    assert r.status_code == 200
    assert r.headers["HX-Redirect"] == f"/jobs/{job_id}"
    body = (await c.http.get(f"{API}/jobs/{job_id}", headers=c.admin)).json()
    assert body["stopped_at"] is not None
    r = await ui.page(f"/jobs/{job_id}")
    assert 'id="job-stop"' not in r.text  # asked once: no second stop button


async def test_a_process_job_from_the_form_keeps_its_argv(central: Central, ui_as: SignIn) -> None:
    await rack_of_boards(central, "sim-a")
    ui = await ui_as("operator")
    form = FORM | {"kind": "process", "argv": "/usr/bin/stress-ng --cpu 1 'a b'", "replicas": "1"}
    job_id = await create_in_ui(ui, form)
    body = (await central.http.get(f"{API}/jobs/{job_id}", headers=central.admin)).json()
    assert body["workload"]["argv"] == ["/usr/bin/stress-ng", "--cpu", "1", "a b"]
    r = await ui.page(f"/jobs/{job_id}")
    assert "/usr/bin/stress-ng --cpu 1 &#39;a b&#39;" in r.text


async def test_a_viewer_reads_jobs_but_cannot_create_or_stop(
    central: Central, ui_as: SignIn
) -> None:
    await rack_of_boards(central, "sim-a")
    job = await post(central, "/jobs", {"name": "j", "workload": SIM, "replicas": 1})
    viewer = await ui_as("viewer")
    r = await viewer.page("/jobs")
    assert r.status_code == 200
    assert job["id"] in r.text
    assert 'id="job-form"' not in r.text
    r = await viewer.page(f"/jobs/{job['id']}")
    assert r.status_code == 200
    assert 'id="job-stop"' not in r.text
    assert (await viewer.post("/jobs", FORM)).status_code == 403
    assert (await viewer.post(f"/jobs/{job['id']}/stop")).status_code == 403
    assert (await viewer.post("/jobs", FORM, htmx=False)).status_code == 403
    listed = (await central.http.get(f"{API}/jobs", headers=central.admin)).json()["items"]
    assert [j["id"] for j in listed] == [job["id"]]
    assert listed[0]["stopped_at"] is None


async def test_a_post_without_the_csrf_token_is_refused(central: Central, ui_as: SignIn) -> None:
    ui = await ui_as("operator")
    await ui.page("/jobs")
    r = await ui.http.post("/jobs", data=FORM)
    assert r.status_code == 403


HOSTILE: list[tuple[dict[str, str], str]] = [
    ({"replicas": "abc"}, "replicas"),
    ({"replicas": "0"}, "replicas"),
    ({"replicas": "1e9"}, "replicas"),
    ({"replicas": "9" * 400}, "replicas"),
    ({"priority": "101"}, "priority"),
    ({"priority": "-1"}, "priority"),
    ({"kind": "shell"}, "kind"),
    ({"strategy": "random"}, "strategy"),
    ({"cpu_pct": "nan"}, "cpu_pct"),
    ({"cpu_pct": "inf"}, "cpu_pct"),
    ({"cpu_pct": "150"}, "cpu_pct"),
    ({"cpu_pct": ""}, "cpu_pct"),
    ({"name": ""}, "name"),
    ({"name": "x" * 300}, "name"),
    ({"name": "bad\x01name"}, "name"),
    ({"kind": "process", "argv": ""}, "argv"),
    ({"kind": "process", "argv": "/bin/echo 'unclosed"}, "argv"),
    ({"kind": "process", "argv": "/bin/echo \x00"}, "argv"),
    ({"kind": "process", "argv": "a " * 100}, "argv"),
]


@pytest.mark.parametrize(("change", "field"), HOSTILE)
async def test_hostile_create_forms_are_refused_with_the_field_named(
    central: Central, admin_ui: Browser, change: dict[str, str], field: str
) -> None:
    await admin_ui.page("/jobs")
    r = await admin_ui.post("/jobs", FORM | change)
    assert r.status_code == 422, r.text
    assert f'id="{field}-error"' in r.text, r.text
    plain = await admin_ui.post("/jobs", FORM | change, htmx=False)
    assert plain.status_code == 422
    assert 'id="job-form"' in plain.text
    listed = (await central.http.get(f"{API}/jobs", headers=central.admin)).json()["items"]
    assert listed == []  # nothing of a refused form is kept


async def test_missing_and_repeated_fields_and_unknown_jobs_are_4xx(
    central: Central, admin_ui: Browser
) -> None:
    await admin_ui.page("/jobs")
    r = await admin_ui.post("/jobs", {})
    assert r.status_code == 422
    for bad in ("nope", "0" * 32, "../../etc/passwd", "x" * 5000):
        assert (await admin_ui.page(f"/jobs/{bad}")).status_code == 404, bad
        assert (await admin_ui.post(f"/jobs/{bad}/stop")).status_code in (404, 405), bad
        assert (await admin_ui.page("/physical", job=bad)).status_code == 404, bad
    assert (await admin_ui.page("/jobs", state="bogus")).status_code == 422
    other = await central.other_tenant_admin()
    await rack_of_boards(central, "sim-a")
    job = await post(central, "/jobs", {"name": "mine", "workload": SIM, "replicas": 1})
    r = await central.http.get(f"{API}/jobs/{job['id']}", headers=other)
    assert r.status_code == 404  # and so is the page of another organisation's job:
    assert (await admin_ui.page(f"/jobs/{job['id']}")).status_code == 200


async def test_physical_view_marks_the_job_boards_and_the_capped_rack(
    central: Central, admin_ui: Browser
) -> None:
    c = central
    rack_id, boards = await rack_of_boards(c, "sim-a", "sim-b", "sim-c")
    job = await post(
        c, "/jobs", {"name": "j", "workload": SIM, "replicas": 2, "strategy": "spread"}
    )
    on = {p["device_id"] for p in job["placements"]}
    assert len(on) == 2
    r = await admin_ui.page("/physical", job=job["id"])
    assert r.status_code == 200, r.text
    marked = {a["data-device-id"] for a in elements(r.text, "a", "job-on")}
    assert marked == on
    assert len(elements(r.text, "circle", "job-mark")) == 3  # one per board, lit on two
    assert f"/_physical/view?job={job['id']}" in r.text  # the live refresh keeps the job
    assert "wrale-job-placement from:body" in r.text
    assert f'href="/physical?metric=power&amp;job={job["id"]}"' in r.text  # kept by the switch
    frag = await admin_ui.fragment("/_physical/view", job=job["id"])
    assert {a["data-device-id"] for a in elements(frag.text, "a", "job-on")} == on

    bar = elements(r.text, "g", "power-bar")[0]
    assert bar["data-capped"] == "false"
    # the capping loop holds a clock cap on one board and a CPU quota on one placement
    async with c.db.session() as s:
        device = await s.get(Device, boards["sim-c"])
        assert device is not None
        caps = {boards["sim-c"]: 60.0, "x" * 32: 10.0, "bad": "no"}  # junk is left out
        await save_state(s, device.tenant_id, "capping", {"caps": caps}, 1.0)
        p = await s.get(JobPlacement, job["placements"][0]["id"])
        assert p is not None
        p.cpu_quota_pct = 40.0
    r = await admin_ui.page("/physical")
    bar = elements(r.text, "g", "power-bar")[0]
    assert (bar["data-capped"], bar["data-capped-boards"]) == ("true", "2")
    assert "capped: 1 clock ≤ 60 %, 1 job ≤ 40 % CPU" in r.text
    assert not elements(r.text, "a", "job-on")  # no job asked for: no marks
    assert rack_id in r.text


def test_the_live_stream_carries_job_events_to_every_page() -> None:
    for kind in ("job.placement", "job.updated"):
        ev = BusEvent(tenant_id="t", kind=kind, data={"job_id": "j"})
        assert wanted(ev, None)
        assert wanted(ev, "d" * 32)


def test_job_body_from_the_form_fields() -> None:
    body = jobs_page.job_body(FORM)
    assert body == {
        "name": "render-ui",
        "workload": {"kind": "sim_load", "cpu_pct": 30.0},
        "replicas": 2,
        "priority": 60,
        "strategy": "spread",
    }
