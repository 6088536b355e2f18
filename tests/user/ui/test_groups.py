"""The group pages without a browser: the tree with member counts, static and dynamic groups
made from forms, the selector preview, members added by name and removed, a delete whose
confirmation names the count, the group's policies and inheritance, and viewers' limits."""

from __future__ import annotations

import itertools
import re
from typing import Any

from tests.conftest import Central
from tests.user.ui.conftest import Browser, SignIn

API = "/api/v1"
_num = itertools.count(950_000)


async def tenant_of(c: Central) -> str:
    return str((await c.http.get(f"{API}/auth/me", headers=c.admin)).json()["tenant_id"])


async def make_devices(c: Central, *specs: tuple[str, dict[str, Any]]) -> dict[str, str]:
    """Device rows made directly in the database: name → id."""
    from wrale.fleet.brain.models import Device

    tenant_id = await tenant_of(c)
    out = {}
    async with c.db.session() as s:
        for name, fields in specs:
            d = Device(tenant_id=tenant_id, num=next(_num), name=name, **fields)
            s.add(d)
            await s.flush()
            out[name] = d.id
    return out


async def api(c: Central, method: str, path: str, body: Any = None, status: int = 200) -> Any:
    r = await c.http.request(method, f"{API}{path}", headers=c.admin, json=body)
    assert r.status_code == status, r.text
    return r.json() if r.content else None


async def groups_of(c: Central) -> dict[str, dict[str, Any]]:
    return {g["name"]: g for g in (await api(c, "GET", "/groups?limit=200"))["items"]}


async def member_names(c: Central, group_id: str) -> list[str]:
    items = (await api(c, "GET", f"/groups/{group_id}/devices?limit=200"))["items"]
    return sorted(d["name"] for d in items)


def tree_row(html: str, group_id: str) -> str:
    m = re.search(rf'<tr data-group-id="{group_id}"[^>]*>.*?</tr>', html, re.S)
    assert m, group_id
    return m.group(0)


async def test_static_group_from_the_form_and_its_members(
    central: Central, admin_ui: Browser
) -> None:
    ids = await make_devices(
        central, ("bench-pi-1", {}), ("bench-pi-2", {}), ("bench-pi-10", {}), ("other", {})
    )
    r = await admin_ui.page("/groups")
    assert r.status_code == 200, r.text
    assert "No groups yet" in r.text
    r = await admin_ui.post(
        "/groups", {"name": "bench", "description": "boards on the bench", "kind": "static"}
    )
    assert r.status_code == 200, r.text
    url = r.headers["HX-Redirect"]
    gid = url.removeprefix("/groups/")
    assert (await groups_of(central))["bench"]["kind"] == "static"

    r = await admin_ui.page(url)
    assert r.status_code == 200, r.text
    assert 'id="add-member"' in r.text
    r = await admin_ui.post(f"{url}/members", {"device": "bench-pi-1"})
    assert r.status_code == 200, r.text
    assert r.text.startswith('<section class="panel" id="members"')
    assert "bench-pi-1 added to bench." in r.text
    assert f'<tr data-device-id="{ids["bench-pi-1"]}">' in r.text
    r = await admin_ui.post(f"{url}/members", {"device": "bench-pi-1"})
    assert "bench-pi-1 was already in bench." in r.text
    # a name that matches several devices asks to pick one; one match is taken
    r = await admin_ui.post(f"{url}/members", {"device": "bench-pi"})
    assert r.status_code == 422
    assert 'id="device-error"' in r.text
    assert 'value="bench-pi"' in r.text
    r = await admin_ui.post(f"{url}/members", {"device": "PI-10"})
    assert r.status_code == 200
    for ghost in ("ghost", "\x00"):
        r = await admin_ui.post(f"{url}/members", {"device": ghost})
        assert r.status_code == 422
        assert "device-error" in r.text
    assert await member_names(central, gid) == ["bench-pi-1", "bench-pi-10"]

    r = await admin_ui.post(f"{url}/members/{ids['bench-pi-1']}/remove")
    assert r.status_code == 200
    assert "bench-pi-1 removed from bench." in r.text
    assert 'data-total="1"' in r.text
    assert await member_names(central, gid) == ["bench-pi-10"]
    r = await admin_ui.post(f"{url}/members/{ids['other']}/remove")
    assert r.status_code == 404  # a toast: it was never a member

    r = await admin_ui.page("/groups")
    assert 'data-members="1"' in tree_row(r.text, gid)
    r = await admin_ui.fragment(f"{url}/_members", page="7")
    assert r.text.startswith('<section class="panel" id="members"')


