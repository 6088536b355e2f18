"""Every cursor-paginated list walks its items once each, in pages of ``limit``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Central

# list path → (create path, body factory)
LISTS: dict[str, tuple[str, Any]] = {
    "/api/v1/sites": ("/api/v1/sites", lambda i: {"name": f"site-{i}"}),
    "/api/v1/zones": ("/api/v1/zones", lambda i: {"name": f"zone-{i}"}),
    "/api/v1/groups": ("/api/v1/groups", lambda i: {"name": f"group-{i}"}),
    "/api/v1/enrollment-tokens": ("/api/v1/enrollment-tokens", lambda i: {"name": f"t-{i}"}),
    "/api/v1/alert-rules": (
        "/api/v1/alert-rules",
        lambda i: {"name": f"r-{i}", "expression": f"cpu_temp_c > {60 + i}"},
    ),
    "/api/v1/notification-channels": (
        "/api/v1/notification-channels",
        lambda i: {"name": f"c-{i}", "config": {"url": "https://hooks.example/x"}},
    ),
    "/api/v1/api-tokens": ("/api/v1/api-tokens", lambda i: {"name": f"a-{i}"}),
}


@pytest.mark.parametrize("path", sorted(LISTS))
async def test_cursor_walks_every_item_once(central: Central, path: str) -> None:
    create, body = LISTS[path]
    made = set()
    for i in range(5):
        r = await central.http.post(create, headers=central.admin, json=body(i))
        assert r.status_code == 201, r.text
        made.add(r.json()["id"])
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await central.http.get(path, headers=central.admin, params=params)).json()
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert made <= set(seen)
