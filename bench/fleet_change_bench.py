"""A fleet-wide policy change at 5,000 boards: the time of the request, of the background
recomposition of every twin, and the queries per board (``BENCH_CHANGE_DEVICES``, default
5000; a paper fleet on SQLite in a temporary directory, a real app through ``create_app``
and httpx's ASGI transport, signed in through ``/api/v1/auth/login``).

* ``central.policy_change_request_ms``: median of 5 ``PUT /api/v1/policies/{id}`` on the
  fleet's sampling policy (each a new document), target < 200 at 5,000 boards. The
  request queues the recompose; the per-board work is the background duty's.
* ``central.policy_change_inline_ms``: what the request did before (``twin.refresh`` of
  every board in the request: five queries per board), measured once for comparison.
* ``central.policy_recompose_boards_s``: boards per second of the background duty
  (``twin_recompose.recompose_pending``, 200 boards per transaction) for one change, with
  ``central.policy_recompose_total_s`` and ``central.policy_recompose_queries_per_board``.
* ``central.bulk_tag_request_ms``: median of 5 ``POST /api/v1/devices/tags`` adding a tag
  to every board and taking it off again (set statements; none board by board).

The same again on PostgreSQL (``WRALE_BENCH_PG``, a scratch database made and dropped;
figures ``…_pg``, skipped when it is unreachable). The app's own background runner is
stopped so the measured duty runs alone. Run alone: ``python bench/fleet_change_bench.py``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event

from common import Figure, scratch_pg, write_results
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Base
from wrale.fleet.brain.services import twin, twin_recompose
from wrale.shared.central_settings import CentralSettings
from wrale.user.api.app import create_app
from wrale.user.simfleet import paper

DEVICES = int(os.environ.get("BENCH_CHANGE_DEVICES", "5000"))
REQUESTS = 5
ADMIN_PASSWORD = "bench-admin-password-1"
REQUEST_TARGET = "< 200"


@contextmanager
def counting(db: Database) -> Iterator[list[int]]:
    """Statements sent to the database while inside (``before_cursor_execute``)."""
    seen = [0]

    def count(*_a: Any) -> None:
        seen[0] += 1

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)


async def _recompose_all(db: Database, bus: Any) -> tuple[float, int, int]:
    """Run the duty to the end: (seconds, boards, statements)."""
    with counting(db) as n:
        t = time.perf_counter()
        boards = await twin_recompose.recompose_pending(db, bus, budget_s=None)
        took = time.perf_counter() - t
    return took, boards, n[0]


async def _measure(devices: int, url: str | None, suffix: str = "") -> list[Figure]:
    """The figures on the database at ``url`` (None: SQLite in the temporary directory)."""
    with tempfile.TemporaryDirectory(prefix="wrale-change-bench-") as tmp:
        db = Database(url or f"sqlite+aiosqlite:///{Path(tmp) / 'central.db'}")
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        settings = CentralSettings(
            data_dir=Path(tmp),
            secret_key="bench-secret-key-0123456789abcdef",
            admin_password=ADMIN_PASSWORD,
            maintenance_interval_s=3600,
            log_level="WARNING",
        )
        app = create_app(settings, database=db, migrate=False)
        async with app.router.lifespan_context(app):
            await app.state.background.stop()  # the duty is run (and timed) here
            bus = app.state.wrale.bus
            fleet = await paper.seed(db, devices=devices)
            print(f"  paper fleet of {devices:,} boards", flush=True)
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
                r = await http.post(
                    "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
                )
                r.raise_for_status()
                auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
                r = await http.post(
                    "/api/v1/policies",
                    headers=auth,
                    json={"scope_type": "fleet", "kind": "sampling", "document": {}},
                )
                r.raise_for_status()
                policy_id = r.json()["id"]
                first, boards, _ = await _recompose_all(db, bus)  # every twin made
                print(f"  first composition of {boards:,} twins: {first:.1f} s", flush=True)

                times = []
                for i in range(REQUESTS):
                    doc = {"interval_s": 1.0 + (i + 1) / 10}
                    t = time.perf_counter()
                    r = await http.put(
                        f"/api/v1/policies/{policy_id}", headers=auth, json={"document": doc}
                    )
                    times.append((time.perf_counter() - t) * 1000)
                    r.raise_for_status()
                    assert r.json()["recompose"]["total"] == devices, r.text
                request_ms = statistics.median(times)
                took, boards, statements = await _recompose_all(db, bus)
                print(
                    f"  PUT fleet policy: {request_ms:.0f} ms (median of {REQUESTS}); "
                    f"recompose {boards:,} boards: {took:.1f} s, {statements:,} statements",
                    flush=True,
                )

                with counting(db) as inline_n:  # what the request did before: board by board
                    t = time.perf_counter()
                    async with db.session() as s:
                        await twin.refresh(s, fleet.tenant_id, None, bus)
                    inline_ms = (time.perf_counter() - t) * 1000
                print(
                    f"  before (twin.refresh in the request): {inline_ms:.0f} ms, "
                    f"{inline_n[0]:,} statements",
                    flush=True,
                )

                bulk = []
                for i in range(REQUESTS):  # add, remove, add…: each changes every board
                    body = {"device_ids": fleet.device_ids, "tag": "bench", "remove": i % 2 == 1}
                    t = time.perf_counter()
                    r = await http.post("/api/v1/devices/tags", headers=auth, json=body)
                    bulk.append((time.perf_counter() - t) * 1000)
                    r.raise_for_status()
                    assert r.json()["changed"] == devices, r.text
                bulk_ms = statistics.median(bulk)
                print(f"  bulk tag on {devices:,} boards: {bulk_ms:.0f} ms (median)", flush=True)
        await db.dispose()
    label = f"{devices:,} boards, {'PostgreSQL' if url else 'SQLite'}"
    target = REQUEST_TARGET if devices >= 5000 else ""
    return [
        Figure(
            f"central.policy_change_request_ms{suffix}",
            request_ms,
            f"ms (median of {REQUESTS} PUTs, fleet scope, {label})",
            target,
        ),
        Figure(
            f"central.policy_change_inline_ms{suffix}",
            inline_ms,
            f"ms (the old in-request recompose, twin.refresh, {label})",
        ),
        Figure(
            f"central.policy_recompose_boards_s{suffix}",
            boards / took if took else 0.0,
            f"boards/s (background duty, {twin_recompose.BATCH} per transaction)",
        ),
        Figure(f"central.policy_recompose_total_s{suffix}", took, f"s (whole recompose, {label})"),
        Figure(
            f"central.policy_recompose_queries_per_board{suffix}",
            statements / max(boards, 1),
            f"statements/board (the old path: {inline_n[0] / devices:.1f})",
        ),
        Figure(
            f"central.bulk_tag_request_ms{suffix}",
            bulk_ms,
            f"ms (median of {REQUESTS} POST /devices/tags, {label})",
        ),
    ]


def run() -> list[Figure]:
    print("  SQLite:", flush=True)
    figures = asyncio.run(_measure(DEVICES, None))
    name = f"wrale_change_bench_{os.getpid()}"
    with scratch_pg(name) as url:
        if url is not None:
            print("  PostgreSQL:", flush=True)
            figures += asyncio.run(_measure(DEVICES, url, "_pg"))
    return figures


if __name__ == "__main__":  # alone: print the figures and merge them into the results
    figures = run()
    for figure in figures:
        print(figure.line())
    write_results(figures)
