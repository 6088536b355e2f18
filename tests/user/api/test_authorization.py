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
ZERO = "0" * 32  # an id that exists nowhere


@dataclass(frozen=True)
class Rule:
    least: str  # the least role allowed (SELF: own resource for anyone, others admin)
    body: dict[str, Any] | None = None
    query: dict[str, Any] = field(default_factory=dict)
    unready_ok: bool = False  # 503 is a legitimate answer


SIM = {"kind": "sim_load", "cpu_pct": 10}  # a job's workload

# (method, path) → rule. Path parameters are filled from the world built below.
RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/healthz"): Rule(PUBLIC),
    ("GET", "/readyz"): Rule(PUBLIC, unready_ok=True),  # the test schema has no revision
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
    ("GET", "/api/v1/audit"): Rule(ADMIN),  # services.audit.READ_ROLE, as in the dashboard
    ("GET", "/api/v1/tenant"): Rule(VIEWER),
    ("PATCH", "/api/v1/tenant"): Rule(ADMIN, {"name": "org-{n}"}),
    ("GET", "/metrics"): Rule(PUBLIC),
    # registry and enrollment
    ("GET", "/api/v1/devices"): Rule(VIEWER),
    ("POST", "/api/v1/devices"): Rule(OPERATOR, {"name": "d-{n}"}),
    ("GET", "/api/v1/devices/{device_id}"): Rule(VIEWER),
    ("PATCH", "/api/v1/devices/{device_id}"): Rule(OPERATOR, {"tags": ["authz"]}),
    ("DELETE", "/api/v1/devices/{device_id}"): Rule(ADMIN),
    ("POST", "/api/v1/devices/{device_id}/status"): Rule(OPERATOR, {"status": "maintenance"}),
    ("GET", "/api/v1/devices/{device_id}/credentials"): Rule(OPERATOR),
    ("POST", "/api/v1/devices/{device_id}/credentials/rotate"): Rule(OPERATOR, {}),
    ("POST", "/api/v1/devices/{device_id}/credentials/revoke"): Rule(OPERATOR, {}),
    ("POST", "/api/v1/enroll"): Rule(PUBLIC, {"token": "not-a-token"}),
    ("POST", "/api/v1/enroll/bulk"): Rule(OPERATOR, {"devices": [{"name": "b-{n}"}]}),
    ("GET", "/api/v1/enrollment-tokens"): Rule(ADMIN),
    ("POST", "/api/v1/enrollment-tokens"): Rule(ADMIN, {"name": "t-{n}"}),
    ("GET", "/api/v1/enrollment-tokens/{token_id}"): Rule(ADMIN),
    ("DELETE", "/api/v1/enrollment-tokens/{token_id}"): Rule(ADMIN),
    # topology and placement
    ("GET", "/api/v1/topology"): Rule(VIEWER),
    ("GET", "/api/v1/sites"): Rule(VIEWER),
    ("POST", "/api/v1/sites"): Rule(OPERATOR, {"name": "s-{n}"}),
    ("GET", "/api/v1/sites/{site_id}"): Rule(VIEWER),
    ("PATCH", "/api/v1/sites/{site_id}"): Rule(OPERATOR, {"name": "s2-{n}"}),
    ("DELETE", "/api/v1/sites/{site_id}"): Rule(OPERATOR),
    ("GET", "/api/v1/rooms"): Rule(VIEWER),
    ("POST", "/api/v1/rooms"): Rule(OPERATOR, {"site_id": ZERO, "name": "r-{n}"}),
    ("GET", "/api/v1/rooms/{room_id}"): Rule(VIEWER),
    ("PATCH", "/api/v1/rooms/{room_id}"): Rule(OPERATOR, {"name": "r2-{n}"}),
    ("DELETE", "/api/v1/rooms/{room_id}"): Rule(OPERATOR),
    ("GET", "/api/v1/racks"): Rule(VIEWER),
    ("POST", "/api/v1/racks"): Rule(OPERATOR, {"room_id": ZERO, "name": "k-{n}"}),
    ("GET", "/api/v1/racks/{rack_id}"): Rule(VIEWER),
    ("PATCH", "/api/v1/racks/{rack_id}"): Rule(OPERATOR, {"name": "k2-{n}"}),
    ("DELETE", "/api/v1/racks/{rack_id}"): Rule(OPERATOR),
    ("GET", "/api/v1/racks/{rack_id}/power"): Rule(VIEWER),
    ("GET", "/api/v1/zones"): Rule(VIEWER),
    ("POST", "/api/v1/zones"): Rule(OPERATOR, {"name": "z-{n}"}),
    ("GET", "/api/v1/zones/{zone_id}"): Rule(VIEWER),
    ("PATCH", "/api/v1/zones/{zone_id}"): Rule(OPERATOR, {"description": "x"}),
    ("DELETE", "/api/v1/zones/{zone_id}"): Rule(OPERATOR),
    ("PUT", "/api/v1/devices/{device_id}/location"): Rule(OPERATOR, {"zone_id": None}),
    ("DELETE", "/api/v1/devices/{device_id}/location"): Rule(OPERATOR),
    # groups
    ("GET", "/api/v1/groups"): Rule(VIEWER),
    ("POST", "/api/v1/groups"): Rule(OPERATOR, {"name": "g-{n}"}),
    ("GET", "/api/v1/groups/{group_id}"): Rule(VIEWER),
    ("PATCH", "/api/v1/groups/{group_id}"): Rule(OPERATOR, {"description": "x"}),
    ("DELETE", "/api/v1/groups/{group_id}"): Rule(OPERATOR),
    ("GET", "/api/v1/groups/{group_id}/members"): Rule(VIEWER),
    ("POST", "/api/v1/groups/{group_id}/members"): Rule(OPERATOR, {"device_ids": [ZERO]}),
    ("DELETE", "/api/v1/groups/{group_id}/members/{device_id}"): Rule(OPERATOR),
    ("POST", "/api/v1/groups/{group_id}/members/remove"): Rule(OPERATOR, {"device_ids": [ZERO]}),
    ("POST", "/api/v1/devices/tags"): Rule(OPERATOR, {"device_ids": [ZERO], "tag": "authz"}),
    ("GET", "/api/v1/groups/{group_id}/devices"): Rule(VIEWER),
    ("GET", "/api/v1/devices/{device_id}/groups"): Rule(VIEWER),
    # telemetry
    ("GET", "/api/v1/devices/{device_id}/telemetry"): Rule(VIEWER, query={"metric": "cpu_temp_c"}),
    ("POST", "/api/v1/devices/{device_id}/telemetry"): Rule(
        OPERATOR, {"seq": 1, "points": [{"metric": "cpu_temp_c", "ts": 1.7e9, "value": 50.0}]}
    ),
    ("GET", "/api/v1/devices/{device_id}/telemetry/latest"): Rule(VIEWER),
    ("GET", "/api/v1/telemetry"): Rule(VIEWER, query={"metric": "power_w", "rack_id": "{rack_id}"}),
    # alerts, channels, policies
    ("GET", "/api/v1/alert-rules"): Rule(VIEWER),
    ("POST", "/api/v1/alert-rules"): Rule(
        OPERATOR, {"name": "rule-{n}", "expression": "cpu_temp_c > 70"}
    ),
    ("GET", "/api/v1/alert-rules/{rule_id}"): Rule(VIEWER),
    ("PATCH", "/api/v1/alert-rules/{rule_id}"): Rule(OPERATOR, {"enabled": True}),
    ("DELETE", "/api/v1/alert-rules/{rule_id}"): Rule(OPERATOR),
    ("GET", "/api/v1/alerts"): Rule(VIEWER),
    ("GET", "/api/v1/alerts/{alert_id}"): Rule(VIEWER),
    ("POST", "/api/v1/alerts/{alert_id}/acknowledge"): Rule(OPERATOR, {}),
    ("POST", "/api/v1/alerts/{alert_id}/assign"): Rule(OPERATOR, {"user_id": None}),
    ("POST", "/api/v1/alerts/{alert_id}/clear"): Rule(OPERATOR, {}),
    ("GET", "/api/v1/notification-channels"): Rule(ADMIN),
    ("POST", "/api/v1/notification-channels"): Rule(
        ADMIN, {"name": "ch-{n}", "config": {"url": "https://hooks.example/x"}}
    ),
    ("GET", "/api/v1/notification-channels/{channel_id}"): Rule(ADMIN),
    ("PATCH", "/api/v1/notification-channels/{channel_id}"): Rule(ADMIN, {"enabled": True}),
    ("POST", "/api/v1/notification-channels/{channel_id}/test"): Rule(ADMIN),
    ("DELETE", "/api/v1/notification-channels/{channel_id}"): Rule(ADMIN),
    ("GET", "/api/v1/policies"): Rule(VIEWER),
    ("POST", "/api/v1/policies"): Rule(
        ADMIN, {"scope_type": "fleet", "kind": "sampling", "document": {"interval_s": 2}}
    ),
    ("GET", "/api/v1/policies/{policy_id}"): Rule(VIEWER),
    ("PUT", "/api/v1/policies/{policy_id}"): Rule(ADMIN, {"document": {"interval_s": 3}}),
    ("DELETE", "/api/v1/policies/{policy_id}"): Rule(ADMIN),
    ("GET", "/api/v1/policies/{policy_id}/versions"): Rule(VIEWER),
    ("GET", "/api/v1/policies/recompose/{recompose_id}"): Rule(VIEWER),
    ("GET", "/api/v1/devices/{device_id}/effective-policy"): Rule(VIEWER),
    # device channel: events, quarantine
    ("GET", "/api/v1/devices/{device_id}/events"): Rule(VIEWER),
    ("POST", "/api/v1/devices/{device_id}/quarantine"): Rule(ADMIN, {"reason": "authz"}),
    ("POST", "/api/v1/devices/{device_id}/release"): Rule(ADMIN, {}),
    # twins, commands, config templates
    ("GET", "/api/v1/devices/{device_id}/twin"): Rule(VIEWER),
    ("PATCH", "/api/v1/devices/{device_id}/twin"): Rule(
        OPERATOR, {"version": 1, "desired": {"fan": {"override_pct": 10}}}
    ),
    ("POST", "/api/v1/devices/{device_id}/commands"): Rule(OPERATOR, {"op": "run_diag"}),
    ("GET", "/api/v1/devices/{device_id}/commands"): Rule(VIEWER),
    ("POST", "/api/v1/groups/{group_id}/commands"): Rule(OPERATOR, {"op": "run_diag"}),
    ("POST", "/api/v1/commands"): Rule(
        OPERATOR, {"op": "run_diag", "selector": {"tags": ["authz"]}}
    ),
    ("GET", "/api/v1/commands"): Rule(VIEWER),
    ("GET", "/api/v1/commands/{command_id}"): Rule(VIEWER),
    ("POST", "/api/v1/commands/{command_id}/cancel"): Rule(OPERATOR),
    ("GET", "/api/v1/config-templates"): Rule(VIEWER),
    ("POST", "/api/v1/config-templates"): Rule(OPERATOR, {"name": "tpl-{n}", "body": {"k": 1}}),
    ("GET", "/api/v1/config-templates/{template_id}"): Rule(VIEWER),
    ("PATCH", "/api/v1/config-templates/{template_id}"): Rule(OPERATOR, {"description": "x"}),
    ("DELETE", "/api/v1/config-templates/{template_id}"): Rule(ADMIN),
    ("GET", "/api/v1/config-templates/{template_id}/versions"): Rule(VIEWER),
    ("POST", "/api/v1/config-templates/{template_id}/versions"): Rule(OPERATOR, {"body": {"k": 2}}),
    ("GET", "/api/v1/config-templates/{template_id}/versions/{version}"): Rule(VIEWER),
    ("POST", "/api/v1/config-templates/{template_id}/render"): Rule(VIEWER, {}),
    ("GET", "/api/v1/config-templates/{template_id}/deployments"): Rule(VIEWER),
    ("POST", "/api/v1/config-templates/{template_id}/deployments"): Rule(
        OPERATOR, {"target_type": "fleet"}
    ),
    ("GET", "/api/v1/config-templates/{template_id}/deployments/{deployment_id}"): Rule(VIEWER),
    ("GET", "/api/v1/config-templates/{template_id}/deployments/{deployment_id}/devices"): Rule(
        VIEWER
    ),
    ("POST", "/api/v1/config-templates/{template_id}/deployments/{deployment_id}/rollback"): Rule(
        OPERATOR, {}
    ),
    # jobs and the decision log
    ("POST", "/api/v1/jobs"): Rule(OPERATOR, {"name": "j-{n}", "workload": SIM, "replicas": 1}),
    ("GET", "/api/v1/jobs"): Rule(VIEWER),
    ("GET", "/api/v1/jobs/{job_id}"): Rule(VIEWER),
    ("GET", "/api/v1/jobs/{job_id}/transitions"): Rule(VIEWER),
    ("DELETE", "/api/v1/jobs/{job_id}"): Rule(OPERATOR),
    ("GET", "/api/v1/decisions"): Rule(VIEWER),
    ("GET", "/api/v1/decisions/loops"): Rule(VIEWER),
    ("PUT", "/api/v1/decisions/loops/{loop}"): Rule(OPERATOR, {"paused": False}),
    ("GET", "/api/v1/recommendations"): Rule(VIEWER),
    ("POST", "/api/v1/recommendations/{rec_id}/accept"): Rule(OPERATOR),
    ("POST", "/api/v1/recommendations/{rec_id}/dismiss"): Rule(OPERATOR),
    ("POST", "/api/v1/rollouts"): Rule(
        OPERATOR,
        {"name": "r-{n}", "change": {"kind": "command", "op": "run_diag"}, "selector": {}},
    ),
    ("GET", "/api/v1/rollouts"): Rule(VIEWER),
    ("GET", "/api/v1/rollouts/{rollout_id}"): Rule(VIEWER),
    ("POST", "/api/v1/rollouts/{rollout_id}/pause"): Rule(OPERATOR),
    ("POST", "/api/v1/rollouts/{rollout_id}/resume"): Rule(OPERATOR),
    ("POST", "/api/v1/rollouts/{rollout_id}/approve"): Rule(OPERATOR),
    ("POST", "/api/v1/rollouts/{rollout_id}/abort"): Rule(OPERATOR),
    ("GET", "/api/v1/maintenance/windows"): Rule(VIEWER),
    ("POST", "/api/v1/maintenance/windows"): Rule(
        OPERATOR, {"name": "w-{n}", "cron": "0 2 * * *", "duration_s": 3600}
    ),
    ("GET", "/api/v1/maintenance/windows/{window_id}"): Rule(VIEWER),
    ("PATCH", "/api/v1/maintenance/windows/{window_id}"): Rule(OPERATOR, {"enabled": True}),
    ("DELETE", "/api/v1/maintenance/windows/{window_id}"): Rule(OPERATOR),
    ("GET", "/api/v1/devices/{device_id}/maintenance"): Rule(VIEWER),
    ("GET", "/api/v1/maintenance/queue"): Rule(VIEWER),
    ("GET", "/api/v1/maintenance/rules"): Rule(VIEWER),
    ("POST", "/api/v1/maintenance/rules"): Rule(
        OPERATOR, {"name": "m-{n}", "condition": {"metric": "fan_rpm", "op": "<", "value": 1500}}
    ),
    ("GET", "/api/v1/maintenance/rules/{rule_id}"): Rule(VIEWER),
    ("PATCH", "/api/v1/maintenance/rules/{rule_id}"): Rule(OPERATOR, {"enabled": True}),
    ("DELETE", "/api/v1/maintenance/rules/{rule_id}"): Rule(OPERATOR),
    ("GET", "/api/v1/maintenance/tasks"): Rule(VIEWER, query={"state": "open"}),
    ("POST", "/api/v1/maintenance/tasks/{task_id}/done"): Rule(OPERATOR, {"note": "fixed"}),
    ("GET", "/api/v1/devices/{device_id}/wear"): Rule(VIEWER),
    ("POST", "/api/v1/dry-runs"): Rule(
        OPERATOR, {"change": {"kind": "job", "name": "d", "workload": SIM, "replicas": 1}}
    ),
    ("GET", "/api/v1/dry-runs"): Rule(VIEWER),
    ("GET", "/api/v1/dry-runs/{dry_run_id}"): Rule(VIEWER),
    # names and short ids (a kind keeps its own rule: tests/user/api/test_resolve_api.py)
    ("GET", "/api/v1/resolve"): Rule(VIEWER, query={"kind": "device", "ref": "victim"}),
    ("GET", "/api/v1/resolve/short-ids"): Rule(VIEWER, query={"kind": "rack"}),
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
    a = c.admin

    async def make(path: str, body: dict[str, Any], key: str) -> None:
        resp = await c.http.post(path, headers=a, json=body)
        assert resp.status_code == 201, f"{path}: {resp.status_code} {resp.text}"
        world[key] = resp.json()["id"]

    await make("/api/v1/enrollment-tokens", {"name": "victim"}, "enrollment_token_id")
    await make("/api/v1/devices", {"name": "victim"}, "device_id")
    await make("/api/v1/sites", {"name": "victim"}, "site_id")
    await make("/api/v1/rooms", {"site_id": world["site_id"], "name": "victim"}, "room_id")
    await make("/api/v1/racks", {"room_id": world["room_id"], "name": "victim"}, "rack_id")
    await make("/api/v1/zones", {"name": "victim"}, "zone_id")
    await make("/api/v1/groups", {"name": "victim"}, "group_id")
    await make(
        "/api/v1/alert-rules", {"name": "victim", "expression": "cpu_temp_c > 70"}, "rule_id"
    )
    await make(
        "/api/v1/notification-channels",
        {"name": "victim", "config": {"url": "https://hooks.example/x"}},
        "channel_id",
    )
    await make(
        "/api/v1/policies",
        {
            "scope_type": "device",
            "scope_id": world["device_id"],
            "kind": "thermal",
            "document": {"profile": "cool"},
        },
        "policy_id",
    )
    await make("/api/v1/jobs", {"name": "victim", "workload": SIM, "replicas": 1}, "job_id")
    return world


