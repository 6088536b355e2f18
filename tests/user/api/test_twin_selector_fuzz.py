"""Fuzzing the API's twin and selector inputs with a fixed budget, against a real server on
SQLite and PostgreSQL: random merge patches (``PATCH /devices/{id}/twin``) and random
selectors (dynamic groups, selector-targeted commands) answer 2xx or a clear 4xx with the
error body, never a 5xx, and what was accepted reads back."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.user.api.central_server import ThreadedCentral, central_on
from wrale.fleet.brain.services import selectors, twin

BUDGET = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
_num = itertools.count(1)
HOSTILE_TEXT = st.sampled_from(["\x00", "\ud800", "a\udfff", "\x1f", "", "x" * 70, "é🔥"])
TEXT = st.text(max_size=6) | HOSTILE_TEXT
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
JSON = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=15,
)
SELECTORS = JSON | st.fixed_dictionaries(
    {},
    optional={
        "tags_all": st.lists(TEXT, max_size=3) | JSON,
        "tags_any": st.lists(TEXT, max_size=3),
        "status": st.lists(st.sampled_from([*selectors.STATUSES, "gone"]), max_size=2),
        "rack_id": st.sampled_from(["0" * 32, "abc"]) | TEXT,
        "model": TEXT,
    },
)
SECTION_VALUES = {
    "fan": st.fixed_dictionaries(
        {}, optional={"override_pct": LEAVES, "duration_s": LEAVES, "x": JSON}
    ),
    "thermal": st.fixed_dictionaries(
        {}, optional={"profile": TEXT | st.just("cool"), "cpu_warning_c": LEAVES}
    ),
    "tamper": st.fixed_dictionaries({}, optional={"armed": LEAVES, "level": LEAVES}),
    "gpio": st.dictionaries(TEXT | st.just("17"), JSON, max_size=2),
    "config": st.dictionaries(TEXT, JSON, max_size=3),
}
DESIRED = st.dictionaries(
    st.sampled_from(twin.SECTIONS) | TEXT,
    st.none() | JSON,
    max_size=3,
) | st.fixed_dictionaries({}, optional={k: v | st.none() for k, v in SECTION_VALUES.items()})


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThreadedCentral]:
    data = Path(tmp_path_factory.mktemp("twin-fuzz"))
    with central_on(request.param, data, f"wrale_twinfuzz_{os.getpid()}", migrate=False) as central:
        yield central


@pytest.fixture(scope="module")
def api(server: ThreadedCentral) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {server.login()}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        yield client


def send(api: httpx.Client, method: str, url: str, body: Any) -> httpx.Response:
    """``body`` as JSON text with every non-ASCII character escaped, so lone surrogates
    travel as ``\\ud800`` the way a hostile client would send them."""
    content = json.dumps(body, ensure_ascii=True)
    return api.request(method, url, content=content, headers={"Content-Type": "application/json"})


def sound(r: httpx.Response) -> None:
    assert r.status_code < 500, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    if r.status_code >= 400:
        error = r.json()["error"]
        assert set(error) == {"code", "message", "details"}, r.text


@BUDGET
@given(raw=SELECTORS)
def test_random_selectors_never_answer_5xx(api: httpx.Client, raw: Any) -> None:
    body = {"name": f"fuzz-{next(_num)}", "kind": "dynamic", "selector": raw}
    r = send(api, "POST", "/api/v1/groups", body)
    sound(r)
    if r.status_code == 201:
        group_id = r.json()["id"]
        for url in (f"/api/v1/groups/{group_id}", f"/api/v1/groups/{group_id}/devices"):
            sound(back := api.get(url))
            assert back.status_code == 200, back.text
        assert api.get("/api/v1/groups").status_code == 200
    r = send(api, "POST", "/api/v1/commands", {"op": "run_diag", "selector": raw})
    sound(r)


@BUDGET
@given(desired=DESIRED)
def test_random_twin_patches_never_answer_5xx(api: httpx.Client, desired: Any) -> None:
    devices = api.get("/api/v1/devices").json()["items"]
    if devices:
        device_id = devices[0]["id"]
    else:
        device_id = send(api, "POST", "/api/v1/devices", {"name": "fuzzed"}).json()["id"]
    url = f"/api/v1/devices/{device_id}/twin"
    current = api.get(url)
    assert current.status_code == 200, current.text
    body = {"version": current.json()["desired"]["version"], "desired": desired}
    sound(send(api, "PATCH", url, body))
    after = api.get(url)
    assert after.status_code == 200, after.text
