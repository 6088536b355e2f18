"""The edge agent end to end over the in-memory transport, on a simulated board with its
real metal core: store-and-forward without loss or duplicates, the bounded outbox, the
twin (stored before acting, re-applied offline, unsafe values rejected), commands and modes.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fleet.edge.kit import DEVICE, Device, FakeCentral, eventually
from wrale.fleet.edge.agent import Mode
from wrale.fleet.edge.store import EdgeStore
from wrale.fleet.sync.protocol import Command, Desired, Goodbye
from wrale.metal.core.client import HttpMetalClient
from wrale.metal.core.engine import MetalCore
from wrale.metal.core.server import MetaldServer
from wrale.metal.core.store import DeviceStore
from wrale.metal.hw.sim import SimBoard
from wrale.shared.clock import SystemClock
from wrale.shared.config import SimSettings

KEY = "edge-test-key-0123456789"
INLINE = pytest.mark.parametrize("device", [False, True], ids=["thread", "inline"], indirect=True)


@pytest.fixture
async def central() -> FakeCentral:
    return FakeCentral()


@pytest.fixture
async def device(
    request: pytest.FixtureRequest, tmp_path: Path, central: FakeCentral
) -> AsyncIterator[Device]:
    """A device whose agent calls its store in a thread, or (param ``True``) on the loop
    (``store_inline``, as the simulated fleet does)."""
    d = Device(tmp_path, central, store_inline=getattr(request, "param", False))
    await d.start_metal()
    yield d
    await d.aclose()


def assert_exactly_once(central: FakeCentral, device: Device) -> None:
    """Every point and event the agents stored arrived once, in order."""
    keys = [(m, ts) for m, ts, _ in central.points]
    assert len(keys) == len(set(keys)), "a point was stored twice"
    assert len(central.points) == device.appended_points(), "points were lost"
    cpu = [ts for m, ts, _ in central.points if m == "cpu_temp_c"]
    assert cpu == sorted(cpu), "telemetry arrived out of order"
    events = [(e["ts"], e["type"], e["message"]) for e in central.events]
    assert len(events) == len(set(events)), "an event was stored twice"
    assert len(central.events) == device.appended_events(), "events were lost"


def drained(device: Device) -> bool:
    """Metal has stopped, the agent took its last reading, and everything is acknowledged."""
    assert device.agent is not None
    stats = device.agent.stats()
    last = device.core.snapshot
    return bool(
        last is not None
        and stats["sampled_at"] == last.at
        and stats["pending_points"] == 0
        and stats["outbox"] == {"telemetry": 0, "events": 0}
    )


@INLINE
async def test_no_loss_no_duplicates_across_a_cut_link_and_a_restart(
    device: Device, central: FakeCentral
) -> None:
    agent = await device.start_agent()
    await eventually(lambda: central.batches["telemetry"] >= 3, "first batches stored")
    assert central.hellos[0].device_id == DEVICE

    # The link breaks (frames in flight are lost) and stays down for a while.
    device.net.down()
    await eventually(lambda: not agent.connected, "the agent notices")
    assert device.store is not None
    store = device.store
    await eventually(lambda: store.depth("telemetry") >= 5, "a backlog builds offline")
    backlog_to = store.last_seq("telemetry")
    device.net.up()
    await eventually(lambda: central.last["telemetry"] >= backlog_to, "the backlog drains")
    assert agent.stats()["sessions"] >= 2

    # Cut again in the middle of the traffic, then restart the agent on the same files.
    device.net.cut()
    await device.stop_agent()
    agent = await device.start_agent()
    await eventually(lambda: agent.stats()["sessions"] >= 1, "the new agent connects")
    # it remembers its acks (the last ones may have been lost with the link)
    assert 0 < central.hellos[-1].acked["telemetry"] <= central.last["telemetry"]

    # Quiesce: metal stops sampling, the agent drains everything, then the books balance.
    await device.stop_metal()
    await device.stop_agent()
    agent = await device.start_agent()
    assert device.store is not None
    last = device.store.last_seq("telemetry")
    await eventually(
        lambda: central.last["telemetry"] >= last and drained(device), "everything acknowledged"
    )
    await device.stop_agent()
    assert_exactly_once(central, device)
    assert len(central.points) > 100
    assert {e["type"] for e in central.events} >= {"METALD_STARTED"}
    status = central.statuses[-1]
    assert {"cpu_temp_c", "fan_pct", "power_w", "battery_pct"} <= set(status.live)
    assert status.dropped == {"telemetry": 0, "events": 0}


@INLINE
async def test_a_lost_batch_is_resent_after_the_servers_gap_ack(
    device: Device, central: FakeCentral
) -> None:
    agent = await device.start_agent()
    await eventually(lambda: central.batches["telemetry"] >= 2, "traffic flows")
    central.drop_batches = 1  # one batch vanishes on the way (a lossy MQTT path, say)
    before = agent.stats()["resends"]
    await eventually(lambda: agent.stats()["resends"] > before, "the agent goes back")
    await device.stop_metal()
    await eventually(lambda: drained(device), "all acknowledged")
    await device.stop_agent()
    assert_exactly_once(central, device)


async def test_a_full_outbox_drops_the_oldest_and_reports_it(
    device: Device, central: FakeCentral
) -> None:
    device.net.down()
    agent = await device.start_agent(outbox_max_rows=3)
    await eventually(lambda: agent.stats()["dropped"]["telemetry"] >= 5, "drops while offline")
    assert agent.stats()["outbox"]["telemetry"] <= 3
    device.net.up()
    await eventually(lambda: len(central.statuses) >= 1, "a heartbeat")
    assert central.statuses[-1].dropped["telemetry"] >= 5
    await device.stop_metal()
    await eventually(lambda: drained(device), "what was kept arrives")
    await device.stop_agent()
    keys = [(m, ts) for m, ts, _ in central.points]
    assert len(keys) == len(set(keys))
    assert 0 < len(central.points) < device.appended_points()  # the dropped rows are gone


async def test_desired_state_is_stored_before_acting_and_reapplied_offline(
    device: Device, central: FakeCentral, tmp_path: Path
) -> None:
    doc = {
        "thermal": {"min_fan_pct": 20.0},
        "fan": {"override_pct": 60.0, "duration_s": 120.0},
        "sampling": {"interval_s": 0.05, "report_interval_s": 0.1},
        "gpio": {"led": {"value": 1}},
        "config": {"site_note": "rack 3"},
    }
    central.desired = Desired(1, doc)
    agent = await device.start_agent()

    def applied() -> bool:
        r = central.latest_reported()
        return r is not None and r.applied_desired_version == 1

    await eventually(applied, "desired v1 applied and reported")
    reported = central.latest_reported()
    assert reported is not None
    assert reported.rejected == {}
    assert reported.doc["fan"] == {"override_pct": 60.0, "duration_s": 120.0}
    assert reported.doc["thermal"]["min_fan_pct"] == 20.0
    assert reported.doc["gpio"]["led"] == {"value": 1}
    assert reported.doc["config"] == {"site_note": "rack 3"}
    assert reported.doc["hardware"]["backend"] == "sim"
    assert device.core.thermal_policy.min_fan_pct == 20.0
    assert agent.stats()["desired_version"] == 1
    await device.stop_agent()
    assert EdgeStore(tmp_path / "edge.db").desired() is not None  # durable on disk

    # The board reboots without network: a fresh metald, then the agent, no server.
    device.net.down()
    await device.reboot_metal()
    assert device.core.thermal_policy.min_fan_pct == 0.0
    agent = await device.start_agent()
    await eventually(
        lambda: (
            device.core.thermal_policy.min_fan_pct == 20.0
            and device.core.snapshot is not None
            and device.core.snapshot.override is not None
            and device.core.snapshot.override.percent == 60.0
        ),
        "the stored desired state runs again",
    )
    assert not agent.connected
    assert agent.stats()["applied_desired_version"] == 1


async def test_a_metald_restart_makes_the_agent_apply_desired_again(
    tmp_path: Path, central: FakeCentral
) -> None:
    """``wrale edge`` beside a separate metald: metald restarts (forgetting the policies),
    its event stream breaks, and METALD_STARTED makes the agent apply the desired state."""
    clock = SystemClock()
    board = SimBoard(SimSettings(seed=1, noise=False), clock=clock)

    async def metald(port: int) -> tuple[MetalCore, MetaldServer, int]:
        core = MetalCore(board, store=DeviceStore(tmp_path / "metald.db"), clock=clock)
        await core.start()
        server = MetaldServer(core, api_key=KEY, diagnostics=None)
        _, bound = await server.start("127.0.0.1", port)
        return core, server, bound

    core, server, port = await metald(0)
    central.desired = Desired(1, {"thermal": {"min_fan_pct": 15.0}})
    device = Device(tmp_path / "edge", central)
    device.metal = HttpMetalClient(f"http://127.0.0.1:{port}", KEY)  # type: ignore[assignment]
    await device.start_agent()
    try:
        await eventually(lambda: core.thermal_policy.min_fan_pct == 15.0, "applied")
        await server.close()
        core.store.close()
        core, server, _ = await metald(port)
        assert core.thermal_policy.min_fan_pct == 0.0
        await eventually(lambda: core.thermal_policy.min_fan_pct == 15.0, "applied again")
    finally:
        await device.aclose()
        await device.metal.aclose()
        await server.close()
        core.store.close()


async def test_an_unsafe_desired_value_is_rejected_with_the_reason(
    device: Device, central: FakeCentral
) -> None:
    await device.start_agent()
    doc = {
        "thermal": {"cpu_hard_limit_c": 95.0, "min_fan_pct": 40.0},
        "fan": {"override_pct": 20.0, "duration_s": 60.0},
        "gpio": {"nope": {"value": 1}},
    }
    await eventually(lambda: central.conn is not None, "connected")
    await central.push(Desired(2, doc))

    def rejected() -> dict[str, str]:
        r = central.latest_reported()
        return r.rejected if r is not None and r.applied_desired_version == 2 else {}

    await eventually(lambda: bool(rejected()), "the rejection is reported")
    reasons = rejected()
    assert set(reasons) == {"thermal.cpu_hard_limit_c", "fan.override_pct", "gpio.nope.value"}
    assert "firmware limit" in reasons["thermal.cpu_hard_limit_c"]
    assert "minimum fan speed" in reasons["fan.override_pct"]
    assert "nope" in reasons["gpio.nope.value"]
    # the safe part of the same policy was applied; the unsafe value was not
    assert device.core.thermal_policy.min_fan_pct == 40.0
    assert device.core.thermal_policy.cpu_hard_limit_c == 85.0
    reported = central.latest_reported()
    assert reported is not None
    assert reported.doc["fan"]["override_pct"] is None


@INLINE
async def test_commands_run_once_with_their_lifecycle(device: Device, central: FakeCentral) -> None:
    agent = await device.start_agent()
    await eventually(lambda: central.conn is not None, "connected")
    now = time.time()

    async def run(cid: str, op: str, args: dict[str, object], deadline: float = now + 60) -> str:
        await central.push(Command(cid, op, args, deadline))
        await eventually(lambda: central.result(cid) is not None, f"a result for {cid}")
        r = central.result(cid)
        assert r is not None
        assert r.status == "succeeded" or r.reason
        return r.status

    assert await run("c1", "set_fan", {"percent": 70, "duration_s": 60}) == "succeeded"
    assert device.core.snapshot is not None
    assert device.core.snapshot.override is not None
    assert device.core.snapshot.override.percent == 70.0
    assert await run("c2", "set_fan", {"percent": 70}, deadline=now - 1) == "failed"
    assert central.result("c2").reason == "expired"  # type: ignore[union-attr]
    assert await run("c3", "warp", {}) == "refused"
    assert await run("c4", "set_fan", {"percent": 170}) == "refused"
    assert await run("c5", "set_throttle", {"max_freq_pct": 70}) == "succeeded"
    assert device.core.current().decision.max_freq_pct == 70.0
    assert await run("c6", "reboot", {}) == "refused"  # power commands are off by default
    assert await run("c7", "run_diag", {}) == "refused"  # this metal has no diagnostics
    assert await run("c8", "sim_load", {"percent": 55}) == "succeeded"

    assert await run("s1", "safe_mode", {"on": True}) == "succeeded"
    assert agent.stats()["mode"] == "safe"
    assert await run("s2", "set_fan", {"percent": 80}) == "refused"
    assert "SAFE" in central.result("s2").reason  # type: ignore[union-attr]
    assert await run("s3", "set_throttle", {"max_freq_pct": 50}) == "succeeded"
    assert await run("s4", "safe_mode", {"on": False}) == "succeeded"
    assert agent.stats()["mode"] == "normal"

    # A redelivered command is answered again from the store, not run twice.
    overrides = [e for e in await device.metal.events(limit=500) if e["type"] == "FAN_OVERRIDE"]
    await central.push(Command("c1", "set_fan", {"percent": 70, "duration_s": 60}, now + 60))
    await eventually(lambda: Counter(r.id for r in central.results)["c1"] == 2, "answered again")
    again = [e for e in await device.metal.events(limit=500) if e["type"] == "FAN_OVERRIDE"]
    assert len(again) == len(overrides)
    assert central.results[-1].status == "succeeded"


async def test_commands_wait_for_the_link_and_results_survive_it(
    device: Device, central: FakeCentral
) -> None:
    device.net.down()
    await central.push(Command("q1", "arm", {"level": "high"}, time.time() + 60))
    await device.start_agent()
    device.net.up()
    await eventually(lambda: central.result("q1") is not None, "the queued command ran")
    assert central.result("q1").status == "succeeded"  # type: ignore[union-attr]
    assert device.core.current().security.level.value == "high"


async def test_quarantine_means_safe_mode_and_a_refused_credential_stops_dialing(
    device: Device, central: FakeCentral
) -> None:
    central.refuse = Goodbye("quarantined", "tamper lockdown on this device", retry=True)
    agent = await device.start_agent()
    await eventually(lambda: agent.mode is Mode.SAFE, "SAFE mode")
    central.refuse = None
    await eventually(lambda: agent.connected, "back once released")
    assert agent.mode is Mode.SAFE  # left only by command
    await device.stop_agent()

    central.refuse = Goodbye("unauthorized", "credential revoked", retry=False)
    agent = await device.start_agent()
    await eventually(lambda: agent.stats()["refused"] is not None, "refused")
    assert agent.mode is Mode.SAFE  # the mode survives a restart
    dials = device.net.dials
    await eventually(lambda: agent.stats()["samples"] > 20, "keeps sampling")
    assert device.net.dials == dials  # no more dialing
    assert agent.stats()["refused"]["code"] == "unauthorized"


async def test_offline_too_long_means_autonomous_until_the_next_welcome(
    device: Device, central: FakeCentral
) -> None:
    device.net.down()
    agent = await device.start_agent(autonomous_after_s=0.05)
    await eventually(lambda: agent.mode is Mode.AUTONOMOUS, "AUTONOMOUS")
    device.net.up()
    await eventually(lambda: agent.connected and agent.mode is Mode.NORMAL, "NORMAL again")
    assert central.hellos[-1].mode == "autonomous"
    await eventually(
        lambda: (r := central.latest_reported()) is not None and r.doc["mode"] == "normal",
        "the mode is reported",
    )
