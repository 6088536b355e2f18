"""A hostile board on the MQTT device channel: malformed frames through the real Mosquitto
are dropped, acknowledged and counted, and the bridge keeps serving every other device."""

from __future__ import annotations

import time

import aiomqtt
import pytest

from tests.user.api.test_mqtt_channel import (
    FakeDevice,
    Replica,
    central,  # noqa: F401  (the fixture)
    enroll,
    eventually,
    points,
    points_stored,
)
from wrale.fleet.brain.db import Database
from wrale.fleet.sync.protocol import Ack, TelemetryBatch
from wrale.fleet.sync.transport.mqtt import parse_broker_url

pytestmark = pytest.mark.mqtt

NESTED = ("[" * 1200 + "]" * 1200).encode()


async def publish_raw(mqtt_url: str, device_id: str, kind: str, payload: bytes) -> None:
    """What a hostile board (or anyone on the broker) can put on a device topic."""
    broker = parse_broker_url(mqtt_url)
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.publish(broker.topic(device_id, kind), payload, qos=1)


async def test_deeply_nested_frame_does_not_stop_the_bridge(
    central: Replica,  # noqa: F811
    database: Database,
    mqtt_url: str,
) -> None:
    hostile_id, hostile_secret = await enroll(central)
    hostile = FakeDevice(mqtt_url, hostile_id, hostile_secret)
    await hostile.connect()
    for kind in ("telemetry", "hello", "reported"):
        await publish_raw(mqtt_url, hostile_id, kind, NESTED)
    await publish_raw(mqtt_url, hostile_id, "status", b"\xff\xfe{")
    await publish_raw(mqtt_url, hostile_id, "status", b'{"t":"status","ts":NaN}')
    counters = central.app.state.hub.ctx.counters

    async def counted() -> bool:
        return counters.get("bad_frames", "mqtt") >= 5

    await eventually(counted)

    good_id, good_secret = await enroll(central)  # another board: still served
    good = FakeDevice(mqtt_url, good_id, good_secret)
    welcome = await good.connect()
    batch = TelemetryBatch(seq=1, prev=0, points=points(3, time.time() - 60))
    assert await good.ack(batch) == Ack(stream="telemetry", seq=1, session=welcome.session)
    assert await points_stored(database, good_id) == 3
    await good.close()
    await hostile.close()

    assert central.bridge.healthy
    r = await central.http.get("/readyz")
    assert r.json()["mqtt_bridge"] is True
    metrics = (await central.http.get("/metrics")).text
    line = next(x for x in metrics.splitlines() if x.startswith("wrale_channel_bad_frames_total"))
    assert line.endswith(tuple(f" {n}" for n in range(5, 100)))


async def test_bridge_receive_loop_is_restarted_when_it_dies(
    central: Replica,  # noqa: F811
    database: Database,
    mqtt_url: str,
) -> None:
    """Whatever kills the receive loop (here: an error planted where no frame check can
    catch it), the bridge restarts it and a good device is served afterwards."""
    bridge = central.bridge
    counters = central.app.state.hub.ctx.counters
    good_id, good_secret = await enroll(central)

    def planted(raw: object) -> None:
        raise RecursionError("planted")

    bridge._receive = planted  # type: ignore[method-assign,assignment]
    await publish_raw(mqtt_url, good_id, "telemetry", b"{}")

    async def restarted() -> bool:
        return counters.get("bridge_restarts", "mqtt") >= 1

    await eventually(restarted)
    del bridge._receive

    async def ready_again() -> bool:  # (the test schema has no revision: readyz says 503)
        return (await central.http.get("/readyz")).json()["mqtt_bridge"] is True

    await eventually(ready_again)
    good = FakeDevice(mqtt_url, good_id, good_secret)
    welcome = await good.connect()
    batch = TelemetryBatch(seq=1, prev=0, points=points(2, time.time() - 60))
    assert await good.ack(batch) == Ack(stream="telemetry", seq=1, session=welcome.session)
    assert await points_stored(database, good_id) == 2
    await good.close()


async def test_readyz_is_503_while_the_bridge_is_down(central: Replica) -> None:  # noqa: F811
    assert (await central.http.get("/readyz")).json()["mqtt_bridge"] is True
    await central.bridge.stop()
    r = await central.http.get("/readyz")
    assert r.status_code == 503
    assert r.json()["mqtt_bridge"] is False
    await central.bridge.start()

    async def ready_again() -> bool:  # (the test schema has no revision: readyz says 503)
        return (await central.http.get("/readyz")).json()["mqtt_bridge"] is True

    await eventually(ready_again)


async def test_frames_over_the_device_rate_are_dropped_and_counted(
    central: Replica,  # noqa: F811
    database: Database,
    mqtt_url: str,
) -> None:
    ctx = central.app.state.hub.ctx
    ctx.settings = ctx.settings.model_copy(
        update={"channel_frame_rate": 0.0001, "channel_frame_burst": 2}
    )
    device_id, secret = await enroll(central)
    dev = FakeDevice(mqtt_url, device_id, secret)
    await dev.connect()  # a hello is never rate limited
    t0 = time.time() - 100
    for seq in range(1, 5):
        await dev.send(TelemetryBatch(seq=seq, prev=seq - 1, points=points(1, t0 + seq)))
    assert (await dev.expect(Ack, lambda a: a.seq == 1)).stream == "telemetry"
    assert (await dev.expect(Ack, lambda a: a.seq == 2)).stream == "telemetry"

    async def counted() -> bool:
        return bool(ctx.counters.get("rate_limited_frames", "mqtt") >= 2)

    await eventually(counted)
    assert ctx.counters.get("rate_limited_frames", "mqtt") == 2
    assert await points_stored(database, device_id) == 2
    await dev.close()
