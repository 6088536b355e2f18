"""The physical view's rollout overlay (``/physical?rollout=ID``) without a browser, on both
databases: each board of the rollout marked with its wave number and where it stands as
the ``rollouts`` loop advances it (waiting, in progress, passed, failed / rolled back), a
board outside it unmarked, the legend, links that keep the rollout shown, the link from
the rollout's page, a viewer reading it, and unknown or another organisation's rollouts
(404)."""

from __future__ import annotations

import time
from typing import Any

from tests.conftest import Central
from tests.user.ui.conftest import Browser, SignIn
from tests.user.ui.test_physical import elements
from tests.user.ui.test_rollouts_pages import form, temps
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.services.rollout_loop import advance_all
from wrale.user.ui.pages import physical_rollout_overlay as ro
from wrale.user.ui.pages.rollouts_form import rollout_body

API = "/api/v1"


async def _post(c: Central, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    r = await c.http.post(f"{API}{path}", headers=headers or c.admin, json=body)
    assert r.status_code in (200, 201), r.text
    return r.json()


async def hall(c: Central) -> tuple[str, dict[str, str]]:
    """Racks A (a1 U1, a2 U2, out U3) and B (b1 U1, b2 U2) of one site, boards online now;
    all but ``out`` are tagged ``ro``. Returns (site id, board ids by name)."""
    site = await _post(c, "/sites", {"name": "dc"})
    room = await _post(c, "/rooms", {"site_id": site["id"], "name": "hall"})
    racks = {
        n: (await _post(c, "/racks", {"room_id": room["id"], "name": n, "units": 6}))["id"]
        for n in "AB"
    }
    ids: dict[str, str] = {}
    for name, slot in (("a1", 1), ("a2", 2), ("out", 3), ("b1", 1), ("b2", 2)):
        tags = [] if name == "out" else ["ro"]
        ids[name] = (await _post(c, "/devices", {"name": name, "tags": tags}))["id"]
        rack = racks["A" if name in ("a1", "a2", "out") else "B"]
        r = await c.http.put(
            f"{API}/devices/{ids[name]}/location",
            json={"rack_id": rack, "slot_u": slot},
            headers=c.admin,
        )
        assert r.status_code == 200, r.text
    async with c.db.session() as s:
        for device_id in ids.values():
            d = await s.get(Device, device_id)
            assert d is not None
            d.status, d.last_seen_at = "online", time.time()
    return site["id"], ids


def marks(html: str) -> dict[str, tuple[str, str]]:
    """device id → (data-wave, data-state) of every marked board drawn."""
    return {
        a["data-device-id"]: (a["data-wave"], a["data-state"])
        for a in elements(html, "a", "board")
        if "data-wave" in a
    }


def policy_rollout(site: str) -> dict[str, Any]:
    data = form(site, change_kind="policy", values='{"hysteresis_c": 3}', tags="ro")
    return rollout_body(data)


async def test_the_rollouts_boards_carry_their_wave_and_state_as_it_advances(
    central: Central, admin_ui: Browser
) -> None:
    c = central
    site, ids = await hall(c)
    t0 = time.time()
    rolled = {k: v for k, v in ids.items() if k != "out"}
    await temps(c, rolled, t0 - 1)
    made = await _post(c, "/rollouts", policy_rollout(site))
    rid = made["id"]
    wave_of = {d: str(w["index"] + 1) for w in made["waves"] for d in w["devices"]}
    assert sorted(wave_of) == sorted(rolled.values())
    assert sorted(wave_of.values()) == ["1", "1", "2", "2"]  # one board of each rack first

    r = await admin_ui.page("/physical", rollout=rid)
    assert r.status_code == 200, r.text
    assert marks(r.text) == {d: (w, "waiting") for d, w in wave_of.items()}
    drawn = {a["data-device-id"]: a for a in elements(r.text, "a", "board")}
    assert len(drawn) == 5
    out = drawn[ids["out"]]
    assert "data-wave" not in out
    assert "wave-on" not in out["class"]
    (notice,) = [d for d in elements(r.text, "div") if d.get("id") == "rollout-shown"]
    assert (notice["data-rollout-id"], notice["data-boards"], notice["data-waves"]) == (
        rid,
        "4",
        "2",
    )
    legend = [s["data-state"] for s in elements(r.text, "span", "legend-item") if "data-state" in s]
    assert legend == ["waiting", "in_progress", "passed", "failed", "rolled_back"]
    assert f'href="/rollouts/{rid}"' in r.text
    assert "waiting (4)" in r.text
    # the metric switch and the live refresh keep the rollout shown
    assert f"/physical?metric=power&amp;rollout={rid}" in r.text
    (live,) = [d for d in elements(r.text, "div") if d.get("id") == "physical-view"]
    assert live["hx-get"] == f"/_physical/view?rollout={rid}"
    frag = await admin_ui.fragment("/_physical/view", rollout=rid)
    assert frag.status_code == 200
    assert "<html" not in frag.text
    assert marks(frag.text) == marks(r.text)

    first = {d for d, w in wave_of.items() if w == "1"}
    second = set(wave_of) - first
    await advance_all(c.db, t0)  # the first wave starts
    got = marks((await admin_ui.page("/physical", rollout=rid)).text)
    assert {d: s for d, (_, s) in got.items()} == {
        **dict.fromkeys(first, "in_progress"),
        **dict.fromkeys(second, "waiting"),
    }

    await temps(c, rolled, t0 + 10, a1=46.0, b1=46.5)
    await advance_all(c.db, t0 + 11)  # judged: passed
    await advance_all(c.db, t0 + 12)  # the second wave starts
    got = marks((await admin_ui.page("/physical", rollout=rid, metric="status")).text)
    assert {d: s for d, (_, s) in got.items()} == {
        **dict.fromkeys(first, "passed"),
        **dict.fromkeys(second, "in_progress"),
    }
    assert {d: w for d, (w, _) in got.items()} == wave_of

    await temps(c, rolled, t0 + 21, a2=60.0)
    await advance_all(c.db, t0 + 23)  # the second wave fails: aborted, rolled back
    view = (await c.http.get(f"{API}/rollouts/{rid}", headers=c.admin)).json()
    expected = {
        d: ro.board_state(w["state"], w["device_states"][d]["state"])
        for w in view["waves"]
        for d in w["devices"]
    }
    r = await admin_ui.page("/physical", rollout=rid)
    got = marks(r.text)
    assert {d: s for d, (_, s) in got.items()} == expected
    assert {expected[d] for d in second} <= {"failed", "rolled_back"}
    assert {expected[d] for d in second} & {"failed", "rolled_back"}
    (notice,) = [d for d in elements(r.text, "div") if d.get("id") == "rollout-shown"]
    assert notice["data-state"] == view["state"]

    page = await admin_ui.page(f"/rollouts/{rid}")
    (link,) = [a for a in elements(page.text, "a") if a.get("id") == "rollout-physical"]
    assert link["href"] == f"/physical?rollout={rid}"
    assert "Show on the physical view" in page.text


async def test_a_viewer_sees_the_rollout_on_the_physical_view(
    central: Central, ui_as: SignIn
) -> None:
    c = central
    site, ids = await hall(c)
    made = await _post(c, "/rollouts", rollout_body(form(site, tags="ro")))
    viewer = await ui_as("viewer")
    r = await viewer.page("/physical", rollout=made["id"])
    assert r.status_code == 200, r.text
    assert len(marks(r.text)) == 4
    assert ids["out"] not in marks(r.text)
    page = await viewer.page(f"/rollouts/{made['id']}")
    assert f'href="/physical?rollout={made["id"]}"' in page.text


async def test_unknown_and_another_organisations_rollout_are_not_found(
    central: Central, admin_ui: Browser
) -> None:
    c = central
    await hall(c)
    for bad in ("nope", "0" * 32, "../../etc/passwd", "x" * 5000):
        assert (await admin_ui.page("/physical", rollout=bad)).status_code == 404, bad
        assert (await admin_ui.fragment("/_physical/view", rollout=bad)).status_code == 404, bad
    other = await c.other_tenant_admin()
    await _post(c, "/devices", {"name": "theirs", "tags": ["far"]}, other)
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
    r = await admin_ui.page("/physical", rollout=theirs["id"])
    assert r.status_code == 404
    assert "theirs" not in r.text  # neither its name nor its board
    assert (await admin_ui.fragment("/_physical/view", rollout=theirs["id"])).status_code == 404


def test_where_a_board_stands_from_its_state_and_its_waves() -> None:
    cases = {
        ("pending", "pending"): "waiting",
        ("skipped", "pending"): "waiting",
        ("pending", "applying"): "in_progress",
        ("observing", "applied"): "in_progress",
        ("passed", "applied"): "passed",
        ("observing", "failed"): "failed",
        ("failed", "applied"): "failed",
        ("failed", "rolled_back"): "rolled_back",
        ("rolled_back", "applied"): "rolled_back",
        ("passed", "rolled_back"): "rolled_back",
    }
    for (wave, device), want in cases.items():
        assert ro.board_state(wave, device) == want, (wave, device)
    view = {
        "waves": [
            {
                "index": 0,
                "state": "passed",
                "devices": ["d1"],
                "device_states": {"d1": {"state": "applied", "detail": None}},
            },
            {"index": 1, "state": "pending", "devices": ["d2", "d3"], "device_states": {}},
        ]
    }
    boards, lines = ro.marks_from_view(view)
    assert boards == {
        "d1": ro.BoardWave(1, "passed"),
        "d2": ro.BoardWave(2, "waiting"),
        "d3": ro.BoardWave(2, "waiting"),
    }
    assert [(w.number, w.state, w.boards) for w in lines] == [(1, "passed", 1), (2, "pending", 2)]
    assert boards["d2"].text == "wave 2, waiting"
