"""How long a credential lives: API tokens follow their creator (role, disable, delete)
and cannot mint tokens; a password, role or disable change ends every session at once."""

from __future__ import annotations

from typing import Any

from tests.conftest import Central

PASSWORD = "password-123"


async def _user(central: Central, role: str, name: str) -> tuple[str, dict[str, str]]:
    r = await central.http.post(
        "/api/v1/users",
        headers=central.admin,
        json={"username": name, "password": PASSWORD, "role": role},
    )
    assert r.status_code == 201, r.text
    return r.json()["id"], await central.login(name, PASSWORD)


async def _token(central: Central, headers: dict[str, str], role: str) -> dict[str, str]:
    r = await central.http.post(
        "/api/v1/api-tokens", headers=headers, json={"name": f"t-{role}", "role": role}
    )
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def _patch(central: Central, user_id: str, body: dict[str, Any]) -> None:
    r = await central.http.patch(f"/api/v1/users/{user_id}", headers=central.admin, json=body)
    assert r.status_code == 200, r.text


async def _me(central: Central, headers: dict[str, str]) -> tuple[int, str | None]:
    r = await central.http.get("/api/v1/auth/me", headers=headers)
    return r.status_code, r.json().get("role") if r.status_code == 200 else None


# ----------------------------------------------------------------------------- API tokens


async def test_a_token_never_acts_above_its_creators_current_role(central: Central) -> None:
    boss_id, boss = await _user(central, "admin", "boss")
    token = await _token(central, boss, "admin")
    assert await _me(central, token) == (200, "admin")
    await _patch(central, boss_id, {"role": "viewer"})
    assert await _me(central, token) == (200, "viewer")
    r = await central.http.get("/api/v1/users", headers=token)
    assert r.status_code == 403
    await _patch(central, boss_id, {"role": "operator"})
    assert await _me(central, token) == (200, "operator")


async def test_a_disabled_or_deleted_creator_disables_the_token(central: Central) -> None:
    gone_id, gone = await _user(central, "admin", "gone")
    away_id, away = await _user(central, "admin", "away")
    deleted_token = await _token(central, gone, "operator")
    disabled_token = await _token(central, away, "operator")
    await _patch(central, away_id, {"disabled": True})
    assert (await _me(central, disabled_token))[0] == 401
    r = await central.http.delete(f"/api/v1/users/{gone_id}", headers=central.admin)
    assert r.status_code == 204
    assert (await _me(central, deleted_token))[0] == 401
    # enabling the creator again brings the token back; deletion is for good
    await _patch(central, away_id, {"disabled": False})
    assert await _me(central, disabled_token) == (200, "operator")
    tokens = (await central.http.get("/api/v1/api-tokens", headers=central.admin)).json()
    by_name = {t["name"]: t for t in tokens["items"] if t["name"] == "t-operator"}
    assert by_name  # listed, with the deleted creator's one revoked
    revoked = [t for t in tokens["items"] if t["revoked_at"] is not None]
    assert len(revoked) == 1


async def test_a_token_cannot_mint_tokens(central: Central) -> None:
    token = await _token(central, central.admin, "admin")
    r = await central.http.post(
        "/api/v1/api-tokens", headers=token, json={"name": "child", "role": "viewer"}
    )
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden"


# ----------------------------------------------------------------------------- sessions


async def _pair(central: Central, name: str) -> tuple[dict[str, str], str]:
    r = await central.http.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    return {"Authorization": f"Bearer {body['access_token']}"}, body["refresh_token"]


async def _refresh(central: Central, refresh: str) -> int:
    r = await central.http.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
    return int(r.status_code)


async def test_a_password_change_ends_every_session(central: Central) -> None:
    uid, _ = await _user(central, "operator", "pat")
    access, refresh = await _pair(central, "pat")
    await _patch(central, uid, {"password": "another-password-1"})
    assert (await _me(central, access))[0] == 401
    assert await _refresh(central, refresh) == 401
    r = await central.http.post(
        "/api/v1/auth/login", json={"username": "pat", "password": "another-password-1"}
    )
    assert r.status_code == 200


async def test_a_role_downgrade_ends_sessions_that_carry_the_old_role(central: Central) -> None:
    uid, _ = await _user(central, "admin", "dana")
    access, refresh = await _pair(central, "dana")
    assert await _me(central, access) == (200, "admin")
    await _patch(central, uid, {"role": "viewer"})
    assert (await _me(central, access))[0] == 401
    assert await _refresh(central, refresh) == 401
    fresh, _ = await _pair(central, "dana")
    assert await _me(central, fresh) == (200, "viewer")


async def test_disabling_a_user_ends_sessions_for_good(central: Central) -> None:
    uid, _ = await _user(central, "operator", "eve")
    access, refresh = await _pair(central, "eve")
    await _patch(central, uid, {"disabled": True})
    await _patch(central, uid, {"disabled": False})
    assert (await _me(central, access))[0] == 401  # re-enabling does not revive them
    assert await _refresh(central, refresh) == 401
