"""Background jobs: every replica runs a ``BackgroundRunner``; each job is guarded by
a lease row so it runs once per interval fleet-wide (audit retention, telemetry rollups and
retention, alert evaluation, notification delivery, offline detection, job placement, rack power
capping, thermal balancing, recommendations, maintenance rules). A job has the runner's
interval unless it names its own (the decision loops: every few seconds or a minute). Each
job runs in its own task under its own deadline: a stuck job holds up no other, is not
started again while it runs, and its lease is not renewed meanwhile. A failing job is
retried next interval.

It must not keep state another replica needs: the leases live in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError

from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Lease
from wrale.fleet.brain.services import audit
from wrale.fleet.brain.services.delivery import DeliveryLimits, deliver_pending
from wrale.fleet.brain.services.dry_run_change import DryRunner
from wrale.fleet.brain.services.dry_runs import DryRunWorker
from wrale.fleet.brain.services.egress import EgressPolicy
from wrale.fleet.brain.services.job_placement import place_all
from wrale.fleet.brain.services.maintenance.rules_runner import RULES_INTERVAL_S, evaluate_all
from wrale.fleet.brain.services.rack_capping import CAPPING_INTERVAL_S, cap_all
from wrale.fleet.brain.services.recommendations import (
    RECOMMENDATIONS_INTERVAL_S,
    recommend_all,
)
from wrale.fleet.brain.services.rollout_loop import ROLLOUTS_INTERVAL_S, advance_all
from wrale.fleet.brain.services.telemetry_partitions import PARTITIONS_INTERVAL_S, partition_duty
from wrale.fleet.brain.services.thermal_balancing import BALANCING_INTERVAL_S, balance_all
from wrale.fleet.brain.services.twin_recompose import RECOMPOSE_INTERVAL_S, recompose_pending
from wrale.shared.central_settings import CentralSettings

log = logging.getLogger("wrale.central.background")
# a delivery pass: its claim rounds, then the last sends' own deadlines (at most 30 s)
DELIVERY_DEADLINE_S = DeliveryLimits().pass_budget_s + 40.0
PLACEMENT_INTERVAL_S = 5.0  # pending replicas wait at most this long for a board
# retention is counted in hours and days: a pass every 10 minutes is plenty, and on SQLite
# a pass holds the single writer for a delete probe per series (3 x 17,000 at 1,000 boards)
RETENTION_INTERVAL_S = 600.0


@dataclass
class JobContext:
    """What a job may use: the database, the event bus, settings and an HTTP client."""

    db: Database
    bus: EventBus
    settings: CentralSettings
    http: httpx.AsyncClient


JobFn = Callable[[JobContext, float], Awaitable[Any]]


@dataclass(frozen=True)
class Job:
    """A background job, run every ``interval_s`` (default: the runner's); it is cancelled
    after ``deadline_s`` (default: one interval)."""

    name: str
    run: JobFn
    deadline_s: float | None = None
    interval_s: float | None = None


def holder_id() -> str:
    """Who holds a lease: host, process and a random part (two runners never share one)."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(4)}"


async def acquire_lease(db: Database, name: str, holder: str, ttl_s: float, now: float) -> bool:
    """Take or renew lease ``name`` until ``now + ttl_s``; False while someone else holds it.

    An atomic conditional UPDATE (expired, or already ours) and, when the row is absent, an
    INSERT that loses cleanly to a concurrent one: the same on SQLite and PostgreSQL.
    Both write, so on SQLite they take a writer turn (``serial_session``): a write outside
    the turns meets the channel's group commit at the file lock, whose busy handler sleeps
    up to 100 ms a try, and the two then wait on each other (seconds a commit, measured).
    """
    async with db.serial_session() as s:
        result = await s.execute(
            update(Lease)
            .where(Lease.name == name, or_(Lease.expires_at <= now, Lease.holder == holder))
            .values(holder=holder, expires_at=now + ttl_s, acquired_at=now)
        )
        if int(result.rowcount or 0) == 1:  # type: ignore[attr-defined]
            return True
        if await s.get(Lease, name) is not None:
            return False
    try:
        async with db.serial_session() as s:
            s.add(Lease(name=name, holder=holder, expires_at=now + ttl_s, acquired_at=now))
    except IntegrityError:
        return False
    return True


# ----------------------------------------------------------------------------- jobs


async def _audit_retention(ctx: JobContext, now: float) -> None:
    async with ctx.db.serial_session() as s:  # a write: a writer turn (see acquire_lease)
        gone = await audit.purge(s, ctx.settings.audit_retention_days)
    if gone:
        log.info("audit retention: removed %d entries", gone)


async def _deliver(ctx: JobContext, now: float) -> None:
    policy = EgressPolicy.from_settings(ctx.settings)
    # public_url: the dashboard's address for links in e-mail and chat messages
    public_url = getattr(ctx.settings, "public_url", None)
    counts = await deliver_pending(ctx.db, now, egress=policy, public_url=public_url)
    if any(counts.values()):
        log.info("notifications: %s", counts)


async def _place_jobs(ctx: JobContext, now: float) -> None:
    await place_all(ctx.db, now, ctx.bus)


async def _cap_racks(ctx: JobContext, now: float) -> None:
    await cap_all(ctx.db, now, ctx.bus)


async def _balance(ctx: JobContext, now: float) -> None:
    await balance_all(ctx.db, now, ctx.bus)


async def _recommend(ctx: JobContext, now: float) -> None:
    await recommend_all(ctx.db, now, ctx.bus)


async def _rollouts(ctx: JobContext, now: float) -> None:
    await advance_all(ctx.db, now, ctx.bus)


async def _maintenance_rules(ctx: JobContext, now: float) -> None:
    await evaluate_all(ctx.db, now)


async def _recompose_twins(ctx: JobContext, now: float) -> None:
    await recompose_pending(ctx.db, ctx.bus)


def _hook(module: str, name: str) -> Callable[..., Awaitable[Any]] | None:
    """``module.name`` if another part of the brain provides it yet, else None."""
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    fn = getattr(mod, name, None)
    return fn if callable(fn) else None


def default_jobs() -> list[Job]:
    """The jobs of the central server; hooks that do not exist (yet) are skipped."""
    jobs = [Job("audit.retention", _audit_retention)]
    rollup = _hook("wrale.fleet.brain.services.telemetry", "rollup")
    retention = _hook("wrale.fleet.brain.services.telemetry", "apply_retention")
    alert_cycle = _hook("wrale.fleet.brain.services.alerts", "run_alert_cycle") or _hook(
        "wrale.fleet.brain.services.alert_runner", "run_alert_cycle"
    )
    if rollup is not None:

        async def _rollup(ctx: JobContext, now: float) -> None:
            async with ctx.db.session() as s:
                await rollup(s, now)

        jobs.append(Job("telemetry.rollup", _rollup))
    else:
        log.debug("background: services.telemetry.rollup not available; skipped")
    if retention is not None:

        async def _retention(ctx: JobContext, now: float) -> None:
            async with ctx.db.serial_session() as s:
                await retention(s, ctx.settings, now)

        jobs.append(Job("telemetry.retention", _retention, interval_s=RETENTION_INTERVAL_S))
    else:
        log.debug("background: services.telemetry.apply_retention not available; skipped")
    if alert_cycle is not None:

        async def _alerts(ctx: JobContext, now: float) -> None:
            await alert_cycle(ctx.db, ctx.bus, now)

        jobs.append(Job("alerts.cycle", _alerts))
    else:
        log.debug("background: services.alerts.run_alert_cycle not available; skipped")
    jobs.append(Job("notifications.deliver", _deliver, deadline_s=DELIVERY_DEADLINE_S))
    jobs.append(Job("job_placement", _place_jobs, interval_s=PLACEMENT_INTERVAL_S))
    jobs.append(Job("rack_capping", _cap_racks, interval_s=CAPPING_INTERVAL_S))
    jobs.append(Job("thermal_balancing", _balance, interval_s=BALANCING_INTERVAL_S))
    jobs.append(Job("recommendations", _recommend, interval_s=RECOMMENDATIONS_INTERVAL_S))
    jobs.append(Job("rollouts", _rollouts, interval_s=ROLLOUTS_INTERVAL_S))
    jobs.append(Job("telemetry.partitions", partition_duty, interval_s=PARTITIONS_INTERVAL_S))
    jobs.append(Job("maintenance_rules", _maintenance_rules, interval_s=RULES_INTERVAL_S))
    jobs.append(Job("twin_recompose", _recompose_twins, interval_s=RECOMPOSE_INTERVAL_S))
    expire = _hook("wrale.fleet.brain.services.commands", "expire_due")
    if expire is not None:

        async def _expire(ctx: JobContext, now: float) -> None:
            async with ctx.db.serial_session() as s:
                await expire(s, now, ctx.bus)

        jobs.append(Job("commands.expire", _expire))
    offline = _hook("wrale.fleet.brain.channel.offline", "mark_offline")
    channel_retention = _hook("wrale.fleet.brain.channel.offline", "apply_retention")
    if offline is not None and channel_retention is not None:

        async def _offline(ctx: JobContext, now: float) -> None:
            await offline(ctx.db, ctx.bus, ctx.settings, now)

        async def _channel_retention(ctx: JobContext, now: float) -> None:
            await channel_retention(ctx.db, ctx.settings, now)

        jobs.append(Job("channel.offline", _offline))
        jobs.append(Job("channel.retention", _channel_retention))
    return jobs


DRY_RUN_INTERVAL_S = 5.0  # a queued dry-run waits at most this long for a worker
DRY_RUN_DEADLINE_S = 60.0  # to claim one; the run itself goes on in the worker's task


def dry_run_job(runner: DryRunner) -> Job:
    """The dry-run worker (``services.dry_runs``) with the digital copy the entry point
    wires (the brain never imports the simulator): one dry-run at a time per process."""
    worker = DryRunWorker(runner, holder_id())

    async def _dry_runs(ctx: JobContext, now: float) -> None:
        await worker.run_once(ctx.db, now, wait=False)  # the next pass finds it busy

    return Job("dry_runs", _dry_runs, DRY_RUN_DEADLINE_S, DRY_RUN_INTERVAL_S)


# ----------------------------------------------------------------------------- runner


@dataclass
class BackgroundRunner:
    """Runs ``jobs`` every ``interval_s``, each under its lease in its own task;
    ``run_once`` for tests."""

    db: Database
    bus: EventBus
    settings: CentralSettings
    jobs: list[Job] = field(default_factory=default_jobs)
    clock: Callable[[], float] = time.time
    holder: str = field(default_factory=holder_id)
    http: httpx.AsyncClient | None = None
    _task: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)
    _own_http: bool = field(default=False, init=False, repr=False)
    _running: dict[str, asyncio.Task[None]] = field(default_factory=dict, init=False, repr=False)
    _due: dict[str, float] = field(default_factory=dict, init=False, repr=False)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def interval_s(self) -> float:
        return self.settings.maintenance_interval_s

    def every_s(self, job: Job) -> float:
        return job.interval_s or self.interval_s

    @property
    def tick_s(self) -> float:
        """How often the loop looks for due jobs: the shortest interval."""
        return min([self.interval_s, *(self.every_s(j) for j in self.jobs)])

    def in_flight(self) -> list[str]:
        """Names of the jobs whose last run has not finished yet."""
        return [name for name, t in self._running.items() if not t.done()]

    def _context(self) -> JobContext:
        if self.http is None:
            self.http = httpx.AsyncClient(timeout=10.0, trust_env=False)
            self._own_http = True
        return JobContext(self.db, self.bus, self.settings, self.http)

    async def _run_job(self, job: Job, ctx: JobContext, at: float) -> None:
        deadline = job.deadline_s or self.every_s(job)
        try:
            async with asyncio.timeout(deadline):
                await job.run(ctx, at)
        except TimeoutError:
            log.error("background job %s overran its %g s deadline; cancelled", job.name, deadline)
        except asyncio.CancelledError:
            raise
        except Exception:  # a job's failure must never stop the runner
            log.exception("background job %s failed; retrying next interval", job.name)

    async def run_once(self, now: float | None = None, *, wait: bool = True) -> list[str]:
        """One pass: every job that is due (its interval passed since this runner last ran
        it) and whose lease this runner gets starts in its own task; returns their names. A
        job still running from an earlier pass is skipped (and its lease left to expire).
        ``wait``: return once the started jobs are done."""
        at = self.clock() if now is None else now
        ctx = self._context()
        started: list[asyncio.Task[None]] = []
        ran: list[str] = []
        for job in self.jobs:
            if at < self._due.get(job.name, -math.inf):
                continue
            previous = self._running.get(job.name)
            if previous is not None and not previous.done():
                log.warning("background job %s is still running; not started again", job.name)
                continue
            try:
                every = self.every_s(job)
                if not await acquire_lease(self.db, job.name, self.holder, every, at):
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background: lease of %s not taken", job.name)
                continue
            ran.append(job.name)
            self._due[job.name] = at + every
            task = asyncio.create_task(self._run_job(job, ctx, at), name=f"wrale-job-{job.name}")
            self._running[job.name] = task
            started.append(task)
        if wait and started:
            await asyncio.wait(started)
        return ran

    async def _loop(self) -> None:
        # each job waits one interval first: a restart does not re-run what another
        # replica just ran
        started = self.clock()
        for job in self.jobs:
            self._due.setdefault(job.name, started + self.every_s(job))
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.tick_s)
            if self._stop.is_set():
                return
            try:
                await self.run_once(wait=False)
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be away for a moment
                log.exception("background pass failed; retrying next interval")

    def start(self) -> None:
        if self._task is None:
            self._stop.clear()
            self._task = asyncio.create_task(self._loop(), name="wrale-background")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        jobs = [t for t in self._running.values() if not t.done()]
        for t in jobs:
            t.cancel()
        if jobs:
            await asyncio.gather(*jobs, return_exceptions=True)
        self._running.clear()
        if self._own_http and self.http is not None:
            await self.http.aclose()
            self.http = None
            self._own_http = False
