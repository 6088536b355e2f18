"""Two `wrale central` replicas on one fresh PostgreSQL behind the real HAProxy, with the
shipped config (packaging/haproxy/wrale-central.cfg, its ports substituted).

WebSocket boards (`wrale sim`) connect through the balancer; one replica is killed with
SIGKILL mid-ingest; every board reconnects through the balancer to the survivor within its
backoff, every point arrives exactly once, and the dashboard's live stream, opened through
the balancer on the survivor, shows events raised through either replica (the killed one's
before the kill travel by PostgreSQL NOTIFY).
"""

from __future__ import annotations

import secrets
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.user.fleet_procs import (
    ADMIN_PASSWORD,
    Central,
    Proc,
    agent_stores,
    assert_exactly_once,
    board_device_id,
    central_books,
    clean_env,
    read_book,
    wait_for,
)
from tests.user.lb_procs import (
    HAPROXY,
    SHIPPED,
    LiveStream,
    PgCentral,
    SseStream,
    fresh_database,
    haproxy,
    render,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

BOARDS = 4
AGENT_ENV = {
    "WRALE_EDGE_REPORT_INTERVAL_S": "1",
    "WRALE_EDGE_HEARTBEAT_S": "2",
    "WRALE_EDGE_ACK_TIMEOUT_S": "5",
    "WRALE_EDGE_BACKOFF_BASE_S": "0.2",
    "WRALE_EDGE_BACKOFF_CAP_S": "2",
    "WRALE_EDGE_HANDSHAKE_TIMEOUT_S": "5",
}


def test_the_shipped_config_is_valid() -> None:
    checked = subprocess.run(
        [HAPROXY, "-c", "-f", str(SHIPPED)], capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rendered = render(SHIPPED.read_text(), 9000, [9001, 9002, 9003])
    assert rendered.count("\n    server central") == 3
    assert "bind 127.0.0.1:9000" in rendered


# ----------------------------------------------------------------------------- the test


def set_profile(base_url: str, headers: dict[str, str], device_id: str, profile: str) -> int:
    """Change the board's desired fan profile through ``base_url``; its new version."""
    url = f"{base_url}/api/v1/devices/{device_id}/twin"
    version = httpx.get(url, headers=headers, timeout=10).json()["desired"]["version"]
    r = httpx.patch(
        url,
        headers=headers,
        timeout=10,
        json={"version": version, "desired": {"thermal": {"profile": profile}}},
    )
    assert r.status_code == 200, r.text
    return int(version) + 1


def open_sessions(central: PgCentral) -> dict[str, tuple[str, float]]:
    """device_id → (replica holding its open WebSocket session, opened at)."""
    rows = central.query(
        "SELECT device_id, replica, opened_at FROM device_sessions WHERE closed_at IS NULL"
    )
    return {str(d): (str(r), float(t)) for d, r, t in rows}


def pid_of(replica: str) -> int:
    return int(replica.split(":")[-2])  # holder id: host:pid:random


def test_a_replica_killed_behind_haproxy_loses_no_board_data_and_no_live_event(
    tmp_path: Path,
) -> None:
    started = time.monotonic()

    def phase(what: str) -> None:
        print(f"{time.monotonic() - started:6.1f} s  {what}")

    with fresh_database() as url:
        env = {"WRALE_DATABASE_URL": url}
        a = PgCentral(tmp_path / "a" / "central", dict(env))
        b = PgCentral(tmp_path / "b" / "central", dict(env))
        # together on a fresh database: the migrations and the first organisation and
        # admin take turns under advisory locks (neither replica fails)
        with ThreadPoolExecutor(2) as starting:
            list(starting.map(lambda c: c.start(), (a, b)))
        phase("two replicas healthy on a fresh database")
        sim: Proc | None = None
        stream: LiveStream | None = None
        try:
            with haproxy(tmp_path, [a.port, b.port]) as lb:
                front = PgCentral(a.data_dir, dict(env), port=int(lb.rsplit(":", 1)[1]))
                front.report_every_second()
                state = tmp_path / "sim"
                sim = Proc(
                    [
                        *("sim", "--devices", str(BOARDS), "--central", lb),
                        *("--enrollment-token", front.token(), "--state-dir", str(state)),
                        *("--name-prefix", f"ha-{secrets.token_hex(3)}", "--log-level", "INFO"),
                    ],
                    clean_env(**AGENT_ENV),
                    tmp_path / "sim.log",
                )
                sim.start()
                phase("replicas and HAProxy up; boards starting")
                ids = wait_for("boards enrolled", lambda: enrolled(state), 60)
                wait_for("boards reporting", lambda: stored_after(a, dict.fromkeys(ids, 2)), 60)
                phase("boards reporting")
                by_pid = {a.p.proc.pid: a, b.p.proc.pid: b}  # type: ignore[union-attr]
                holders = open_sessions(a)
                print("boards per replica:", {d: pid_of(r) for d, (r, _) in holders.items()})

                # the dashboard's stream through the balancer; the other replica will die
                headers = front.headers()
                stream = LiveStream(lb, headers["Authorization"].split()[1], ["twin.desired"])
                survivor = a if stream.replica == "central1" else b
                victim = b if survivor is a else a
                on_victim = [d for d, (r, _) in holders.items() if by_pid[pid_of(r)] is victim]
                assert on_victim, f"no board on the replica to kill: {holders}"

                # raised through the victim (crosses by NOTIFY), then through the survivor
                v = set_profile(victim.url, headers, ids[0], "cool")
                stream.expect("twin.desired", device_id=ids[0], version=v)
                v = set_profile(survivor.url, headers, ids[1], "cool")
                stream.expect("twin.desired", device_id=ids[1], version=v)

                # mid-ingest, the victim dies
                floor = {d: s for d, (s, _, _) in central_books(a).items()}
                killed_at = time.time()  # before: a board may be back within milliseconds
                victim.p.kill9()  # type: ignore[union-attr]
                phase("killed one replica")
                survivor_pid = survivor.p.proc.pid  # type: ignore[union-attr]

                def moved() -> dict[str, float]:
                    now = open_sessions(survivor)
                    back = {
                        d: now[d][1] - killed_at
                        for d in on_victim
                        if d in now and pid_of(now[d][0]) == survivor_pid and now[d][1] > killed_at
                    }
                    return back if len(back) == len(on_victim) else {}

                reconnect_s = wait_for("boards reconnected to the survivor", moved, 30)
                print(f"reconnect after the kill (s, per board): {reconnect_s}")
                assert max(reconnect_s.values()) < 10, reconnect_s
                wait_for("every board reporting again", lambda: stored_after(survivor, floor), 30)

                # raised through the balancer (the survivor) after the kill; the browser's
                # SSE stream, opened through the balancer now, shows it too (not buffered)
                login = httpx.post(
                    f"{lb}/api/v1/auth/login",
                    json={"username": "admin", "password": ADMIN_PASSWORD},
                    timeout=10,
                )
                sse = SseStream(lb, login.json())
                assert sse.replica == stream.replica, "the balancer sent the SSE to the dead one"
                v = set_profile(lb, headers, ids[2], "quiet")
                stream.expect("twin.desired", device_id=ids[2], version=v)
                sse.expect("twin.desired", device_id=ids[2], version=v)
                sse.close()
                phase("live events after the kill seen")

                wait_for("outboxes drained", lambda: drained(state), 30)
                sim.stop()
                checked = assert_exactly_once(survivor, state)
                assert checked >= BOARDS * 5
                print(f"{checked} points exactly once; wall {time.monotonic() - started:.1f} s")
        finally:
            if stream is not None:
                stream.close()
            if sim is not None:
                sim.stop()
            for c in (a, b):
                if c.p is not None:
                    c.p.stop()


def enrolled(state: Path) -> list[str]:
    ids = [board_device_id(b) for b in agent_stores(state)]
    return [i for i in ids if i] if len(ids) == BOARDS and all(ids) else []


def stored_after(central: Central, floor: dict[str, int]) -> bool:
    books = central_books(central)
    return len(floor) == BOARDS and all(d in books and books[d][0] > s for d, s in floor.items())


def drained(state: Path) -> bool:
    books = [read_book(b) for b in agent_stores(state)]
    return len(books) == BOARDS and all(b.last_seq - b.acked <= 3 for b in books)