def routes_of(c: Central) -> list[tuple[str, str]]:
    """Every operation the API documents (the OpenAPI document lists them all)."""
    paths = c.app.openapi()["paths"]
    out = [(m.upper(), path) for path, ops in paths.items() for m in ops]
    assert len(out) > 10
    return out


def fill(path: str, world: dict[str, str]) -> str:
    """Path parameters from the world; an unknown kind (alerts) gets an id that exists
    nowhere, which must still answer 403 / 404, never 2xx, to the wrong caller."""
    if path.startswith("/api/v1/enrollment-tokens/"):
        world = {**world, "token_id": world["enrollment_token_id"]}
    return re.sub(r"\{(\w+)\}", lambda m: world.get(m.group(1), ZERO), path)


async def test_every_route_has_a_rule(central: Central) -> None:
    missing = [r for r in routes_of(central) if r not in RULES]
    assert not missing, f"add these endpoints to RULES: {missing}"


async def every_principal(central: Central) -> dict[str, dict[str, str]]:
    """Headers of no one, a viewer, an operator, another tenant's admin and the admin."""
    return {
        "none": {},
        "viewer": await central.user("viewer"),
        "operator": await central.user("operator"),
        "other": await central.other_tenant_admin(),
        "admin": central.admin,
    }


async def test_authorisation_matrix(central: Central) -> None:
    world = await build_world(central)
    principals = await every_principal(central)
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
        return lambda s: (s < 500 or (rule.unready_ok and s == 503)) and s != 403
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


