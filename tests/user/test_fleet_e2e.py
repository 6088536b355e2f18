"""The fleet end to end with real processes: `wrale central` + `wrale sim` (and `wrale device
run`), over the WebSocket and over MQTT through the real Mosquitto.

Faults are real: the central server is killed with SIGKILL mid-ingest and restarted, the
network between boards and server is cut for ``WRALE_E2E_CUT_S`` seconds (default 120) by a
proxy that drops connections, and the simulator's process is killed mid-send. After each,
every telemetry point an agent made is stored exactly once (``assert_exactly_once``).
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import httpx
import pytest

from tests.user.fleet_procs import (
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
from tests.user.metald_proc import free_port
from tests.user.tcp_proxy import CuttableProxy

pytestmark = pytest.mark.slow

CUT_S = float(os.environ.get("WRALE_E2E_CUT_S", "120"))
BOARDS = 3
MQTT_PORT = 1883

AGENT_ENV = {
    "WRALE_EDGE_REPORT_INTERVAL_S": "1",
    "WRALE_EDGE_HEARTBEAT_S": "2",
    "WRALE_EDGE_ACK_TIMEOUT_S": "5",
    "WRALE_EDGE_BACKOFF_BASE_S": "0.2",
    "WRALE_EDGE_BACKOFF_CAP_S": "2",
    "WRALE_EDGE_HANDSHAKE_TIMEOUT_S": "5",
}


def mqtt_available() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", MQTT_PORT), timeout=1):
            return True
    except OSError:
        return False


def need_mqtt() -> None:
    if mqtt_available():
        return
    if os.environ.get("CI"):
        pytest.fail("Mosquitto is not running on 127.0.0.1:1883 (CI must start it)")
    pytest.skip("Mosquitto not running on 127.0.0.1:1883; start it: mosquitto -d")


def stored_after(central: Central, floor: dict[str, int]) -> bool:
    """Every board stored more batches than ``floor`` says it had."""
    books = central_books(central)
    return len(floor) == BOARDS and all(books[d][0] > s for d, s in floor.items())


def marks(central: Central) -> dict[str, int]:
    return {d: b[0] for d, b in central_books(central).items()}


def drained(state_dir: Path) -> bool:
    """Each agent has had everything it made up to a moment ago acknowledged."""
    books = [read_book(b) for b in agent_stores(state_dir)]
    return len(books) == BOARDS and all(b.last_seq - b.acked <= 3 for b in books)


def enrolled_ids(state: Path) -> list[str]:
    """Every board's device id once all BOARDS are enrolled, else an empty list."""
    ids = [board_device_id(b) for b in agent_stores(state)]
    return [i for i in ids if i] if len(ids) == BOARDS and all(ids) else []


@pytest.mark.parametrize("transport", ["ws", pytest.param("mqtt", marks=pytest.mark.mqtt)])
def test_no_loss_no_duplicates_across_crashes_and_a_network_cut(
    tmp_path: Path, transport: str
) -> None:
    if transport == "mqtt":
        need_mqtt()
    extra = {"WRALE_MQTT_URL": f"mqtt://127.0.0.1:{MQTT_PORT}"} if transport == "mqtt" else {}
    central = Central(tmp_path / "central", extra)
    central.start()
    central.report_every_second()
    state = tmp_path / "sim"
    # boards reach the server (or the broker) only through a proxy the test can cut
    proxy = CuttableProxy(central.port if transport == "ws" else MQTT_PORT).start()
    http_proxy = CuttableProxy(central.port).start()
    args = [
        "sim",
        "--devices",
        str(BOARDS),
        "--central",
        f"http://127.0.0.1:{http_proxy.port if transport == 'mqtt' else proxy.port}",
        "--enrollment-token",
        central.token(),
        "--state-dir",
        str(state),
        "--name-prefix",
        f"e2e-{transport}-{secrets.token_hex(3)}",
        "--log-level",
        "INFO",
    ]
    if transport == "mqtt":
        args += ["--mqtt-url", f"mqtt://127.0.0.1:{proxy.port}"]
    sim = Proc(args, clean_env(**AGENT_ENV), tmp_path / "sim.log")
    sim.start()
    try:
        wait_for(
            "boards enrolled and reporting",
            lambda: stored_after(
                central,
                dict.fromkeys(enrolled_ids(state), 2),
            ),
        )

        # 1. the central server dies mid-ingest and comes back
        central.p.kill9()  # type: ignore[union-attr]
        time.sleep(3)  # boards keep sampling into their outboxes
        central.start()
        before = marks(central)
        wait_for("reporting after the central restart", lambda: stored_after(central, before))
        wait_for("backlog after the restart drained", lambda: drained(state))
        assert_exactly_once(central, state)

        # 2. the network is cut, then restored: the backlog arrives, in order
        proxy.cut()
        http_proxy.cut()
        cut_at = time.time()
        time.sleep(CUT_S)
        backlog = {
            read_book(b).device_id: read_book(b).last_seq - read_book(b).acked
            for b in agent_stores(state)
        }
        assert all(n >= CUT_S * 0.5 for n in backlog.values()), backlog  # ~1 row per second
        proxy.restore()
        http_proxy.restore()
        wait_for("backlog after the cut drained", lambda: drained(state), 60 + CUT_S)
        assert_exactly_once(central, state)
        # in order and without holes: points cover the cut at the report interval
        for device_id, gaps in max_gaps(central, cut_at - 5, cut_at + CUT_S + 5).items():
            assert gaps <= 3.5, f"{device_id}: a hole of {gaps} s in cpu_temp_c across the cut"

        # 3. the simulator (every agent) is killed mid-send and restarted
        sim.kill9()
        sim.start()
        before = marks(central)
        wait_for("reporting after the agents' restart", lambda: stored_after(central, before))
        wait_for("drained after the agents' restart", lambda: drained(state))
        sim.stop()
        checked = assert_exactly_once(central, state)
        assert checked > BOARDS * (CUT_S + 10)
    finally:
        sim.stop()
        proxy.stop()
        http_proxy.stop()
        if central.p is not None:
            central.p.stop()
        print(sim.output()[-3000:])


