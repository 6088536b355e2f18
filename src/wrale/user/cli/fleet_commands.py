"""Registers the central-API commands on the ``wrale`` app: ``login``/``logout``/``whoami``,
``devices``, ``sites``/``rooms``/``racks``/``zones``, ``groups``, ``tokens``, ``api-tokens``,
``enroll-bulk``, ``alerts``, ``alert-rules``, ``policies``, ``users``, ``audit``, ``jobs``,
``decisions``, ``recommend``, ``maintenance`` and ``dry-run``."""

from __future__ import annotations

import typer

from wrale.user.cli.fleet_alerts import alerts_app, rules_app
from wrale.user.cli.fleet_audit import audit
from wrale.user.cli.fleet_auth import login, logout, whoami
from wrale.user.cli.fleet_common import FleetCommand
from wrale.user.cli.fleet_devices import devices_app
from wrale.user.cli.fleet_dryrun import dry_run_app
from wrale.user.cli.fleet_enroll import enroll_bulk
from wrale.user.cli.fleet_groups import groups_app
from wrale.user.cli.fleet_jobs import decisions, jobs_app
from wrale.user.cli.fleet_maintenance import maintenance_app
from wrale.user.cli.fleet_policies import policies_app
from wrale.user.cli.fleet_recommend import recommend_app
from wrale.user.cli.fleet_rollouts import rollouts_app
from wrale.user.cli.fleet_tokens import api_tokens_app, tokens_app
from wrale.user.cli.fleet_topology import racks_app, rooms_app, sites_app, zones_app
from wrale.user.cli.fleet_users import users_app


def register(app: typer.Typer) -> None:
    for name, fn in (
        ("login", login),
        ("logout", logout),
        ("whoami", whoami),
        ("enroll-bulk", enroll_bulk),
        ("audit", audit),
        ("decisions", decisions),
    ):
        app.command(name, cls=FleetCommand)(fn)
    for name, sub in (
        ("devices", devices_app),
        ("sites", sites_app),
        ("rooms", rooms_app),
        ("racks", racks_app),
        ("zones", zones_app),
        ("groups", groups_app),
        ("tokens", tokens_app),
        ("api-tokens", api_tokens_app),
        ("alerts", alerts_app),
        ("alert-rules", rules_app),
        ("policies", policies_app),
        ("users", users_app),
        ("jobs", jobs_app),
        ("maintenance", maintenance_app),
        ("dry-run", dry_run_app),
        ("recommend", recommend_app),
        ("rollouts", rollouts_app),
    ):
        app.add_typer(sub, name=name)