async def test_dynamic_group_with_a_selector_and_its_preview(
    central: Central, admin_ui: Browser
) -> None:
    t = await tenant_of(central)
    from wrale.fleet.brain.models import Rack, Room, Site

    async with central.db.session() as s:
        site = Site(tenant_id=t, name="hq")
        s.add(site)
        await s.flush()
        room = Room(tenant_id=t, site_id=site.id, name="lab")
        s.add(room)
        await s.flush()
        rack = Rack(tenant_id=t, room_id=room.id, name="A1")
        s.add(rack)
        await s.flush()
        rack_id, room_id, site_id = rack.id, room.id, site.id
    await make_devices(
        central,
        ("k-1", {"tags": ["kiosk", "lobby"], "status": "online", "rack_id": rack_id}),
        ("k-2", {"tags": ["kiosk"], "status": "offline", "model": "Pi 5"}),
        ("k-3", {"tags": ["lobby"], "status": "online", "rack_id": rack_id}),
        ("plain", {}),
    )
    r = await admin_ui.fragment("/groups/_preview", tags_all="kiosk")
    assert r.status_code == 200
    assert '<strong data-count="2">2</strong> devices match' in r.text
    assert "k-1, k-2" in r.text
    r = await admin_ui.http.get(
        "/groups/_preview", params={"tags_any": "kiosk, lobby", "status": ["online"]}
    )
    assert 'data-count="2"' in r.text
    r = await admin_ui.fragment("/groups/_preview", site_id=site_id)
    assert 'data-count="2"' in r.text
    r = await admin_ui.fragment("/groups/_preview", rack_id="f" * 32)
    assert 'id="preview-error"' in r.text
    r = await admin_ui.fragment("/groups/_preview")
    assert 'data-count="4"' in r.text  # an empty selector: every device

    await admin_ui.page("/groups")
    r = await admin_ui.post(
        "/groups",
        {"name": "kiosks", "kind": "dynamic", "tags_all": "kiosk", "description": ""},
    )
    assert r.status_code == 200, r.text
    gid = r.headers["HX-Redirect"].removeprefix("/groups/")
    group = (await groups_of(central))["kiosks"]
    assert group["selector"] == {"tags_all": ["kiosk"]}
    r = await admin_ui.page(f"/groups/{gid}")
    assert "Matching devices <small" in r.text
    assert 'data-total="2"' in r.text
    assert 'id="add-member"' not in r.text  # members come from the selector
    assert 'id="group-selector">tags all of kiosk<' in r.text

    # the page's SQL counts agree with the service's own resolution, clause by clause
    selectors = [
        {"tags_all": ["kiosk", "lobby"]},
        {"tags_any": ["lobby"], "status": ["online"]},
        {"model": "Pi 5"},
        {"room_id": room_id},
        {"site_id": site_id, "tags_any": ["kiosk"]},
        {"rack_id": rack_id, "status": ["offline"]},
    ]
    for i, selector in enumerate(selectors):
        g = await api(
            central,
            "POST",
            "/groups",
            {"name": f"sel-{i}", "kind": "dynamic", "selector": selector},
            201,
        )
        r = await admin_ui.page(f"/groups/{g['id']}")
        found = re.search(r'id="members"[^>]*data-total="(\d+)"', r.text)
        assert found
        assert int(found.group(1)) == len(await member_names(central, g["id"])), selector

    # a bad selector is refused at its field, typed values kept, nothing made
    r = await admin_ui.post(
        "/groups",
        {"name": "bad", "kind": "dynamic", "tags_all": "x" * 70, "status": ["online"]},
    )
    assert r.status_code == 422
    assert 'id="tags_all-error"' in r.text
    assert 'value="online" checked' in r.text
    r = await admin_ui.post("/groups", {"name": "bad", "kind": "dynamic", "rack_id": "f" * 32})
    assert r.status_code == 422
    assert 'id="rack_id-error"' in r.text
    r = await admin_ui.post("/groups", {"name": "kiosks", "kind": "static"})
    assert r.status_code == 422
    assert 'id="name-error"' in r.text
    assert "already exists" in r.text
    r = await admin_ui.post(
        "/groups",
        {"name": "n\x00", "description": "\x00", "kind": "dynamic", "model": "\x00"},
    )
    assert r.status_code == 422
    assert all(f'id="{f}-error"' in r.text for f in ("name", "description", "model"))
    r = await admin_ui.post("/groups", {"name": "x", "kind": "dynamic", "status": ["\x00"]})
    assert r.status_code == 422
    r = await admin_ui.post("/groups", {"name": "x", "parent_id": "\x00"})
    assert r.status_code == 422
    assert 'id="parent_id-error"' in r.text
    r = await admin_ui.post("/groups", {"name": "x", "kind": "dynamic", "tags_any": "a\x00"})
    assert 'id="tags_any-error"' in r.text
    r = await admin_ui.post("/groups", {"name": " ", "kind": "static"}, htmx=False)
    assert r.status_code == 422
    assert "<h1>Groups</h1>" in r.text
    assert "bad" not in await groups_of(central)


