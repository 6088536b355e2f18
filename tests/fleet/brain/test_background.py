"""The maintenance runner: leases make each job run once per interval across replicas, a
failing job does not stop the others, and the audit retention job purges old entries."""

from __future__ import annotations

from pathlib import Path

import pytest

from wrale.fleet.brain.background import (
    BackgroundRunner,
    Job,
    JobContext,
    acquire_lease,
    default_jobs,
)
from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import AuditEntry, Lease
from wrale.shared.central_settings import CentralSettings

T0 = 1_800_000_000.0


@pytest.fixture
def settings(tmp_path: Path) -> CentralSettings:
    return CentralSettings(
        data_dir=tmp_path, maintenance_interval_s=30, audit_retention_days=10, dev=True
    )


def runner(
    db: Database, settings: CentralSettings, jobs: list[Job], holder: str
) -> BackgroundRunner:
    return BackgroundRunner(db, EventBus(), settings, jobs=jobs, holder=holder)


async def test_lease_acquire_renew_and_expiry(database: Database) -> None:
    assert await acquire_lease(database, "job", "a", 30, T0)
    assert not await acquire_lease(database, "job", "b", 30, T0 + 1)
    assert await acquire_lease(database, "job", "a", 30, T0 + 10)  # renewed by its holder
    assert not await acquire_lease(database, "job", "b", 30, T0 + 39)
    assert await acquire_lease(database, "job", "b", 30, T0 + 40)  # expired: taken over
    async with database.session() as s:
        lease = await s.get(Lease, "job")
        assert lease is not None
        assert (lease.holder, lease.expires_at) == ("b", T0 + 70)


async def test_two_runners_run_each_job_once_per_interval(
    database: Database, settings: CentralSettings
) -> None:
    calls: list[tuple[str, float]] = []

    def job(name: str) -> Job:
        async def run(ctx: JobContext, now: float) -> None:
            calls.append((name, now))

        return Job(name, run)

    jobs = [job("rollup"), job("retention")]
    a, b = runner(database, settings, jobs, "a"), runner(database, settings, jobs, "b")
    try:
        assert await a.run_once(T0) == ["rollup", "retention"]
        assert await b.run_once(T0 + 1) == []
        assert await b.run_once(T0 + 29) == []
        assert await a.run_once(T0 + 30) == ["rollup", "retention"]  # next interval
        assert await b.run_once(T0 + 45) == []
        # replica a is gone: once its lease runs out, b takes the jobs over
        assert await b.run_once(T0 + 61) == ["rollup", "retention"]
        assert calls == [
            ("rollup", T0),
            ("retention", T0),
            ("rollup", T0 + 30),
            ("retention", T0 + 30),
            ("rollup", T0 + 61),
            ("retention", T0 + 61),
        ]
    finally:
        await a.stop()
        await b.stop()


async def test_failing_job_does_not_stop_the_others(
    database: Database, settings: CentralSettings, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []

    async def broken(ctx: JobContext, now: float) -> None:
        raise RuntimeError("disk on fire")

    async def fine(ctx: JobContext, now: float) -> None:
        ran.append("fine")

    r = runner(database, settings, [Job("broken", broken), Job("fine", fine)], "a")
    try:
        assert await r.run_once(T0) == ["broken", "fine"]
        assert await r.run_once(T0 + 30) == ["broken", "fine"]  # retried next interval
    finally:
        await r.stop()
    assert ran == ["fine", "fine"]
    assert "background job broken failed" in caplog.text
    assert "disk on fire" in caplog.text


async def test_audit_retention_job(database: Database, settings: CentralSettings) -> None:
    import time

    old = time.time() - 11 * 86_400
    async with database.session() as s:
        s.add(AuditEntry(actor_type="system", action="old.thing", outcome="success"))
        s.add(AuditEntry(actor_type="system", action="ancient", outcome="success", created_at=old))
    jobs = [j for j in default_jobs() if j.name == "audit.retention"]
    assert len(jobs) == 1
    r = runner(database, settings, jobs, "a")
    try:
        assert await r.run_once() == ["audit.retention"]
    finally:
        await r.stop()
    async with database.session() as s:
        from sqlalchemy import select

        actions = (await s.scalars(select(AuditEntry.action))).all()
    assert list(actions) == ["old.thing"]


async def test_default_jobs_include_the_available_hooks() -> None:
    import importlib

    def present(attr: str, *modules: str) -> bool:
        for module in modules:
            try:
                if hasattr(importlib.import_module(module), attr):
                    return True
            except ImportError:
                pass
        return False

    services = "wrale.fleet.brain.services"
    names = {j.name for j in default_jobs()}
    assert "audit.retention" in names
    assert ("telemetry.rollup" in names) == present("rollup", f"{services}.telemetry")
    assert ("telemetry.retention" in names) == present("apply_retention", f"{services}.telemetry")
    assert ("alerts.cycle" in names) == present(
        "run_alert_cycle", f"{services}.alerts", f"{services}.alert_runner"
    )


async def test_start_and_stop_in_the_background(
    database: Database, settings: CentralSettings
) -> None:
    import asyncio

    ran = asyncio.Event()

    async def job(ctx: JobContext, now: float) -> None:
        ran.set()

    fast = settings.model_copy(update={"maintenance_interval_s": 1.0})
    r = runner(database, fast, [Job("tick", job)], "a")
    r.start()
    r.start()  # idempotent
    assert r.running
    await asyncio.wait_for(ran.wait(), 30)  # the first pass comes one interval after start
    await r.stop()
    await r.stop()
    assert not r.running


async def test_the_app_runs_the_maintenance_runner(tmp_path: Path) -> None:
    from wrale.user.api.app import create_app

    settings = CentralSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'central.db'}",
        data_dir=tmp_path,
        secret_key="test-secret-key-0123456789abcdef",
        admin_password="admin-password-1",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        assert app.state.background.running
    assert not app.state.background.running


async def test_every_default_job_runs_cleanly(
    database: Database, settings: CentralSettings, caplog: pytest.LogCaptureFixture
) -> None:
    """The real jobs (audit, telemetry retention, alert cycle …) against a real schema."""
    jobs = default_jobs()
    r = runner(database, settings, jobs, "a")
    try:
        assert await r.run_once() == [j.name for j in jobs]
    finally:
        await r.stop()
    assert "failed" not in caplog.text