def max_gaps(central: Central, start: float, end: float) -> dict[str, float]:
    """device_id → widest gap between consecutive cpu_temp_c points within [start, end]."""
    rows = central.query(
        """
        SELECT d.id, r.ts FROM telemetry_raw r
        JOIN devices d ON d.num = r.device_num
        JOIN telemetry_metrics m ON m.id = r.metric_id
        WHERE m.name = 'cpu_temp_c' AND r.ts BETWEEN ? AND ?
        ORDER BY d.id, r.ts
        """,
        start,
        end,
    )
    out: dict[str, float] = {}
    prev: dict[str, float] = {}
    for device_id, ts in rows:
        if device_id in prev:
            out[device_id] = max(out.get(device_id, 0.0), ts - prev[device_id])
        prev[device_id] = ts
    return out


def test_board_rebooted_offline_keeps_its_last_desired_fan_profile(tmp_path: Path) -> None:
    central = Central(tmp_path / "central")
    central.start()
    proxy = CuttableProxy(central.port).start()
    state = tmp_path / "device"
    api_port = free_port()
    env = clean_env(**AGENT_ENV)
    device = Proc(
        [
            "device",
            "run",
            "--backend",
            "sim",
            "--state-dir",
            str(state),
            "--listen",
            f"127.0.0.1:{api_port}",
            "--dev",
        ],
        env,
        tmp_path / "device.log",
    )
    try:
        enroll = Proc(
            [
                "enroll",
                "--central",
                f"http://127.0.0.1:{proxy.port}",
                "--token",
                central.token(),
                "--state-dir",
                str(state),
                "--name",
                "kiosk-7",
            ],
            env,
            tmp_path / "enroll.log",
        )
        enroll.start()
        assert enroll.proc is not None
        assert enroll.proc.wait(60) == 0, enroll.output()
        device.start()
        headers = central.headers()
        device_id = wait_for(
            "the device's store",
            lambda: board_device_id(state),
        )
        twin_url = f"{central.url}/api/v1/devices/{device_id}/twin"

        def twin() -> dict:
            return httpx.get(twin_url, headers=headers, timeout=10).json()

        wait_for("first report", lambda: twin()["reported"]["version"] > 0)
        t = twin()
        r = httpx.patch(
            twin_url,
            headers=headers,
            timeout=10,
            json={"version": t["desired"]["version"], "desired": {"thermal": {"profile": "cool"}}},
        )
        assert r.status_code == 200, r.text
        stale = httpx.patch(
            twin_url,
            headers=headers,
            timeout=10,
            json={"version": t["desired"]["version"], "desired": {"thermal": {"profile": "quiet"}}},
        )
        assert stale.status_code == 409, stale.text
        wait_for(
            "the device runs the cool profile",
            lambda: twin()["reported"]["doc"].get("thermal", {}).get("profile") == "cool",
        )

        # reboot without network: the board comes up on its stored desired state
        device.kill9()
        proxy.cut()
        device.start()
        metald = f"http://127.0.0.1:{api_port}"

        def profile() -> str | None:
            try:
                r = httpx.get(
                    f"{metald}/v1/thermal",
                    timeout=2,
                    headers={"Authorization": "Bearer wrale-dev-key"},
                )
            except httpx.TransportError:
                return None
            return r.json().get("profile") if r.status_code == 200 else None

        assert wait_for("metald up after the reboot", profile, 60) == "cool"
    finally:
        device.stop()
        proxy.stop()
        if central.p is not None:
            central.p.stop()