async def test_tree_edit_and_delete_with_the_count_in_the_confirmation(
    central: Central, admin_ui: Browser
) -> None:
    ids = await make_devices(central, ("d-1", {}), ("d-2", {}), ("d-3", {}))
    parent = await api(central, "POST", "/groups", {"name": "site-west"}, 201)
    child = await api(central, "POST", "/groups", {"name": "row-3", "parent_id": parent["id"]}, 201)
    await api(central, "POST", f"/groups/{child['id']}/members", {"device_ids": list(ids.values())})
    r = await admin_ui.page("/groups")
    assert 'data-depth="0"' in tree_row(r.text, parent["id"])
    assert 'data-depth="1"' in tree_row(r.text, child["id"])
    assert r.text.index(parent["id"]) < r.text.index(child["id"])
    assert 'data-members="3"' in tree_row(r.text, child["id"])

    # the parent has a subgroup: no delete button, and the server refuses anyway
    r = await admin_ui.page(f"/groups/{parent['id']}")
    assert 'data-action="delete-group"' not in r.text
    assert "1 subgroup" in r.text
    assert (await admin_ui.post(f"/groups/{parent['id']}/delete")).status_code == 409

    # edit: a cycle is refused at the parent field and nothing of the edit is kept
    r = await admin_ui.page(f"/groups/{child['id']}")
    assert f'<option value="{parent["id"]}" selected>' in r.text
    r = await admin_ui.page(f"/groups/{parent['id']}")
    assert f'<option value="{child["id"]}"' not in r.text  # its own subgroup is not offered
    r = await admin_ui.post(
        f"/groups/{parent['id']}", {"name": "renamed", "parent_id": child["id"]}
    )
    assert r.status_code == 422
    assert 'id="parent_id-error"' in r.text
    assert 'value="renamed"' in r.text
    r = await admin_ui.post(f"/groups/{parent['id']}", {"name": ""}, htmx=False)
    assert r.status_code == 422
    assert 'id="name-error"' in r.text
    assert 'id="members"' in r.text  # the whole page again
    assert "site-west" in await groups_of(central)
    r = await admin_ui.post(
        f"/groups/{child['id']}", {"name": "row-3b", "description": "third row", "parent_id": ""}
    )
    assert r.headers["HX-Redirect"] == f"/groups/{child['id']}"
    moved = (await groups_of(central))["row-3b"]
    assert (moved["parent_id"], moved["description"]) == (None, "third row")

    r = await admin_ui.page(f"/groups/{child['id']}")
    confirm = re.search(r'data-action="delete-group"[^>]*hx-confirm="([^"]*)"', r.text)
    assert confirm
    assert "3 members" in confirm.group(1)
    assert "row-3b" in confirm.group(1)
    r = await admin_ui.post(f"/groups/{child['id']}/delete")
    assert r.headers["HX-Redirect"] == "/groups"
    assert "row-3b" not in await groups_of(central)
    assert (await admin_ui.page(f"/groups/{child['id']}")).status_code == 404


