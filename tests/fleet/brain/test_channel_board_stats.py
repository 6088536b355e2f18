"""The boards' backlog and the ingest lag on ``/metrics`` (``channel.board_stats``): unit
checks of the bookkeeping, and a real server fed by a device over its WebSocket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from tests.user.api.central_server import start_central
from wrale.fleet.brain.channel.board_stats import ROWS_MAX, BoardStats
from wrale.fleet.sync.protocol import Ack, Hello, Status, TelemetryBatch, Welcome, decode, encode

API = "/api/v1"
SAFETY_S = 10.0  # bound on a frame that should come at once, never a timing
AGE_S = 60.0  # a status older than this no longer counts


Figures = dict[tuple[str, tuple[tuple[str, str], ...]], float]
TELE = (("stream", "telemetry"),)


def figures(text: str) -> Figures:
    """Every sample of the exposition text, read by prometheus_client's own parser."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_depth_is_the_last_status_of_boards_with_a_session() -> None:
    stats = BoardStats()
    stats.status("d1", "s1", {"telemetry": 10, "events": 2}, {})
    stats.status("d2", "s2", {"telemetry": 30}, {})
    stats.status("d1", "s1", {"telemetry": 4}, {})  # the newest replaces the last one
    got = figures("\n".join(stats.prometheus(AGE_S)) + "\n")
    assert got[("wrale_board_outbox_rows", (("stream", "telemetry"),))] == 34
    assert got[("wrale_board_outbox_rows_max", (("stream", "telemetry"),))] == 30
    assert got[("wrale_board_outbox_rows", (("stream", "events"),))] == 0
    stats.forget("d2", "an-older-session")  # a replaced session does not remove the new one
    stats.forget("d1", "s1")
    got = figures("\n".join(stats.prometheus(AGE_S)) + "\n")
    assert got[("wrale_board_outbox_rows", (("stream", "telemetry"),))] == 30


def test_a_board_silent_past_the_age_limit_is_no_longer_counted() -> None:
    """An MQTT board that goes silent ends no session on this replica: its last status
    stops counting once older than the limit (the offline limit, on /metrics)."""
    now = [1000.0]
    stats = BoardStats(clock=lambda: now[0])
    stats.status("d1", "s1", {"telemetry": 10}, {})
    now[0] += 30
    stats.status("d2", "s2", {"telemetry": 5}, {})
    now[0] += 40  # d1's status is 70 s old, d2's 40 s
    got = figures("\n".join(stats.prometheus(AGE_S)) + "\n")
    assert got[("wrale_board_outbox_rows", TELE)] == 5
    assert set(stats.outbox) == {"d2"}


def test_drops_count_what_grew_since_the_first_status_heard() -> None:
    stats = BoardStats()
    stats.status("d1", "s1", {}, {"telemetry": 100})  # baseline: drops from before
    stats.status("d1", "s1", {}, {"telemetry": 130, "events": 1})  # events: new baseline
    stats.forget("d1", "s1")
    stats.status("d1", "s2", {}, {"telemetry": 150, "events": 3})  # back after an outage
    stats.status("d1", "s2", {}, {"telemetry": 0})  # a board's store started over: no minus
    assert stats.dropped_total == {"telemetry": 50, "events": 2}


def test_a_hostile_status_makes_no_labels_and_no_negative_rows() -> None:
    stats = BoardStats()
    stats.status("d1", "s1", {"x" * 200: 5, "telemetry": -3, "events": True}, {"evil": 9})
    stats.status("d2", "s2", {"telemetry": 10**15}, {})
    text = "\n".join(stats.prometheus(AGE_S))
    assert "x" * 200 not in text
    assert "evil" not in text
    got = figures(text + "\n")
    assert got[("wrale_board_outbox_rows", (("stream", "telemetry"),))] == ROWS_MAX
    assert got[("wrale_board_outbox_rows", (("stream", "events"),))] == 0


def test_lag_histogram_is_cumulative() -> None:
    stats = BoardStats()
    for s in (0.5, 10.0, 7200.0, -3.0):  # a board clock ahead of ours counts as no lag
        stats.lag(s)
    got = figures("\n".join(stats.prometheus(AGE_S)) + "\n")
    assert got[("wrale_telemetry_ingest_lag_seconds_bucket", (("le", "1.0"),))] == 2
    assert got[("wrale_telemetry_ingest_lag_seconds_bucket", (("le", "15.0"),))] == 3
    assert got[("wrale_telemetry_ingest_lag_seconds_bucket", (("le", "+Inf"),))] == 4
    assert got[("wrale_telemetry_ingest_lag_seconds_count", ())] == 4


def test_a_real_server_reports_what_its_boards_said(tmp_path: Path) -> None:
    server = start_central(tmp_path, migrate=False)
    try:
        admin = {"Authorization": f"Bearer {server.login()}"}
        r = httpx.post(
            f"{server.url}{API}/enroll/bulk",
            headers=admin,
            json={"devices": [{"name": "backlog-1"}]},
            timeout=10,
        )
        assert r.status_code == 201, r.text
        item = r.json()["items"][0]
        url = server.url.replace("http://", "ws://") + f"{API}/edge/ws"

        def scrape() -> Figures:
            return figures(httpx.get(f"{server.url}/metrics", timeout=10).text)

        during = asyncio.run(_board(url, item["device_id"], item["device_secret"], scrape))
        deadline = time.monotonic() + SAFETY_S  # the session's end is recorded after the close
        after = scrape()
        while after[("wrale_board_outbox_rows", TELE)] and time.monotonic() < deadline:
            time.sleep(0.05)
            after = scrape()
    finally:
        server.stop()
    assert during[("wrale_board_outbox_rows", TELE)] == 42
    assert during[("wrale_board_dropped_rows_total", TELE)] == 7  # 12 - the baseline 5
    # the batch's newest point was 120 s old: counted in the 300 s bucket, not the 60 s one
    assert during[("wrale_telemetry_ingest_lag_seconds_bucket", (("le", "60.0"),))] == 0
    assert during[("wrale_telemetry_ingest_lag_seconds_bucket", (("le", "300.0"),))] == 1
    assert after[("wrale_board_outbox_rows", TELE)] == 0  # its session ended
    assert after[("wrale_board_dropped_rows_total", TELE)] == 7


async def _board(url: str, dev: str, secret: str, scrape: Callable[[], Figures]) -> Figures:
    headers = {"X-Wrale-Device": dev, "Authorization": f"Bearer {secret}"}
    async with connect(url, additional_headers=headers) as ws:

        async def until_ack() -> None:
            while not isinstance(decode(await asyncio.wait_for(ws.recv(), SAFETY_S)), Ack):
                pass

        await ws.send(encode(Hello(device_id=dev, agent_version="0.4.0")))
        assert isinstance(decode(await asyncio.wait_for(ws.recv(), SAFETY_S)), Welcome)
        now = time.time()
        await ws.send(encode(Status(ts=now, outbox={"telemetry": 50}, dropped={"telemetry": 5})))
        await ws.send(encode(Status(ts=now, outbox={"telemetry": 42}, dropped={"telemetry": 12})))
        points = [("cpu_temp_c", now - 180, 45.0), ("cpu_temp_c", now - 120, 46.0)]
        await ws.send(encode(TelemetryBatch(seq=1, prev=0, points=points)))
        await until_ack()  # frames are handled in order: the statuses are in as well
        return await asyncio.to_thread(scrape)
