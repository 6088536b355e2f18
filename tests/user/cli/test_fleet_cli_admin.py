"""``wrale users / audit / alerts / alert-rules / policies`` against a real central."""

from __future__ import annotations

import time

import pytest

from tests.conftest import run_sync
from tests.user.cli.conftest import CliCentral
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models.alerts import Alert

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def test_users_create_list_update_delete(cli: CliCentral) -> None:
    cli.login()
    created = cli.json(
        "users", "create", "olga", "--role", "operator", "--password", "pass-word-123"
    )
    assert created["username"] == "olga"
    assert created["role"] == "operator"
    table = cli.ok("users", "list")
    assert "Users (2)" in table
    assert "olga" in table
    assert "operator" in table
    assert {u["username"] for u in cli.json("users", "list")} == {"admin", "olga"}

    assert cli.json("users", "update", "olga", "--role", "viewer")["role"] == "viewer"
    assert cli.json("users", "update", "olga", "--disable")["disabled"] is True
    r = cli.run("login", "--central", cli.url, "--username", "olga", "--password", "pass-word-123")
    assert r.exit_code == 1
    cli.login()
    cli.ok("users", "update", "olga", "--enable")
    r = cli.run("users", "create", "xavier", "--password", "short")
    assert r.exit_code == 1
    assert "password" in r.output
    r = cli.run("users", "create", "x", "--password", "pass-word-123")
    assert r.exit_code == 1
    assert "[a-zA-Z0-9_.@-]" in r.output
    r = cli.run("users", "update", "nobody", "--role", "admin")
    assert r.exit_code == 1
    assert "no user matches 'nobody'" in r.output
    assert "deleted user olga" in cli.ok("users", "delete", "olga", "--yes")
    assert [u["username"] for u in cli.json("users", "list")] == ["admin"]


def test_users_create_prompts_for_the_password(cli: CliCentral) -> None:
    cli.login()
    cli.ok("users", "create", "paula", input="pass-word-123\npass-word-123\n")
    cli.login("paula", "pass-word-123")


def test_audit(cli: CliCentral) -> None:
    cli.login()
    cli.ok("users", "create", "ann", "--password", "pass-word-123")
    cli.run("login", "--central", cli.url, "--username", "ann", "--password", "wrong-one")
    cli.login()
    entries = cli.json("audit", "--since", "1h")
    actions = [e["action"] for e in entries]
    assert "user.create" in actions
    assert "auth.login" in actions
    assert entries == sorted(entries, key=lambda e: e["at"], reverse=True)  # newest first
    assert {e["action"] for e in cli.json("audit", "--action", "user.create")} == {"user.create"}
    failed = cli.json("audit", "--outcome", "failed")
    assert failed
    assert all(e["outcome"] == "failed" for e in failed)
    assert len(cli.json("audit", "--limit", "2")) == 2
    table = cli.ok("audit", "--actor", "admin")
    assert "user.create" in table
    assert "Audit log" in table
    r = cli.run("audit", "--since", "yesterday")
    assert r.exit_code == 2
    assert "duration" in r.output


def _raise_alert(database_url: str, tenant_id: str) -> str:
    async def go() -> str:
        db = Database(database_url)
        try:
            async with db.session() as s:
                now = time.time()
                a = Alert(
                    tenant_id=tenant_id, rule_name="hot", key="k1", metric="cpu_temp_c",
                    severity="MAJOR", state="active", value=74.0, threshold=70.0,
                    message="cpu_temp_c 74 > 70", raised_at=now, updated_at=now,
                )  # fmt: skip
                s.add(a)
                await s.flush()
                return a.id
        finally:
            await db.dispose()

    return str(run_sync(go()))


