"""The recommendations panel of the decision log page, on both databases: open ones ranked
by score with their evidence and what accepting does, accept (a "stop these jobs" one
stops them) and dismiss (with a reason) for operators, refused for viewers, and hostile
ids and verbs answered with a 4xx."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.conftest import Central
from tests.user.ui.conftest import Browser, SignIn
from tests.user.ui.test_jobs_pages import post, rack_of_boards
from tests.user.ui.test_physical import elements
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.recommendations import Recommendation

API = "/api/v1"
SIM = {"kind": "sim_load", "cpu_pct": 30}


async def seed(c: Central) -> dict[str, str]:
    """A low-priority job on a board, and two open recommendations: a hot rack (no action,
    score 50) and a room on battery that asks to stop the job (score 80)."""
    rack, boards = await rack_of_boards(c, "sim-a")
    job = await post(c, "/jobs", {"name": "batch", "workload": SIM, "replicas": 1, "priority": 10})
    now = time.time()
    async with c.db.session() as s:
        device = await s.get(Device, boards["sim-a"])
        assert device is not None
        hot = Recommendation(
            tenant_id=device.tenant_id,
            kind="rack_hot",
            subject=rack,
            title="Rack A1 runs 8 °C above the room at equal load",
            advice="check its airflow",
            evidence={"rack_mean_c": 61.0, "room_mean_c": 53.0},
            score=50.0,
            action=None,
            state="open",
            updated_at=now,
        )
        battery = Recommendation(
            tenant_id=device.tenant_id,
            kind="battery_runtime",
            subject=device.id,
            title="Room Lab on battery: 14 min of runtime left",
            advice="stop priority < 50 jobs?",
            evidence={"runtime_min": 14, "note": "<b>bold</b>"},
            score=80.0,
            action={"kind": "stop_jobs", "job_ids": [job["id"]], "below_priority": 50},
            state="open",
            updated_at=now,
        )
        s.add_all([hot, battery])
        await s.flush()
        return {"hot": hot.id, "battery": battery.id, "job": job["id"]}


def shown(text: str) -> list[str]:
    return [a["data-recommendation-id"] for a in elements(text, "article", "rec")]


async def test_ranked_with_evidence_and_what_accepting_does(
    central: Central, ui_as: SignIn
) -> None:
    ids = await seed(central)
    viewer = await ui_as("viewer")
    r = await viewer.page("/decisions")
    assert r.status_code == 200, r.text
    assert shown(r.text) == [ids["battery"], ids["hot"]]  # highest score first
    assert "Accepting stops 1 job: batch." in r.text
    assert "Accepting acknowledges it" in r.text
    assert "&lt;b&gt;bold&lt;/b&gt;" in r.text
    assert "rec-accept" not in r.text  # a viewer has no buttons …
    for verb in ("accept", "dismiss"):  # … and is refused
        r = await viewer.post(f"/decisions/recommendations/{ids['hot']}/{verb}")
        assert r.status_code == 403


async def test_operator_accepts_and_dismisses(central: Central, ui_as: SignIn) -> None:
    ids = await seed(central)
    operator = await ui_as("operator")
    r = await operator.page("/decisions")
    assert r.text.count('class="primary rec-accept"') == 2
    r = await operator.post(f"/decisions/recommendations/{ids['battery']}/accept")
    assert r.status_code == 200, r.text
    assert "wrale-notice" in r.headers["HX-Trigger"]
    assert shown(r.text) == [ids["hot"]]
    assert 'data-state="accepted"' in r.text
    job = (await central.http.get(f"{API}/jobs/{ids['job']}", headers=central.admin)).json()
    assert job["stopped_at"] is not None  # the action it named was performed

    r = await operator.post(
        f"/decisions/recommendations/{ids['hot']}/dismiss", {"reason": "fixed\x00 already"}
    )
    assert r.status_code == 200, r.text
    assert shown(r.text) == []
    assert 'id="no-recommendations"' in r.text
    assert 'data-state="dismissed"' in r.text
    # deciding again is a conflict, not an error of the server
    r = await operator.post(f"/decisions/recommendations/{ids['hot']}/accept")
    assert r.status_code == 409
    r = await operator.page("/decisions", loop="recommendations")
    assert [a["data-action"] for a in elements(r.text, "tr") if "data-decision-id" in a] == [
        "accept"
    ]


@pytest.mark.parametrize(
    ("rec", "verb", "status"),
    [
        ("0" * 32, "accept", 404),
        ("nope", "dismiss", 404),
        ("x" * 3000, "accept", 404),
        ("{hot}", "delete", 404),
        ("{hot}", "accept;drop", 404),
    ],
)
async def test_hostile_ids_and_verbs_are_a_4xx(
    central: Central, admin_ui: Browser, rec: str, verb: str, status: int
) -> None:
    ids = await seed(central)
    await admin_ui.page("/decisions")
    r = await admin_ui.post(f"/decisions/recommendations/{rec.format(**ids)}/{verb}")
    assert r.status_code == status, r.text
    r = await admin_ui.page("/decisions")
    assert shown(r.text) == [ids["battery"], ids["hot"]]  # nothing was decided


async def test_a_long_dismiss_reason_is_cut_not_refused(
    central: Central, admin_ui: Browser
) -> None:
    ids = await seed(central)
    await admin_ui.page("/decisions")
    body: dict[str, Any] = {"reason": "r" * 100_000}
    r = await admin_ui.post(f"/decisions/recommendations/{ids['hot']}/dismiss", body)
    assert r.status_code == 200, r.text
    assert shown(r.text) == [ids["battery"]]
    decided = next(a for a in elements(r.text, "li") if a.get("data-recommendation-id"))
    assert decided["data-state"] == "dismissed"
    assert "r" * 301 not in r.text  # the reason kept is bounded
