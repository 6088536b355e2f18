"""The dashboard: server-rendered pages (Jinja2 + htmx + uPlot, SVG physical views) served
by the central server next to its API, with a live stream of the brain's events.

``install(app)`` is called by ``create_app``; pages call brain services directly, with the
same roles as the API, and never keep state in the process (any replica serves any page).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.gzip import GZipMiddleware

from wrale.user.ui import errors, live, web
from wrale.user.ui.headers import SecurityHeadersMiddleware
from wrale.user.ui.pages import (
    admin,
    admin_audit,
    admin_channel_actions,
    admin_channels,
    admin_token_actions,
    admin_tokens,
    admin_user_actions,
    alerts,
    alerts_detail,
    alerts_rule_actions,
    alerts_rules,
    auth,
    decisions,
    device,
    device_actions,
    devices,
    devices_bulk_actions,
    enrollment,
    enrollment_token_actions,
    jobs,
    maintenance,
    maintenance_rules,
    overview,
    physical,
    policies,
    policies_actions,
    policies_group_actions,
    policies_groups,
    rollouts,
    rollouts_detail,
)

log = logging.getLogger("wrale.central.ui")


def install(app: FastAPI) -> None:
    if not (web.STATIC / "vendor" / "htmx.min.js").exists():
        log.warning(
            "the dashboard's front-end packages are missing (%s); run `make ui-assets`",
            web.STATIC / "vendor",
        )
    # pages with hundreds of boards in SVG are repetitive: ~330 KB of HTML gzips to ~40 KB
    # (event streams are never compressed: Starlette leaves text/event-stream alone)
    app.add_middleware(GZipMiddleware, minimum_size=2048)
    app.add_middleware(SecurityHeadersMiddleware)  # CSP, framing, HSTS: headers.py
    app.state.ui_templates = web.make_templates()
    app.state.html_errors = errors.html_error
    app.mount("/static", StaticFiles(directory=web.STATIC), name="static")
    for module in (
        auth,
        live,
        overview,
        physical,
        devices,
        devices_bulk_actions,
        device,
        device_actions,
        jobs,
        rollouts,
        rollouts_detail,
        decisions,
        maintenance,
        maintenance_rules,
        alerts,
        alerts_rules,
        alerts_rule_actions,
        alerts_detail,
        policies,
        policies_actions,
        policies_groups,
        policies_group_actions,
        enrollment,
        enrollment_token_actions,
        admin,
        admin_user_actions,
        admin_tokens,
        admin_token_actions,
        admin_channels,
        admin_channel_actions,
        admin_audit,
    ):
        app.include_router(module.router)
