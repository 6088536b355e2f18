"""Input PostgreSQL cannot store or compare (NUL characters) is refused with a 422, in a
body, a query string or a path — never a 500 — on both databases."""

from __future__ import annotations

from tests.conftest import Central


async def test_nul_in_bodies_queries_and_paths_is_a_422(central: Central) -> None:
    a = central.admin
    for path, body in [
        ("/api/v1/sites", {"name": "a\x00b"}),
        ("/api/v1/notification-channels", {"name": "n", "config": {"url": "https://x\x00"}}),
        ("/api/v1/users", {"username": "ok", "password": "password-123\x00"}),
        (
            "/api/v1/policies",
            {"scope_type": "group", "scope_id": "\x00g", "kind": "sampling", "document": {}},
        ),
    ]:
        r = await central.http.post(path, headers=a, json=body)
        assert r.status_code == 422, (path, r.text)
        assert "NUL" in r.json()["error"]["message"]
    r = await central.http.get("/api/v1/devices?q=%00", headers=a)
    assert r.status_code == 422
    r = await central.http.get("/api/v1/devices/ab%00cd", headers=a)
    assert r.status_code == 422
    assert (await central.http.get("/api/v1/sites", headers=a)).json()["items"] == []
