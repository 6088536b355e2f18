"""The rollouts pages without a browser, on both databases: the list, the new-rollout form
(operators) with its preview of the waves per rack (nothing stored), a rollout's waves
with their boards and gate values beside the limits as the loop advances it, pause /
resume / abort by hand, roles (a viewer reads but gets neither form nor buttons), hostile
form input (422 naming the field, never a 5xx) and another organisation's rollout (404)."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.conftest import Central
from tests.user.ui.conftest import Browser, SignIn
from tests.user.ui.test_physical import elements
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.telemetry import TelemetryLatest
from wrale.fleet.brain.services.rollout_loop import advance_all
from wrale.fleet.brain.services.telemetry_store import metric_ids
from wrale.user.ui.pages.rollouts_form import parse_waves, rollout_body

API = "/api/v1"


async def _post(c: Central, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    r = await c.http.post(f"{API}{path}", headers=headers or c.admin, json=body)
    assert r.status_code in (200, 201), r.text
    return r.json()


async def two_racks(c: Central) -> tuple[str, dict[str, str], dict[str, str]]:
    """Racks A (a1, a2) and B (b1, b2) of one site, boards online now; returns (site id,
    rack ids by name, board ids by name)."""
    site = await _post(c, "/sites", {"name": "dc"})
    room = await _post(c, "/rooms", {"site_id": site["id"], "name": "hall"})
    racks = {n: (await _post(c, "/racks", {"room_id": room["id"], "name": n}))["id"] for n in "AB"}
    ids = {n: (await _post(c, "/devices", {"name": n}))["id"] for n in ("a1", "a2", "b1", "b2")}
    async with c.db.session() as s:
        for name, device_id in ids.items():
            d = await s.get(Device, device_id)
            assert d is not None
            d.status, d.last_seen_at = "online", time.time()
            d.rack_id = racks[name[0].upper()]
    return site["id"], racks, ids


async def temps(c: Central, ids: dict[str, str], at: float, **by_name: float) -> None:
    """Each board's CPU temperature reported at ``at`` (45 °C unless named)."""
    async with c.db.session() as s:
        mids = await metric_ids(s, ["cpu_temp_c"])
        for name, device_id in ids.items():
            d = await s.get(Device, device_id)
            assert d is not None
            old = await s.get(TelemetryLatest, (d.num, mids["cpu_temp_c"]))
            if old is not None:
                await s.delete(old)
                await s.flush()
            value = by_name.get(name, 45.0)
            mid = mids["cpu_temp_c"]
            s.add(TelemetryLatest(device_num=d.num, metric_id=mid, ts=at, value=value))


def form(site: str, **over: str) -> dict[str, str]:
    return {
        "name": "load test",
        "change_kind": "command",
        "op": "sim_load",
        "args": '{"percent": 30}',
        "policy_kind": "thermal",
        "site_id": site,
        "waves": "1/rack, 100%",
        "max_temp_rise_c": "3",
        "max_failure_pct": "0",
        "observe_s": "10",
        "on_gate_failure": "abort",
        **over,
    }


async def create_in_ui(ui: Browser, data: dict[str, str]) -> str:
    await ui.page("/rollouts/new")
    r = await ui.post("/rollouts", data)
    assert r.status_code == 200, r.text
    location = r.headers["HX-Redirect"]
    assert re.fullmatch(r"/rollouts/[0-9a-f]{32}", location), location
    return location.rsplit("/", 1)[1]


def wave_boards(html: str) -> list[list[str]]:
    """The board ids of each wave shown, in order."""
    out: list[list[str]] = []
    for part in html.split('<article class="wave')[1:]:
        out.append(re.findall(r'<tr data-device-id="([0-9a-f]{32})"', part))
    return out


