"""``create_app(settings)``: the central server's FastAPI application, no module singletons.

On start it migrates the schema (unless told not to), creates the first admin, and keeps
nothing in memory that another replica would need.
"""

from __future__ import annotations

import gc
import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from starlette.routing import WebSocketRoute

from wrale import __version__
from wrale.fleet.brain import schema
from wrale.fleet.brain.background import BackgroundRunner, default_jobs, dry_run_job, holder_id
from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.bus_pg import start_relay
from wrale.fleet.brain.channel.hub import ChannelHub
from wrale.fleet.brain.channel.session import ChannelContext
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.services import identity
from wrale.fleet.brain.services.dry_run_change import DryRunner
from wrale.fleet.brain.services.identity import AuthConfig
from wrale.shared.central_settings import CentralSettings
from wrale.user.api import errors, openapi
from wrale.user.api.deps import AppState
from wrale.user.api.metrics import CentralMetrics, RequestMetricsMiddleware
from wrale.user.api.routes import (
    alerts,
    devices,
    enrollment,
    groups,
    health,
    metrics,
    policies,
    telemetry,
    tenant,
    topology,
    ws,
)
from wrale.user.api.routes import commands as command_routes
from wrale.user.api.routes import dry_runs as dry_run_routes
from wrale.user.api.routes import edge as edge_routes
from wrale.user.api.routes import identity as identity_routes
from wrale.user.api.routes import jobs as job_routes
from wrale.user.api.routes import maintenance as maintenance_routes
from wrale.user.api.routes import maintenance_rules as maintenance_rule_routes
from wrale.user.api.routes import quarantine as quarantine_routes
from wrale.user.api.routes import recommendations as recommendation_routes
from wrale.user.api.routes import resolve as resolve_routes
from wrale.user.api.routes import rollouts as rollout_routes
from wrale.user.api.routes import templates as template_routes
from wrale.user.api.routes import twin as twin_routes
from wrale.user.api.routes import wear as wear_routes

log = logging.getLogger("wrale.central")
API = "/api/v1"


def secret_key(settings: CentralSettings) -> str:
    """The configured signing key, or one generated once and kept in the data directory."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    path = Path(settings.data_dir) / "secret.key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    log.warning(
        "generated a signing key in %s; replicas need WRALE_SECRET_KEY set to one key", path
    )
    return key


def settle_heap() -> None:
    """For a server process, once it is set up: what exists now (modules, the app, caches)
    lives as long as the process, so keep it out of the garbage collector's full passes,
    which otherwise stall a request now and then (p95 of the overview at 10,000 devices:
    ~230 ms → ~120 ms). Not for tests, which make many apps in one process."""
    gc.collect()
    gc.freeze()


def create_app(
    settings: CentralSettings,
    *,
    database: Database | None = None,
    migrate: bool = True,
    dry_runner: DryRunner | None = None,
) -> FastAPI:
    """``dry_runner``: the digital copy the dry-run worker uses (the entry point wires
    ``wrale.user.simfleet.digital_copy``; None: dry-runs stay queued)."""
    db = database or Database(settings.database_url)
    state = AppState(
        settings=settings,
        db=db,
        auth=AuthConfig(
            secret_key=secret_key(settings),
            access_ttl_s=settings.access_token_ttl_s,
            refresh_ttl_s=settings.refresh_token_ttl_s,
            max_failures=settings.login_max_failures,
            lockout_s=settings.login_lockout_s,
            address_max_failures=settings.login_address_max_failures,
            backoff_max_s=settings.login_backoff_max_s,
        ),
        bus=EventBus(),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if migrate:
            await schema.upgrade(db)
        async with db.session() as session:
            pw = settings.admin_password.get_secret_value() if settings.admin_password else None
            generated = await identity.bootstrap(session, pw)
        if generated:
            print(
                f"\n  first start: created user 'admin' with password {generated}\n"
                "  (shown once; set WRALE_ADMIN_PASSWORD to choose it)\n",
                flush=True,
            )
        # PostgreSQL: events cross to the other replicas (LISTEN/NOTIFY); SQLite: None
        relay = app.state.relay = await start_relay(state.bus, db.url)
        jobs = [*default_jobs(), *([dry_run_job(dry_runner)] if dry_runner else [])]
        runner = app.state.background = BackgroundRunner(db, state.bus, settings, jobs)
        runner.start()
        await app.state.hub.start()
        bridge = app.state.mqtt_bridge = None
        if settings.mqtt_url:  # devices over MQTT too (fleet.brain.channel.mqtt_bridge)
            from wrale.fleet.brain.channel.mqtt_bridge import MqttBridge

            bridge = app.state.mqtt_bridge = MqttBridge(
                settings.mqtt_url, app.state.hub.ctx, app.state.hub
            )
            await bridge.start()
        accounts = app.state.broker_accounts = None
        if settings.mqtt_url and settings.mqtt_broker_auth and settings.mqtt_admin_password:
            from wrale.fleet.brain.channel.broker_accounts import BrokerAccounts

            accounts = app.state.broker_accounts = BrokerAccounts(
                settings.mqtt_url,
                settings.mqtt_admin_username or "",
                settings.mqtt_admin_password.get_secret_value(),
            )
            accounts.start(db, state.bus, max(settings.channel_heartbeat_s, 30.0))
        try:
            yield
        finally:
            if accounts is not None:
                await accounts.stop()
            if bridge is not None:
                await bridge.stop()
            await app.state.hub.stop()
            await runner.stop()
            if relay is not None:
                await relay.stop()
        if database is None:
            await db.dispose()

    app = FastAPI(
        title="Wrale Fleet",
        version=__version__,
        description="Physical-first fleet management: the central server's API.",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
    )
    app.state.wrale = state
    app.state.metrics = CentralMetrics()
    # the device channel: this replica's live device sessions (see fleet.brain.channel.hub)
    app.state.hub = ChannelHub(
        ChannelContext(
            db, state.bus, settings, holder_id(), on_points=app.state.metrics.telemetry_points.inc
        )
    )
    app.add_middleware(RequestMetricsMiddleware, metrics=app.state.metrics)
    errors.install(app)
    openapi.install(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    for router in (
        identity_routes.router,
        tenant.router,
        devices.router,
        enrollment.router,
        topology.router,
        groups.router,
        telemetry.router,
        alerts.router,
        policies.router,
        ws.router,
    ):
        app.include_router(router, prefix=API)
    for router in (
        twin_routes.router,
        command_routes.router,
        template_routes.router,
        job_routes.router,
        dry_run_routes.router,
        recommendation_routes.router,
        rollout_routes.router,
        maintenance_routes.router,
        maintenance_rule_routes.router,
        wear_routes.router,
        resolve_routes.router,
    ):
        app.include_router(router, prefix=API)
    for router in (edge_routes.router, quarantine_routes.router):
        app.include_router(router, prefix=API)
    # the device channel as a plain Starlette route (FastAPI's per-call machinery held
    # for a socket's whole life cost ~9 KiB a board), reached first by ``Direct`` below
    app.router.routes.insert(0, WebSocketRoute(f"{API}/edge/ws", edge_routes.edge, name="edge"))
    from wrale.user import ui  # the dashboard, wired here like every other part

    ui.install(app)
    app.add_middleware(edge_routes.Direct, path=f"{API}/edge/ws")  # added last: outermost
    return app