# ----------------------------------------------------------------------------- twin sections

# Top-level section of the desired document -> the least role that may change it.
TWIN_SECTIONS: dict[str, str] = {
    "thermal": OPERATOR,
    "power": OPERATOR,
    "security": ADMIN,
    "sampling": OPERATOR,
    "fan": OPERATOR,
    "tamper": ADMIN,
    "gpio": OPERATOR,
    "config": OPERATOR,
}
FROZEN_IN_LOCKDOWN = {"tamper", "security", "fan", "gpio"}


def twin_change(section: str, n: int) -> dict[str, Any]:
    """A valid value for ``section`` that differs from the one written at ``n - 1``."""
    return {
        "thermal": {"cpu_warning_c": 60 + n % 10},
        "power": {"low_battery_pct": 20 + n % 10},
        "security": {"debounce_s": 1 + n % 10},
        "sampling": {"report_interval_s": 10 + n % 10},
        "fan": {"override_pct": 10 + n % 10},
        "tamper": {"armed": n % 2 == 0, "level": ("low", "medium", "high")[n % 3]},
        "gpio": {"17": {"value": n % 2}},
        "config": {"k": n},
    }[section]


def twin_expected(who: str, section: str, locked: bool) -> int:
    if who == "none":
        return 401
    if who == "other":
        return 404
    if RANK[who] < RANK[TWIN_SECTIONS[section]]:
        return 403
    return 409 if locked and section in FROZEN_IN_LOCKDOWN else 200


