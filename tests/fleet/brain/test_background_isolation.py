"""No background job can hold up another: while a webhook receiver on 127.0.0.1 hangs,
offline detection and command expiry still run, the stuck job is not started again and its
lease is not renewed, and a job past its deadline is cancelled."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.fleet.brain.test_notify_delivery import (
    GUARD_S,
    HookServer,
    enqueue,
    hanging,
    tenant_with_channel,
)
from wrale.fleet.brain.background import BackgroundRunner, Job, JobContext, default_jobs
from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device, Lease
from wrale.fleet.brain.models.commands import Command
from wrale.shared.central_settings import CentralSettings

__all__ = ["hanging"]  # the fixture, used by name

T0 = 1_800_000_000.0


@pytest.fixture
def settings(tmp_path: Path) -> CentralSettings:
    return CentralSettings(
        data_dir=tmp_path,
        maintenance_interval_s=30,
        dev=True,
        webhook_allowed_hosts=["127.0.0.1"],
    )


def _signalling(job: Job, done: asyncio.Event) -> Job:
    """The real job, which also says when it has finished."""

    async def run(ctx: JobContext, now: float) -> None:
        await job.run(ctx, now)
        done.set()

    return Job(job.name, run, job.deadline_s)


async def test_a_hanging_webhook_holds_up_no_other_job(
    database: Database, settings: CentralSettings, hanging: HookServer
) -> None:
    p, channel_id = await tenant_with_channel(database, "acme", hanging.url)
    await enqueue(database, p, channel_id, T0)
    async with database.session() as s:
        device = Device(
            tenant_id=p.tenant_id, num=1, name="pi-1", status="online", last_seen_at=T0 - 600
        )
        s.add(device)
        await s.flush()
        command = Command(tenant_id=p.tenant_id, device_id=device.id, op="reboot", deadline=T0 - 1)
        s.add(command)
        await s.flush()
        device_id, command_id = device.id, command.id
    by_name = {j.name: j for j in default_jobs()}
    offline_done, expired_done = asyncio.Event(), asyncio.Event()
    jobs = [
        by_name["notifications.deliver"],
        _signalling(by_name["commands.expire"], expired_done),
        _signalling(by_name["channel.offline"], offline_done),
    ]
    r = BackgroundRunner(database, EventBus(), settings, jobs=jobs, holder="a")
    first = asyncio.create_task(r.run_once(T0))
    try:
        await asyncio.wait_for(hanging.arrived.wait(), GUARD_S)
        await asyncio.wait_for(offline_done.wait(), GUARD_S)
        await asyncio.wait_for(expired_done.wait(), GUARD_S)
        async with database.session() as s:
            assert (await s.get(Device, device_id)).status == "offline"  # type: ignore[union-attr]
            assert (await s.get(Command, command_id)).status == "expired"  # type: ignore[union-attr]
        assert r.in_flight() == ["notifications.deliver"]
        # the next pass runs the others again; the stuck job is neither restarted nor renewed
        assert await r.run_once(T0 + 30) == ["commands.expire", "channel.offline"]
        async with database.session() as s:
            lease = await s.get(Lease, "notifications.deliver")
            assert lease is not None
            assert lease.expires_at == T0 + 30
            assert (await s.get(Lease, "channel.offline")).expires_at == T0 + 60  # type: ignore[union-attr]
        assert hanging.hits == 1
    finally:
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        await r.stop()
    assert r.in_flight() == []


async def test_a_job_past_its_deadline_is_cancelled(
    database: Database, settings: CentralSettings, caplog: pytest.LogCaptureFixture
) -> None:
    cancelled = asyncio.Event()

    async def stuck(ctx: JobContext, now: float) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    r = BackgroundRunner(
        database, EventBus(), settings, jobs=[Job("stuck", stuck, deadline_s=0.2)], holder="a"
    )
    try:
        assert await asyncio.wait_for(r.run_once(T0), GUARD_S) == ["stuck"]
    finally:
        await r.stop()
    assert cancelled.is_set()
    assert "background job stuck overran its 0.2 s deadline" in caplog.text