async def test_a_group_page_shows_its_policies_and_what_its_devices_inherit(
    central: Central, admin_ui: Browser
) -> None:
    parent = await api(central, "POST", "/groups", {"name": "fleet-east"}, 201)
    child = await api(
        central, "POST", "/groups", {"name": "east-kiosks", "parent_id": parent["id"]}, 201
    )
    fleet = await api(
        central,
        "POST",
        "/policies",
        {"scope_type": "fleet", "kind": "power", "document": {"low_battery_pct": 25}},
        201,
    )
    up = await api(
        central,
        "POST",
        "/policies",
        {
            "scope_type": "group",
            "scope_id": parent["id"],
            "kind": "thermal",
            "document": {"profile": "quiet"},
        },
        201,
    )
    own = await api(
        central,
        "POST",
        "/policies",
        {
            "scope_type": "group",
            "scope_id": child["id"],
            "kind": "thermal",
            "document": {"min_fan_pct": 40},
        },
        201,
    )
    r = await admin_ui.page(f"/groups/{child['id']}")
    assert r.status_code == 200, r.text
    html = r.text
    policies = html[html.index('id="group-policies"') : html.index('id="group-effective"')]
    assert f'href="/policies/{own["id"]}">v1' in policies
    assert "Minimum fan duty 40 %" in policies
    assert f"/policies/new?kind=power&amp;scope_type=group&amp;scope_id={child['id']}" in policies
    effective = html[html.index('id="group-effective"') :]
    assert f'href="/policies/{up["id"]}">group “fleet-east” · v1' in effective
    assert f'href="/policies/{own["id"]}">group “east-kiosks” · v1' in effective
    assert f'href="/policies/{fleet["id"]}">fleet policy · v1' in effective
    assert 'data-path="thermal.hysteresis_c"' not in effective  # defaults are summed up
    assert f'<a href="/groups/{parent["id"]}">fleet-east</a> › east-kiosks' in html


async def test_viewers_see_groups_but_no_forms_and_cannot_change_them(
    central: Central, ui_as: SignIn
) -> None:
    ids = await make_devices(central, ("ro-1", {}))
    group = await api(central, "POST", "/groups", {"name": "ro"}, 201)
    await api(central, "POST", f"/groups/{group['id']}/members", {"device_ids": [ids["ro-1"]]})
    viewer = await ui_as("viewer")
    for path in ("/groups", f"/groups/{group['id']}"):
        r = await viewer.page(path)
        assert r.status_code == 200, path
        assert "data-action" not in r.text
        assert "hx-post" not in r.text
        posts = re.findall(r'<form[^>]*method="post"[^>]*>', r.text)
        assert all('action="/logout"' in f for f in posts), posts
    assert "ro-1" in r.text
    for path, data in (
        ("/groups", {"name": "nope"}),
        (f"/groups/{group['id']}", {"name": "nope"}),
        (f"/groups/{group['id']}/delete", {}),
        (f"/groups/{group['id']}/members", {"device": "ro-1"}),
        (f"/groups/{group['id']}/members/{ids['ro-1']}/remove", {}),
    ):
        assert (await viewer.post(path, data)).status_code == 403, path
    assert set(await groups_of(central)) == {"ro"}
    assert await member_names(central, group["id"]) == ["ro-1"]

    operator = await ui_as("operator")
    r = await operator.page(f"/groups/{group['id']}")
    assert 'data-action="delete-group"' in r.text
    assert 'id="add-member"' in r.text
    assert "/policies/new" not in r.text  # policies stay with admins