async def test_twin_section_matrix(central: Central) -> None:
    """Every section of the desired document, set and removed, by admin / operator /
    viewer / another tenant's admin / no token; then again while the device reports a
    tamper lockdown."""
    from wrale.fleet.brain.models import Device
    from wrale.fleet.brain.services import twin

    assert set(TWIN_SECTIONS) == set(twin.SECTIONS), "a new twin section needs its rule"
    r = await central.http.post("/api/v1/devices", headers=central.admin, json={"name": "tw"})
    device_id = r.json()["id"]
    url = f"/api/v1/devices/{device_id}/twin"
    principals = await every_principal(central)
    failures: list[str] = []
    n = 0
    for locked in (False, True):
        if locked:  # every section set first, so that each removal is a change
            for section in TWIN_SECTIONS:
                version = (await central.http.get(url, headers=central.admin)).json()
                body = {
                    "version": version["desired"]["version"],
                    "desired": {section: twin_change(section, 0)},
                }
                r = await central.http.patch(url, headers=central.admin, json=body)
                assert r.status_code == 200, r.text
            async with central.db.session() as s:
                device = await s.get(Device, device_id)
                assert device is not None
                reported = {"tamper": {"armed": True, "level": "high", "lockdown": True}}
                await twin.record_reported(s, device, 1, reported, 1, {}, 100.0)
        for section in TWIN_SECTIONS:
            for action in ("set", "remove"):
                for who, headers in principals.items():
                    n += 1
                    current = await central.http.get(url, headers=central.admin)
                    version = current.json()["desired"]["version"]
                    value = twin_change(section, n) if action == "set" else None
                    if action == "remove" and section not in current.json()["overrides"]:
                        continue  # removed already (by an operator, for operator sections)
                    body = {"version": version, "desired": {section: value}}
                    r = await central.http.patch(url, headers=headers, json=body)
                    want = twin_expected(who, section, locked)
                    if r.status_code != want:
                        failures.append(
                            f"{action} {section} as {who} (locked={locked}): "
                            f"{r.status_code}, expected {want}: {r.text[:200]}"
                        )
                    elif r.status_code >= 400:
                        assert r.json()["error"]["code"] in (
                            "unauthorized",
                            "forbidden",
                            "not_found",
                            "lockdown",
                        ), r.text
                    after = await central.http.get(url, headers=central.admin)
                    before = current.json()["overrides"]
                    if r.status_code != 200 and after.json()["overrides"] != before:
                        failures.append(f"{action} {section} as {who}: refused but changed")
    assert not failures, "\n".join(failures)
