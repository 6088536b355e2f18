"""Input PostgreSQL cannot store or compare (NUL characters) is refused with a 422, in a
body, a query string or a path — never a 500 — on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator

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


async def test_deep_or_undecodable_bodies_are_a_4xx(central: Central) -> None:
    """A body nested past the JSON parser's recursion limit, with or without a NUL
    escape, and text no database can store (a lone surrogate) are client errors."""
    a = {**central.admin, "content-type": "application/json"}
    deep = b"[" * 100_000 + b"]" * 100_000
    for body in [
        deep,
        b'{"name": "x\\u0000", "x": ' + deep + b"}",
        b'{"name": "a\\ud800b"}',
        b'{"name": ' + b"[" * 100_000 + b'"\\u0000"' + b"]" * 100_000 + b"}",
    ]:
        r = await central.http.post("/api/v1/sites", headers=a, content=body)
        assert 400 <= r.status_code < 500, (body[:40], r.status_code, r.text[:200])
    assert (await central.http.get("/api/v1/sites", headers=central.admin)).json()["items"] == []


async def test_a_body_over_the_cap_is_a_413(central: Central) -> None:
    from wrale.user.api.errors import MAX_BODY_BYTES

    a = {**central.admin, "content-type": "application/json"}
    big = b'{"name": "' + b"x" * MAX_BODY_BYTES + b'"}'
    r = await central.http.post("/api/v1/sites", headers=a, content=big)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "too_large"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(5):
            yield b"x" * (MAX_BODY_BYTES // 4)

    r = await central.http.post("/api/v1/sites", headers=a, content=chunks())
    assert r.status_code == 413
    assert (await central.http.post("/api/v1/sites", headers=a, json={"name": "ok"})).is_success
