"""Over MQTT too, a command's result does not wait behind its board's telemetry: the
bridge gives results a lane of their own (before, a result queued in the board's lane
behind the batch sent ahead of it and waited for that batch's group commit)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.user.api.test_edge_ws_results import ORDER_KINDS, TelemetryHeld
from tests.user.api.test_mqtt_channel import FakeDevice, Replica, enroll, eventually, replica
from wrale.fleet.brain.bus import BusEvent
from wrale.fleet.brain.db import Database
from wrale.fleet.sync.protocol import Ack, Command, CommandResult, TelemetryBatch

pytestmark = pytest.mark.mqtt


@pytest.fixture
async def central(database: Database, tmp_path: Path, mqtt_url: str) -> AsyncIterator[Replica]:
    async with replica(database, tmp_path, mqtt_url) as r:
        yield r


def _batch(seq: int) -> TelemetryBatch:
    return TelemetryBatch(seq=seq, prev=seq - 1, points=[("cpu_temp_c", time.time(), 50.0)])


async def test_a_result_goes_ahead_of_the_telemetry_sent_before_it(
    central: Replica, database: Database, mqtt_url: str
) -> None:
    device_id, secret = await enroll(central)
    dev = FakeDevice(mqtt_url, device_id, secret)
    await dev.connect(desired_version=1_000)
    await dev.ack(_batch(1))  # the board's telemetry row exists from now on
    made = await central.call(
        "POST", f"/devices/{device_id}/commands", json={"op": "arm", "args": {"level": "low"}}
    )
    cmd = await dev.expect(Command)
    assert cmd.id == made["id"]
    order: list[str] = []

    def seen(event: BusEvent) -> None:
        if event.data.get("device_id") == device_id:
            order.append(event.kind)

    async def stored() -> bool:
        return bool((await central.call("GET", f"/commands/{cmd.id}"))["status"] == "succeeded")

    stop = central.app.state.wrale.bus.listen(ORDER_KINDS, seen)
    try:
        async with TelemetryHeld(database, device_id):
            await dev.send(_batch(2))
            await dev.send(CommandResult(id=cmd.id, status="succeeded"))
            if not database.is_sqlite:
                await eventually(stored)  # while the telemetry waits
        await dev.expect(Ack, lambda a: a.stream == "telemetry" and a.seq == 2)
        await eventually(stored)
    finally:
        stop()
    assert order.index("command.updated") < order.index("telemetry.summary")
    await dev.close()