async def test_operator_previews_creates_and_sees_the_waves(
    central: Central, ui_as: SignIn
) -> None:
    c = central
    site, racks, _ids = await two_racks(c)
    ui = await ui_as("operator")
    r = await ui.page("/rollouts")
    assert r.status_code == 200
    assert 'id="rollout-new"' in r.text
    assert "No rollouts" in r.text
    r = await ui.page("/rollouts/new")
    assert 'id="rollout-form"' in r.text
    assert 'id="change-policy"' not in r.text  # a policy rollout needs an admin

    r = await ui.post("/rollouts/preview", form(site))
    assert r.status_code == 200, r.text
    assert "<html" not in r.text
    preview = elements(r.text, "section")[0]
    assert (preview["id"], preview["data-waves"], preview["data-boards"]) == (
        "rollout-preview",
        "2",
        "4",
    )
    waves = elements(r.text, "li", "wave-preview")
    assert [w["data-boards"] for w in waves] == ["2", "2"]  # one board of each rack first
    shares = [a for a in elements(r.text, "tr") if "data-rack-id" in a]
    assert [(a["data-rack-id"], a["data-boards"]) for a in shares] == [
        (racks["A"], "1"),
        (racks["B"], "1"),
    ] * 2
    assert ">a1<" in r.text
    assert ">b2<" in r.text
    listed = (await c.http.get(f"{API}/rollouts", headers=c.admin)).json()["items"]
    assert listed == []  # a preview creates nothing

    rid = await create_in_ui(ui, form(site))
    got = (await c.http.get(f"{API}/rollouts/{rid}", headers=c.admin)).json()
    assert got["change"] == {"kind": "command", "op": "sim_load", "args": {"percent": 30.0}}
    assert got["gates"]["observe_s"] == 10.0
    r = await ui.page(f"/rollouts/{rid}")
    assert r.status_code == 200, r.text
    assert [sorted(w) for w in wave_boards(r.text)] == [sorted(w["devices"]) for w in got["waves"]]
    assert ">A<" in r.text
    assert ">B<" in r.text
    assert 'id="rollout-pause"' in r.text
    assert 'id="rollout-abort"' in r.text
    assert 'hx-confirm="Abort rollout load test?' in r.text
    assert 'hx-trigger="every 3s"' in r.text
    r = await ui.page("/rollouts")
    row = next(a for a in elements(r.text, "tr") if a.get("data-rollout-id") == rid)
    assert (row["data-state"], row["data-passed"], row["data-waves"]) == ("running", "0", "2")
    assert "command sim_load" in r.text


async def test_a_rate_typed_as_json_is_previewed(central: Central, ui_as: SignIn) -> None:
    site, _, _ = await two_racks(central)
    ui = await ui_as("operator")
    await ui.page("/rollouts/new")
    rate = '{"rate": {"base_per_minute": 1, "increment_factor": 2, "after_succeeded": 1}}'
    r = await ui.post("/rollouts/preview", form(site, waves=rate))
    assert r.status_code == 200, r.text
    sizes = [w["data-boards"] for w in elements(r.text, "li", "wave-preview")]
    assert sum(map(int, sizes)) == 4
    assert len(sizes) >= 2, sizes
    bad = rate.replace('"after_succeeded": 1', '"after_succeeded": 0')
    r = await ui.post("/rollouts/preview", form(site, waves=bad))
    assert r.status_code == 422
    assert 'id="waves-error"' in r.text
    assert "after_succeeded" in r.text


async def test_the_waves_progress_with_their_gate_beside_the_limits(
    central: Central, admin_ui: Browser
) -> None:
    c = central
    site, _, ids = await two_racks(c)
    t0 = time.time()
    await temps(c, ids, t0 - 1)
    data = form(site, change_kind="policy", policy_kind="thermal", values='{"hysteresis_c": 3}')
    rid = await create_in_ui(admin_ui, data)
    await advance_all(c.db, t0)  # the first wave starts
    frag = await admin_ui.fragment(f"/rollouts/{rid}/_waves", seen="running")
    assert frag.status_code == 200
    assert "<html" not in frag.text
    articles = elements(frag.text, "article")
    assert [a["data-state"] for a in articles] == ["observing", "pending"]
    assert "Observed" in frag.text
    await temps(c, ids, t0 + 10, a1=46.0, b1=46.5)
    await advance_all(c.db, t0 + 11)  # judged: passed
    await advance_all(c.db, t0 + 12)  # the second wave starts
    r = await admin_ui.page(f"/rollouts/{rid}")
    articles = elements(r.text, "article")
    assert [a["data-state"] for a in articles] == ["passed", "observing"]
    live = elements(r.text, "section")[-1]
    assert (live["data-passed"], live["data-waves"]) == ("1", "2")
    gate = {a["data-measure"]: a for a in elements(r.text, "tr") if "data-measure" in a}
    assert "over" not in gate["temp_rise_c"].get("class", "")
    assert '1.5 °C</td><td class="num">3 °C</td>' in r.text  # measured beside its limit
    assert '0 %</td><td class="num">0 %</td>' in r.text

    await temps(c, ids, t0 + 21, a2=60.0)
    await advance_all(c.db, t0 + 23)  # the second wave fails: aborted, rolled back
    r = await admin_ui.page(f"/rollouts/{rid}")
    articles = elements(r.text, "article")
    assert articles[1]["data-state"] in ("failed", "rolled_back"), articles
    over = [a for a in elements(r.text, "tr") if a.get("data-measure") == "temp_rise_c"][1]
    assert over.get("class") == "over"
    assert 'id="rollout-pause"' not in r.text
    assert 'id="rollout-abort"' not in r.text
    frag = await admin_ui.fragment(f"/rollouts/{rid}/_waves", seen="running")
    assert frag.headers.get("HX-Refresh") == "true"  # the state changed: the page reloads


