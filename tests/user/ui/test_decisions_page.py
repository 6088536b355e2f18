"""The decision log page without a browser, on both databases: rows newest first with
their subjects named, reasons and inputs, filters by loop and subject, the older pages,
the periodic refresh fragment, and the loops' per-site pause switches (operators switch
them, viewers only see them); malformed filters and switch forms are a 4xx, never a 5xx."""

from __future__ import annotations

import html
from typing import Any

import pytest

from tests.conftest import Central
from tests.user.ui.conftest import Browser, SignIn
from tests.user.ui.test_physical import elements
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.services.decision_log import record_decision
from wrale.user.ui.pages import decisions as page

API = "/api/v1"


async def post(c: Central, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await c.http.post(f"{API}{path}", json=body, headers=c.admin)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def log_some(c: Central) -> dict[str, str]:
    """A board and a rack, and three decisions about them at times 1000, 2000, 3000."""
    site = await post(c, "/sites", {"name": "HQ"})
    room = await post(c, "/rooms", {"site_id": site["id"], "name": "Lab"})
    rack = await post(c, "/racks", {"room_id": room["id"], "name": "A1", "units": 10})
    board = (await post(c, "/devices", {"name": "pi-hot"}))["id"]
    async with c.db.session() as s:
        device = await s.get(Device, board)
        assert device is not None
        tenant = device.tenant_id
        for at, loop, action, subjects, inputs in (
            (1000.0, "placement", "place", {"device": board}, {"score": 0.9}),
            (2000.0, "capping", "freq_cap", {"device": board, "rack": rack["id"]},
             {"draw_w": 13.5, "budget_w": 12.0, "note": "<script>alert(1)</script>"}),
            (3000.0, "balancing", "move", {"rack": rack["id"]}, {}),
        ):  # fmt: skip
            record_decision(
                s,
                tenant,
                loop=loop,
                action=action,
                subjects=subjects,
                summary=f"{action} decided",
                reasons=[f"because of {loop}"],
                inputs=inputs,
                at=at,
            )
    return {"board": board, "rack": rack["id"], "site": site["id"]}


def row_actions(text: str) -> list[str]:
    return [a["data-action"] for a in elements(text, "tr") if "data-decision-id" in a]


async def test_the_log_newest_first_with_names_reasons_and_inputs(
    central: Central, ui_as: SignIn
) -> None:
    ids = await log_some(central)
    viewer = await ui_as("viewer")
    r = await viewer.page("/decisions")
    assert r.status_code == 200, r.text
    assert row_actions(r.text) == ["move", "freq_cap", "place"]
    assert ">pi-hot</a>" in r.text
    assert ">A1</a>" in r.text  # subjects by name, each a filter link
    assert f'href="/decisions?subject={ids["board"]}"' in r.text
    assert "because of capping" in r.text
    assert '<details class="inputs">' in r.text
    assert '"draw_w": 13.5' in html.unescape(r.text)
    assert "<script>alert(1)</script>" not in r.text  # inputs are text, escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    frag = await viewer.fragment("/decisions/_rows")
    assert row_actions(frag.text) == ["move", "freq_cap", "place"]
    assert "<html" not in frag.text


async def test_filters_by_loop_and_subject_and_pages_older(
    central: Central, admin_ui: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await log_some(central)
    r = await admin_ui.page("/decisions", loop="capping")
    assert row_actions(r.text) == ["freq_cap"]
    r = await admin_ui.page("/decisions", subject=ids["rack"])
    assert row_actions(r.text) == ["move", "freq_cap"]
    assert "About <strong>A1</strong>" in r.text
    r = await admin_ui.page("/decisions", subject=ids["board"], loop="placement")
    assert row_actions(r.text) == ["place"]
    r = await admin_ui.page("/decisions", loop="capping", subject=ids["site"])
    assert row_actions(r.text) == []
    assert 'id="no-decisions"' in r.text
    monkeypatch.setattr(page, "PAGE_SIZE", 2)
    r = await admin_ui.page("/decisions")
    assert row_actions(r.text) == ["move", "freq_cap"]
    older = next(a["href"] for a in elements(r.text, "a") if a.get("id") == "older")
    r = await admin_ui.page(html.unescape(older))
    assert row_actions(r.text) == ["place"]
    assert 'id="older"' not in r.text


@pytest.mark.parametrize(
    "query",
    [
        {"loop": "Capping"},
        {"loop": "x" * 40},
        {"loop": "cap;drop"},
        {"subject": "../../etc"},
        {"subject": "f" * 33},
        {"subject": "\x00" * 32},
        {"before": "nope"},
    ],
)
async def test_malformed_filters_are_a_4xx(
    central: Central, admin_ui: Browser, query: dict[str, str]
) -> None:
    r = await admin_ui.page("/decisions", **query)
    assert r.status_code == 422, r.text
    frag = await admin_ui.fragment("/decisions/_rows", **query)
    assert frag.status_code in (200, 422)  # _rows takes no ``before``


async def test_operators_pause_and_resume_loops_per_site(central: Central, ui_as: SignIn) -> None:
    ids = await log_some(central)
    operator = await ui_as("operator")
    r = await operator.page("/decisions")
    switches = [a for a in elements(r.text, "tr") if "data-loop" in a and "data-site" in a]
    assert {(a["data-loop"], a["data-site"]) for a in switches} >= {
        ("capping", "*"),
        ("capping", ids["site"]),
    }
    assert all(a["data-paused"] == "false" for a in switches)
    r = await operator.post("/decisions/loops/capping", {"paused": "true", "site_id": ids["site"]})
    assert r.status_code == 200, r.text
    row = next(
        a
        for a in elements(r.text, "tr")
        if a.get("data-loop") == "capping" and a.get("data-site") == ids["site"]
    )
    assert row["data-paused"] == "true"
    api = (await central.http.get(f"{API}/decisions/loops", headers=central.admin)).json()
    capping = next(x for x in api if x["loop"] == "capping")
    assert [p["site_id"] for p in capping["paused"]] == [ids["site"]]

    r = await operator.post("/decisions/loops/placement", {"paused": "true", "site_id": ""})
    assert r.status_code == 200
    r = await operator.page("/decisions")
    assert "paused everywhere" in r.text
    r = await operator.post("/decisions/loops/placement", {"paused": "false"}, htmx=False)
    assert r.status_code == 303
    api = (await central.http.get(f"{API}/decisions/loops", headers=central.admin)).json()
    assert next(x for x in api if x["loop"] == "placement")["paused"] == []


async def test_viewers_see_the_switches_but_cannot_use_them(
    central: Central, ui_as: SignIn
) -> None:
    await log_some(central)
    viewer = await ui_as("viewer")
    r = await viewer.page("/decisions")
    assert 'class="pause-switch"' not in r.text
    assert 'id="loops"' in r.text
    r = await viewer.post("/decisions/loops/capping", {"paused": "true"})
    assert r.status_code == 403
    api = (await central.http.get(f"{API}/decisions/loops", headers=central.admin)).json()
    assert all(x["paused"] == [] for x in api)


@pytest.mark.parametrize(
    ("loop", "form", "status"),
    [
        ("capping", {"paused": "yes"}, 422),
        ("capping", {}, 422),
        ("capping", {"paused": "true", "site_id": "../x"}, 422),
        ("capping", {"paused": "true", "site_id": "0" * 32}, 404),
        ("nosuchloop", {"paused": "true"}, 404),
        ("x" * 500, {"paused": "true"}, 404),
    ],
)
async def test_hostile_switch_forms_are_a_4xx(
    central: Central, admin_ui: Browser, loop: str, form: dict[str, str], status: int
) -> None:
    await admin_ui.page("/decisions")
    r = await admin_ui.post(f"/decisions/loops/{loop}", form)
    assert r.status_code == status, r.text
    api = (await central.http.get(f"{API}/decisions/loops", headers=central.admin)).json()
    assert all(x["paused"] == [] for x in api)


async def test_another_organisations_site_cannot_be_paused(
    central: Central, admin_ui: Browser
) -> None:
    other = await central.other_tenant_admin()
    r = await central.http.post(f"{API}/sites", json={"name": "theirs"}, headers=other)
    assert r.status_code == 201, r.text
    await admin_ui.page("/decisions")
    r = await admin_ui.post(
        "/decisions/loops/capping", {"paused": "true", "site_id": r.json()["id"]}
    )
    assert r.status_code == 404


def test_inputs_are_shown_as_sorted_indented_json() -> None:
    assert page.inputs_text({"b": 1, "a": [1.5, None]}) == (
        '{\n  "a": [\n    1.5,\n    null\n  ],\n  "b": 1\n}'
    )
