"""The recommendations loop and service on real databases (SQLite and PostgreSQL): a hot
rack raised with its figures, updated rather than duplicated, expired once it no longer
applies; a room on battery whose acceptance stops its low-priority jobs through the jobs
service (audited, logged); a dismissed one kept quiet unless markedly worse; a fan's wear
read from the hourly rollups at most hourly; paused sites left alone; hostile ids and
readings; the lease-guarded loop."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.fleet.brain.decisions_kit import COOL, decisions, readings
from tests.fleet.brain.jobs_kit import World, make_world
from wrale.fleet.brain.background import BackgroundRunner, default_jobs
from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import AuditEntry, Device
from wrale.fleet.brain.models.recommendations import Recommendation
from wrale.fleet.brain.models.telemetry import TelemetryRollup1h, TelemetryRollup1m
from wrale.fleet.brain.services import decision_loops
from wrale.fleet.brain.services import recommendations as recs
from wrale.fleet.brain.services.principal import ForbiddenError, Principal, Role
from wrale.fleet.brain.services.telemetry_store import metric_ids
from wrale.shared.central_settings import CentralSettings
from wrale.shared.errors import ConflictError, NotFoundError


@pytest.fixture
async def world(database: Database) -> World:
    return await make_world(database)


async def _pass(w: World, now: float) -> int:
    async with w.db.session() as s:
        return await recs.recommend_tenant(s, w.operator.tenant_id, now, w.bus)


async def _rows(w: World, state: str | None = "open") -> list[Recommendation]:
    async with w.db.session() as s:
        return await recs.list_recommendations(s, w.operator.tenant_id, state=state, limit=100)


async def _hot_rack_a(w: World, at: float, a_temp: float = 60.0) -> None:
    for name, temp in (("a1", a_temp), ("a2", a_temp + 1), ("b1", 50.0), ("b2", 51.0)):
        await readings(w, name, at, **{**COOL, "cpu_temp_c": temp}, power_w=4.0, on_battery=0.0)


async def _rollup(
    w: World, table: type, board: str, metric: str, points: list[tuple[int, float]]
) -> None:
    """Rollup rows of one metric: (bucket start, mean) each, from one reading."""
    async with w.db.session() as s:
        device = await s.get(Device, w.ids[board])
        assert device is not None
        mid = (await metric_ids(s, [metric]))[metric]
        for bucket, value in points:
            s.add(
                table(
                    device_num=device.num,
                    metric_id=mid,
                    bucket_ts=bucket,
                    min=value,
                    max=value,
                    sum=value,
                    count=1,
                    last=value,
                    last_ts=float(bucket + 30),
                )
            )


async def test_a_hot_rack_is_raised_updated_not_duplicated_and_expires(world: World) -> None:
    w, now = world, time.time()
    await _hot_rack_a(w, now - 2)
    assert await _pass(w, now) == 1
    (r,) = await _rows(w)
    assert (r.kind, r.subject, r.state, r.action) == ("rack_hot", w.ids["rack_a"], "open", None)
    assert r.title == "rack-a runs 10 °C above the room at equal load: check its airflow"
    assert r.evidence["delta_c"] == 10.0
    assert r.evidence["rack_w_per_board"] == r.evidence["room_w_per_board"] == 4.0
    (logged,) = await decisions(w, "recommendations")
    assert (logged.action, logged.subjects["rack"]) == ("recommend", w.ids["rack_a"])

    await _hot_rack_a(w, now + 58, a_temp=62.0)
    assert await _pass(w, now + 60) == 0  # the same one, updated
    (again,) = await _rows(w)
    assert (again.id, again.evidence["delta_c"], again.updated_at) == (r.id, 12.0, now + 60)

    await _hot_rack_a(w, now + 118, a_temp=51.0)  # cooled down
    await _pass(w, now + 120)
    assert (await _rows(w))[0].state == "open"  # not at once: no flapping
    await _hot_rack_a(w, now + 418, a_temp=51.0)
    await _pass(w, now + 420)
    assert await _rows(w) == []
    (gone,) = await _rows(w, "expired")
    assert (gone.id, gone.result) == (r.id, "no longer applies")


async def test_the_ten_minute_means_of_the_rollups_outweigh_the_latest_readings(
    world: World,
) -> None:
    w, now = world, time.time()
    for name in ("a1", "a2", "b1", "b2"):  # right now all alike …
        await readings(w, name, now - 2, **COOL, power_w=4.0, on_battery=0.0)
    minutes = [int(now) - 60 * k for k in range(1, 11)]
    for name, temp in (("a1", 61.0), ("a2", 62.0), ("b1", 50.0), ("b2", 51.0)):
        await _rollup(w, TelemetryRollup1m, name, "cpu_temp_c", [(m, temp) for m in minutes])
        await _rollup(w, TelemetryRollup1m, name, "power_w", [(m, 4.0) for m in minutes])
    await _rollup(w, TelemetryRollup1m, "a1", "cpu_temp_c", [(int(now) - 3600, 20.0)])  # too old
    assert await _pass(w, now) == 1  # … but rack A ran 11 °C hotter over ten minutes
    (r,) = await _rows(w)
    assert (r.kind, r.subject) == ("rack_hot", w.ids["rack_a"])
    assert (r.evidence["rack_temp_c"], r.evidence["room_temp_c"]) == (61.5, 50.5)


async def _battery_room(w: World, now: float) -> tuple[str, str]:
    low = await w.create(strategy="spread", replicas=2, priority=20, name="batch")
    high = await w.create(strategy="spread", replicas=2, priority=90, name="db")
    for name in ("a1", "a2", "b1", "b2"):
        await readings(w, name, now - 2, **COOL, power_w=4.0, on_battery=1.0, battery_pct=30.0)
        minutes = [(int(now) - 600 + 60 * k, 40.0 - k) for k in range(10)]  # -1 %/min
        await _rollup(w, TelemetryRollup1m, name, "battery_pct", minutes)
    return low, high


async def test_accepting_a_battery_recommendation_stops_its_low_priority_jobs(
    world: World,
) -> None:
    w, now = world, time.time()
    low, high = await _battery_room(w, now)
    assert await _pass(w, now) == 1
    (r,) = await _rows(w)
    assert r.kind == "battery_runtime"
    assert r.subject == w.ids["room"]
    assert "stop priority < 50 jobs?" in r.title
    assert r.action == {"kind": "stop_jobs", "job_ids": [low], "below_priority": 50}
    assert 25 <= r.evidence["runtime_min"] <= 35  # 30 % at about 1 %/min

    viewer = Principal(w.operator.tenant_id, Role.VIEWER, "user", "v" * 32, "vera")
    async with w.db.session() as s:
        with pytest.raises(ForbiddenError):
            await recs.accept(s, viewer, r.id)
    async with w.db.session() as s:
        done = await recs.accept(s, w.operator, r.id, bus=w.bus)
        assert done.state == "accepted"
    assert (await w.job(low)).stopped_at is not None
    assert (await w.job(high)).stopped_at is None
    (accepted,) = await _rows(w, "accepted")
    assert accepted.decided_by == "olga"
    assert accepted.result == f"stopped 1 job(s): {low}"
    actions = [d.action for d in await decisions(w, "recommendations")]
    assert actions == ["recommend", "accept"]
    async with w.db.session() as s:
        audited = await s.scalars(
            select(AuditEntry.action).where(AuditEntry.tenant_id == w.operator.tenant_id)
        )
        assert {"recommendation.accept", "job.stop"} <= set(audited)
    async with w.db.session() as s:
        with pytest.raises(ConflictError):
            await recs.accept(s, w.operator, r.id)
        with pytest.raises(ConflictError):
            await recs.dismiss(s, w.operator, r.id)
    # decided: not raised again at once though the room is still on battery
    assert await _pass(w, now + 60) == 0


async def test_accepting_one_without_an_action_acknowledges_it(world: World) -> None:
    w, now = world, time.time()
    await _hot_rack_a(w, now - 2)
    await _pass(w, now)
    (r,) = await _rows(w)
    async with w.db.session() as s:
        await recs.accept(s, w.operator, r.id)
    (done,) = await _rows(w, "accepted")
    assert done.result is not None
    assert done.result.startswith("acknowledged (no automatic action): check its airflow")


async def test_a_dismissed_one_stays_quiet_unless_markedly_worse(world: World) -> None:
    w, now = world, time.time()
    await _hot_rack_a(w, now - 2)  # 10 °C: score 70
    await _pass(w, now)
    (r,) = await _rows(w)
    async with w.db.session() as s:
        await recs.dismiss(s, w.operator, r.id, "known:\x00 the\nfront door is open " + "x" * 400)
    (done,) = await _rows(w, "dismissed")
    assert done.result is not None
    assert done.result.startswith("dismissed: known:  the front door is open x")
    assert len(done.result) <= 320
    assert await _pass(w, now + 60) == 0
    await _hot_rack_a(w, now + 118, a_temp=62.0)  # 12 °C: 78, not 15 more
    assert await _pass(w, now + 120) == 0
    assert await _rows(w) == []
    await _hot_rack_a(w, now + 178, a_temp=44.0)  # rack A cool; rack B 6 °C above it
    await _pass(w, now + 180)
    assert [x.subject for x in await _rows(w)] == [w.ids["rack_b"]]  # another subject
    async with w.db.session() as s:
        await recs.dismiss(s, w.operator, (await _rows(w))[0].id)
    # after the quiet day it comes back
    await _hot_rack_a(w, now + 86_400 + 58)
    assert await _pass(w, now + 86_400 + 60) == 1


async def test_fan_wear_from_the_hourly_rollups_read_at_most_hourly(world: World) -> None:
    w, now = world, time.time()
    await readings(w, "a1", now - 2, **COOL, power_w=4.0, on_battery=0.0)
    hour = int(now) // 3600 * 3600
    old = [hour - 6 * 86_400 - 3600 * k for k in range(6)]
    new = [hour - 3600 * k for k in range(1, 7)]
    await _rollup(w, TelemetryRollup1h, "a1", "fan_pct", [(h, 50.0) for h in old + new])
    await _rollup(w, TelemetryRollup1h, "a1", "fan_rpm", [(h, 3000.0) for h in old])
    await _rollup(w, TelemetryRollup1h, "a1", "fan_rpm", [(h, 2100.0) for h in new])
    await _rollup(w, TelemetryRollup1h, "b1", "fan_pct", [(h, 10.0) for h in old + new])
    await _rollup(w, TelemetryRollup1h, "b1", "fan_rpm", [(h, 900.0) for h in old + new])
    assert await _pass(w, now) == 1
    (r,) = await _rows(w)
    assert (r.kind, r.subject) == ("fan_wear", w.ids["a1"])
    assert r.title.startswith("a1: fan RPM fell 30 % at equal duty over ")
    assert (r.evidence["rpm_before"], r.evidence["rpm_now"]) == (3000, 2100)
    async with w.db.session() as s:
        state = await decision_loops.load_state(s, w.operator.tenant_id, "recommendations")
    assert state["fans_at"] == now
    # not read again within the hour, and not expired for that reason
    await _pass(w, now + 600)
    assert [x.id for x in await _rows(w)] == [r.id]


async def test_a_paused_site_is_left_alone(world: World) -> None:
    w, now = world, time.time()
    await _hot_rack_a(w, now - 2)
    await _pass(w, now)
    async with w.db.session() as s:
        await decision_loops.set_pause(s, w.operator, "recommendations", True, w.ids["site"])
    await _hot_rack_a(w, now + 598, a_temp=45.0)
    assert await _pass(w, now + 600) == 0
    assert [x.state for x in await _rows(w, None)] == ["open"]  # not expired while paused
    async with w.db.session() as s:
        await decision_loops.set_pause(s, w.operator, "recommendations", True)
    assert await _pass(w, now + 660) == 0


async def test_hostile_ids_and_readings(world: World) -> None:
    w, now = world, time.time()
    other = await make_world(w.db)
    for name in ("a1", "a2"):
        await readings(w, name, now - 2, cpu_temp_c=1e308, power_w=4.0, on_battery=0.0)
    for name in ("b1", "b2"):
        await readings(w, name, now - 2, cpu_temp_c=-1e308, power_w=4.0, on_battery=1.0)
    await readings(w, "b1", now - 2, fan_pct=float("inf"), fan_rpm=float("-inf"))
    await readings(w, "b2", now - 2, battery_pct=1e308)
    await _hot_rack_a(other, now - 2)
    await _pass(w, now)  # no error, and nothing stored that is not finite
    for r in await _rows(w):
        assert "inf" not in r.title
        assert "nan" not in r.title
        assert len(r.title) < 120
    async with w.db.session() as s:
        await recs.recommend_tenant(s, other.operator.tenant_id, now)
    theirs = await _rows(other)
    assert len(theirs) == 1
    for rec_id in (theirs[0].id, "f" * 32, "../etc", "x" * 5000, ""):
        async with w.db.session() as s:
            with pytest.raises(NotFoundError):
                await recs.accept(s, w.operator, rec_id)
            with pytest.raises(NotFoundError):
                await recs.dismiss(s, w.operator, rec_id)


async def test_the_lease_guarded_loop_raises_them(world: World) -> None:
    w, now = world, time.time()
    assert "recommendations" in {j.name for j in default_jobs()}
    assert "recommendations" in decision_loops.LOOPS
    await _hot_rack_a(w, now - 2)
    loops = [j for j in default_jobs() if j.name == "recommendations"]
    assert loops[0].interval_s == recs.RECOMMENDATIONS_INTERVAL_S
    settings = CentralSettings(data_dir=Path("/nonexistent"), dev=True)
    first = BackgroundRunner(w.db, EventBus(), settings, jobs=loops, holder="r1")
    second = BackgroundRunner(w.db, EventBus(), settings, jobs=loops, holder="r2")
    try:
        assert await first.run_once(now) == ["recommendations"]
        assert await second.run_once(now) == []  # the lease is held
    finally:
        await first.stop()
        await second.stop()
    assert [r.kind for r in await _rows(w)] == ["rack_hot"]