async def test_pause_resume_and_abort_by_hand(central: Central, ui_as: SignIn) -> None:
    c = central
    site, _, _ = await two_racks(c)
    ui = await ui_as("operator")
    rid = await create_in_ui(ui, form(site))

    async def state() -> str:
        got = (await c.http.get(f"{API}/rollouts/{rid}", headers=c.admin)).json()
        return str(got["state"])

    await ui.page(f"/rollouts/{rid}")
    r = await ui.post(f"/rollouts/{rid}/pause")
    assert r.status_code == 200
    assert r.headers["HX-Redirect"] == f"/rollouts/{rid}"
    assert await state() == "paused"
    r = await ui.page(f"/rollouts/{rid}")
    assert 'id="rollout-resume"' in r.text
    assert 'id="rollout-pause"' not in r.text
    assert (await ui.post(f"/rollouts/{rid}/pause")).status_code == 409
    assert (await ui.post(f"/rollouts/{rid}/approve")).status_code == 409
    await ui.post(f"/rollouts/{rid}/resume")
    assert await state() == "running"
    r = await ui.post(f"/rollouts/{rid}/abort", htmx=False)
    assert r.status_code == 303
    assert await state() == "aborted"
    r = await ui.page(f"/rollouts/{rid}")
    assert "aborted by" in r.text
    assert 'id="rollout-resume"' not in r.text
    assert 'id="rollout-abort"' not in r.text


async def test_a_viewer_reads_but_gets_neither_form_nor_buttons(
    central: Central, ui_as: SignIn
) -> None:
    c = central
    site, _, _ = await two_racks(c)
    body = rollout_body(form(site))
    made = await _post(c, "/rollouts", body)
    viewer = await ui_as("viewer")
    r = await viewer.page("/rollouts")
    assert made["id"] in r.text
    assert 'id="rollout-new"' not in r.text
    r = await viewer.page(f"/rollouts/{made['id']}")
    assert r.status_code == 200
    assert not re.search(r'id="rollout-(pause|resume|approve|abort)"', r.text)
    assert (await viewer.page("/rollouts/new")).status_code == 403
    assert (await viewer.post("/rollouts", form(site))).status_code == 403
    assert (await viewer.post("/rollouts/preview", form(site))).status_code == 403
    for action in ("pause", "resume", "approve", "abort"):
        assert (await viewer.post(f"/rollouts/{made['id']}/{action}")).status_code == 403
    got = (await c.http.get(f"{API}/rollouts/{made['id']}", headers=c.admin)).json()
    assert got["state"] == "running"


HOSTILE: list[tuple[dict[str, str], str]] = [
    ({"name": ""}, "name"),
    ({"name": "x" * 300}, "name"),
    ({"name": "bad\x01name"}, "name"),
    ({"change_kind": "shell"}, "change_kind"),
    ({"op": "rm"}, "op"),
    ({"args": "{not json"}, "args"),
    ({"args": "[1, 2]"}, "args"),
    ({"args": '{"percent": 500}'}, "args"),
    ({"change_kind": "policy", "values": "{}"}, "values"),
    ({"change_kind": "policy", "values": '{"hysteresis_c": "hot"}'}, "values"),
    ({"change_kind": "policy", "policy_kind": "nope", "values": '{"a": 1}'}, "policy_kind"),
    ({"site_id": ""}, "selector"),
    ({"site_id": "0" * 32}, "site_id"),
    ({"site_id": "../etc"}, "site_id"),
    ({"rack_id": "f" * 32}, "rack_id"),
    ({"group_id": "0" * 32}, "group_id"),
    ({"selector": '{"bogus": 1}'}, "selector"),
    ({"tags": "x" * 80}, "tags"),
    ({"site_id": "", "tags": "no-such-tag"}, "selector"),
    ({"waves": "half"}, "waves"),
    ({"waves": "0"}, "waves"),
    ({"waves": "150%"}, "waves"),
    ({"waves": '[{"count": -1}]'}, "waves"),
    ({"waves": "[" * 5000}, "waves"),
    ({"max_per_rack": "0"}, "max_per_rack"),
    ({"max_per_rack": "-3"}, "max_per_rack"),
    ({"max_per_feed": "0"}, "max_per_feed"),
    ({"observe_s": "nan"}, "observe_s"),
    ({"observe_s": "-5"}, "observe_s"),
    ({"max_temp_rise_c": "hot"}, "max_temp_rise_c"),
    ({"max_failure_pct": "101"}, "max_failure_pct"),
    ({"on_gate_failure": "explode"}, "on_gate_failure"),
]