def test_alerts_list_ack_assign_clear(cli: CliCentral, database: Database) -> None:
    cli.login()
    assert cli.json("alerts", "list") == []
    assert "Alerts (0)" in cli.ok("alerts", "list")
    alert_id = _raise_alert(database.url, cli.json("whoami")["tenant_id"])

    table = cli.ok("alerts", "list", "--state", "active")
    assert "Alerts (1)" in table
    assert "cpu_temp_c 74 > 70" in table
    assert "MAJOR" in table
    assert cli.json("alerts", "list", "--severity", "minor") == []
    assert [a["id"] for a in cli.json("alerts", "list", "--severity", "major")] == [alert_id]

    assert "acknowledged" in cli.ok("alerts", "ack", alert_id, "--note", "on it")
    assert "assigned to" in cli.ok("alerts", "assign", alert_id, "admin")
    assert cli.json("alerts", "list", "--state", "open")[0]["assignee_id"]
    assert "cleared" in cli.ok("alerts", "clear", alert_id)
    shown = cli.json("alerts", "show", alert_id)
    assert shown["state"] == "cleared"
    assert len(shown["history"]) >= 3
    assert "History" in cli.ok("alerts", "show", alert_id)
    r = cli.run("alerts", "list", "--severity", "hot")
    assert r.exit_code == 2


def test_alert_rules(cli: CliCentral) -> None:
    cli.login()
    group = cli.json("groups", "create", "lab")
    rule = cli.json(
        "alert-rules", "create", "--expr", "cpu_temp_c > 70 for 5m", "--severity", "major",
        "--group", "lab",
    )  # fmt: skip
    assert rule["metric"] == "cpu_temp_c"
    assert rule["for_s"] == 300
    assert rule["severity"] == "MAJOR"
    assert rule["scope_type"] == "group"
    assert rule["scope_id"] == group["id"]
    assert "cpu_temp_c > 70" in cli.ok("alert-rules", "list")
    r = cli.run("alert-rules", "create", "--expr", "cpu_temp_c >>> 70")
    assert r.exit_code == 1
    assert "error:" in r.output
    cli.ok("alert-rules", "delete", rule["id"])
    assert cli.json("alert-rules", "list") == []


def test_policies_set_list_effective(cli: CliCentral) -> None:
    cli.login()
    token = cli.json("tokens", "create", "--name", "p", "--uses", "1")["token"]
    cli.ok("enroll-bulk", "--token", token, "--count", "1", "--prefix", "pol-")
    cli.ok("groups", "create", "hot-room")
    cli.ok("groups", "add", "hot-room", "pol-01")

    fleet = cli.json("policies", "set", "--scope", "fleet", "--kind", "thermal",
                     "--set", "profile=quiet", "--set", "cpu_warning_c=65")  # fmt: skip
    assert fleet["version"] == 1
    assert fleet["document"]["cpu_warning_c"] == 65
    out = cli.ok("policies", "set", "--scope", "group:hot-room", "--kind", "thermal",
                 "--set", "profile=cool")  # fmt: skip
    assert "version 1" in out
    again = cli.json("policies", "set", "--scope", "fleet", "--kind", "thermal",
                     "--set", "cpu_warning_c=68")  # fmt: skip
    assert again["version"] == 2
    assert again["document"] == {"profile": "quiet", "cpu_warning_c": 68}  # merged
    # the group's twins are recomposed in the background; --wait follows until done
    waited = cli.ok("policies", "set", "--scope", "group:hot-room", "--kind", "thermal",
                    "--set", "hysteresis_c=3", "--wait")  # fmt: skip
    assert "twins: 1 of 1 recomposed (done" in waited
    assert len(cli.json("policies", "list")) == 2
    assert len(cli.json("policies", "list", "--scope", "fleet")) == 1

    eff = cli.json("policies", "effective", "pol-01", "--kind", "thermal")
    fields = eff["kinds"]["thermal"]["fields"]
    assert fields["profile"]["value"] == "cool"  # the group is nearer than the fleet
    assert fields["profile"]["source"]["scope_type"] == "group"
    assert fields["cpu_warning_c"]["value"] == 68
    table = cli.ok("policies", "effective", "pol-01")
    assert "group:" in table
    assert "default" in table

    r = cli.run("policies", "set", "--scope", "fleet", "--kind", "thermal", "--set", "nope=1")
    assert r.exit_code == 1
    assert "nope" in r.output
    r = cli.run("policies", "set", "--scope", "rack:1", "--kind", "thermal", "--set", "a=1")
    assert r.exit_code == 1
    assert "--scope" in r.output
