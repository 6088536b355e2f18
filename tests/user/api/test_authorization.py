"""Table-driven authorisation: every endpoint of the API × admin / operator / viewer /
another tenant's admin / no token. A route the table does not know fails the test, so a
new endpoint cannot ship without its rule."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tests.conftest import Central

PUBLIC, VIEWER, OPERATOR, ADMIN, SELF = "public", "viewer", "operator", "admin", "self"
RANK = {VIEWER: 0, OPERATOR: 1, ADMIN: 2}


@dataclass(frozen=True)
class Rule:
    least: str  # the least role allowed (SELF: own resource for anyone, others admin)
    body: dict[str, Any] | None = None
    query: dict[str, Any] = field(default_factory=dict)


# (method, path) → rule. Path parameters are filled from the world built below.
RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/healthz"): Rule(PUBLIC),
    ("GET", "/readyz"): Rule(PUBLIC),
    ("POST", "/api/v1/auth/login"): Rule(PUBLIC, {"username": "nobody", "password": "x"}),
    ("POST", "/api/v1/auth/refresh"): Rule(PUBLIC, {"refresh_token": "nope"}),
    ("POST", "/api/v1/auth/logout"): Rule(PUBLIC, {"refresh_token": "nope"}),
    ("GET", "/api/v1/auth/me"): Rule(VIEWER),
    ("GET", "/api/v1/users"): Rule(ADMIN),
    ("POST", "/api/v1/users"): Rule(ADMIN, {"username": "new-{n}", "password": "password-123"}),
    ("GET", "/api/v1/users/{user_id}"): Rule(SELF),
    ("PATCH", "/api/v1/users/{user_id}"): Rule(ADMIN, {"disabled": False}),
    ("DELETE", "/api/v1/users/{user_id}"): Rule(ADMIN),
    ("GET", "/api/v1/api-tokens"): Rule(ADMIN),
    ("POST", "/api/v1/api-tokens"): Rule(ADMIN, {"name": "t", "role": "viewer"}),
    ("DELETE", "/api/v1/api-tokens/{token_id}"): Rule(ADMIN),
    ("GET", "/api/v1/audit"): Rule(OPERATOR),
}


async def build_world(c: Central) -> dict[str, str]:
    """One of everything in the admin's tenant, for path parameters."""
    world: dict[str, str] = {}
    r = await c.http.post(
        "/api/v1/users", headers=c.admin, json={"username": "victim", "password": "password-123"}
    )
    world["user_id"] = r.json()["id"]
    r = await c.http.post("/api/v1/api-tokens", headers=c.admin, json={"name": "victim"})
    world["token_id"] = r.json()["id"]
    return world


def routes_of(c: Central) -> list[tuple[str, str]]:
    """Every operation the API documents (the OpenAPI document lists them all)."""
    paths = c.app.openapi()["paths"]
    out = [(m.upper(), path) for path, ops in paths.items() for m in ops]
    assert len(out) > 10
    return out


def fill(path: str, world: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: world.get(m.group(1), "0" * 32), path)


async def test_every_route_has_a_rule(central: Central) -> None:
    missing = [r for r in routes_of(central) if r not in RULES]
    assert not missing, f"add these endpoints to RULES: {missing}"


async def test_authorisation_matrix(central: Central) -> None:
    world = await build_world(central)
    principals = {
        "none": {},
        "viewer": await central.user("viewer"),
        "operator": await central.user("operator"),
        "other": await central.other_tenant_admin(),
        "admin": central.admin,
    }
    failures: list[str] = []
    counter = 0
    for method, path in routes_of(central):
        rule = RULES[(method, path)]
        url = fill(path, world)
        for who, headers in principals.items():  # admin last: it may delete things
            counter += 1
            body = None
            if rule.body is not None:
                body = {
                    k: v.format(n=counter) if isinstance(v, str) else v
                    for k, v in rule.body.items()
                }
            r = await central.http.request(
                method, url, headers=headers, json=body, params=rule.query
            )
            expected = expectation(rule, who, path)
            if not expected(r.status_code):
                failures.append(f"{method} {path} as {who}: {r.status_code} {r.text[:200]}")
    assert not failures, "\n".join(failures)


def expectation(rule: Rule, who: str, path: str) -> Any:
    def fine(s: int) -> bool:
        return s < 500 and s not in (401, 403)

    if rule.least == PUBLIC:
        return lambda s: s < 500 and s != 403
    if who == "none":
        return lambda s: s == 401
    if who == "other":
        if "{" in path:  # another tenant's resource: it does not exist for them
            return lambda s: s == 404 or (s == 403 and rule.least == SELF)
        return lambda s: s < 500 and s != 401
    if rule.least == SELF:
        return (lambda s: s == 403) if who != "admin" else fine
    if RANK[who] < RANK[rule.least]:
        return lambda s: s == 403
    return fine