@pytest.mark.parametrize(("change", "field"), HOSTILE)
async def test_hostile_forms_are_refused_with_the_field_named(
    central: Central, admin_ui: Browser, change: dict[str, str], field: str
) -> None:
    site, _, _ = await two_racks(central)
    await admin_ui.page("/rollouts/new")
    for path in ("/rollouts", "/rollouts/preview"):
        r = await admin_ui.post(path, form(site) | change)
        assert r.status_code == 422, (path, r.text)
        assert f'id="{field}-error"' in r.text, (path, re.findall(r"role=.alert.>[^<]*", r.text))
        assert 'id="rollout-preview"' not in r.text
    plain = await admin_ui.post("/rollouts", form(site) | change, htmx=False)
    assert plain.status_code == 422
    assert 'id="rollout-form"' in plain.text
    assert "<html" in plain.text
    listed = (await central.http.get(f"{API}/rollouts", headers=central.admin)).json()["items"]
    assert listed == []  # nothing of a refused form is kept


async def test_unknown_ids_bad_states_and_another_organisations_rollout(
    central: Central, admin_ui: Browser
) -> None:
    c = central
    await admin_ui.page("/rollouts")
    assert (await admin_ui.post("/rollouts", {})).status_code == 422
    for bad in ("nope", "0" * 32, "../../etc/passwd", "x" * 5000):
        assert (await admin_ui.page(f"/rollouts/{bad}")).status_code == 404, bad
        assert (await admin_ui.fragment(f"/rollouts/{bad}/_waves")).status_code == 404, bad
        assert (await admin_ui.post(f"/rollouts/{bad}/pause")).status_code in (404, 405), bad
    assert (await admin_ui.page("/rollouts", state="bogus")).status_code == 422
    other = await c.other_tenant_admin()
    device = await _post(c, "/devices", {"name": "theirs", "tags": ["far"]}, other)
    theirs = await _post(
        c,
        "/rollouts",
        {
            "name": "theirs",
            "change": {"kind": "command", "op": "run_diag"},
            "selector": {"tags_all": ["far"]},
        },
        other,
    )
    assert theirs["waves"][0]["devices"] == [device["id"]]
    assert (await admin_ui.page(f"/rollouts/{theirs['id']}")).status_code == 404
    assert (await admin_ui.fragment(f"/rollouts/{theirs['id']}/_waves")).status_code == 404
    assert (await admin_ui.post(f"/rollouts/{theirs['id']}/abort")).status_code == 404
    r = await admin_ui.page("/rollouts")
    assert theirs["id"] not in r.text
    got = (await c.http.get(f"{API}/rollouts/{theirs['id']}", headers=other)).json()
    assert got["state"] == "running"


def test_waves_from_the_form_text() -> None:
    assert parse_waves("1/rack, 50%, 100%") == {
        "steps": [{"percent": 100}, {"percent": 50.0}, {"percent": 100.0}],
        "one_per_rack_first": True,
    }
    assert parse_waves("2, 25 %, 100%") == [{"count": 2}, {"percent": 25.0}, {"percent": 100.0}]
    assert parse_waves("") is None
    assert parse_waves('[{"count": 1}]') == [{"count": 1}]
    body = rollout_body(form("s" * 32, max_per_rack="2", waves="3", tags="a, b,a"))
    assert body["waves"] == {"steps": [{"count": 3}], "max_per_rack": 2}
    assert body["selector"] == {"site_id": "s" * 32, "tags_all": ["a", "b"]}
    assert body["gates"] == {"max_temp_rise_c": 3.0, "max_failure_pct": 0.0, "observe_s": 10.0}
    body = rollout_body(form("s" * 32, max_per_feed="1", waves=""))
    assert body["waves"] == {"steps": [{"percent": 100}], "max_per_feed": 1}
    assert "disruptive" not in body["change"]
    assert rollout_body(form("s" * 32, disruptive="on"))["change"]["disruptive"] is True
