"""What a hostile board can put through the device channel and what ingest does with it:
timestamps and values outside physical bounds (refused and counted, or, for events,
stored at receive time), reported documents too big to store, and a flood of frames over
the session's rate. Real app and database through ASGI, frames as a real agent's."""

from __future__ import annotations

import time

from tests.conftest import Central
from tests.user.api.test_edge_ws import dial, enroll, recv
from tests.user.api.test_mqtt_channel import eventually, points_stored
from wrale.fleet.brain.channel.limits import TokenBucket
from wrale.fleet.brain.services.telemetry_bounds import bounds_of, value_ok
from wrale.fleet.sync.protocol import Ack, EventsBatch, Reported, TelemetryBatch, Welcome, encode

API = "/api/v1"


async def next_ack(sock: object) -> Ack:
    while not isinstance(m := await recv(sock), Ack):  # type: ignore[arg-type]
        pass
    return m


def counters(central: Central) -> object:
    return central.app.state.hub.ctx.counters


async def test_event_timestamps_out_of_bounds_are_stored_at_receive_time(
    central: Central,
) -> None:
    dev, secret = await enroll(central, "clock-1e300")
    sock, welcome = await dial(central, dev, secret)
    assert isinstance(welcome, Welcome)
    before = time.time()
    evs = [
        {"ts": ts, "type": "TAMPER", "severity": "warning", "message": str(ts)}
        for ts in (1e300, -1e300, 0, before - 10)
    ]
    await sock.send(encode(EventsBatch(seq=1, prev=0, events=evs)))
    assert (await next_ack(sock)).seq == 1
    await sock.finish()
    r = await central.http.get(f"{API}/devices/{dev}/events", headers=central.admin)
    assert r.status_code == 200, r.text
    by_message = {e["message"]: e for e in r.json()["items"]}
    for bad in ("1e+300", "-1e+300", "0"):
        assert before <= by_message[bad]["ts"] <= time.time()
        assert by_message[bad]["data"]["device_ts_refused"] is True
    assert by_message[str(before - 10)]["ts"] == before - 10
    assert counters(central).get("refused_events", "ws") == 3  # type: ignore[attr-defined]
    for path in (f"{API}/devices/{dev}", f"{API}/devices", f"{API}/alerts"):
        assert (await central.http.get(path, headers=central.admin)).status_code == 200


async def test_points_outside_physical_bounds_are_refused_and_counted(central: Central) -> None:
    dev, secret = await enroll(central, "wild-values")
    sock, _ = await dial(central, dev, secret)
    now = time.time() - 30
    pts = [
        ("cpu_temp_c", now, 1e6),
        ("battery_pct", now, 150.0),
        ("power_w", now, -5.0),
        ("fan_rpm", now, 1e9),
        ("cpu_temp_c", 1e300, 50.0),
        ("cpu_temp_c", -1e300, 50.0),
        ("some_gauge", now, 1e200),
        ("cpu_temp_c", now, 55.5),  # the one good point
        ("battery_pct", now + 1, 80.0),  # and another
    ]
    await sock.send(encode(TelemetryBatch(seq=1, prev=0, points=pts)))
    ack = await next_ack(sock)
    assert (ack.seq, ack.gap) == (1, False)  # the batch is acked: the rest never stalls
    await sock.finish()
    assert await points_stored(central.db, dev) == 2
    assert counters(central).get("refused_points", "ws") == 7  # type: ignore[attr-defined]


async def test_rest_upload_refuses_values_outside_bounds_with_422(central: Central) -> None:
    assert not value_ok("cpu_temp_c", 1e6)
    assert bounds_of("gpu_temp_c") == (-80.0, 200.0)
    assert value_ok("anything_x", 123.0)
    dev, _ = await enroll(central, "rest-upload")
    body = {"seq": 1, "points": [{"metric": "battery_pct", "ts": time.time() - 5, "value": 150}]}
    r = await central.http.post(f"{API}/devices/{dev}/telemetry", headers=central.admin, json=body)
    assert r.status_code == 422, r.text
    assert "physical bounds" in r.json()["error"]["message"]
    assert await points_stored(central.db, dev) == 0


async def test_reported_document_too_big_is_dropped_and_session_goes_on(central: Central) -> None:
    dev, secret = await enroll(central, "big-reported")
    sock, _ = await dial(central, dev, secret)
    big = {"blob": "x" * 100_000}
    await sock.send(encode(Reported(version=5, doc=big)))
    await sock.send(
        encode(TelemetryBatch(seq=1, prev=0, points=[("cpu_temp_c", time.time(), 1.0)]))
    )
    assert (await next_ack(sock)).seq == 1
    await sock.finish()
    assert counters(central).get("refused_reported", "ws") == 1  # type: ignore[attr-defined]
    twin = (await central.http.get(f"{API}/devices/{dev}/twin", headers=central.admin)).json()
    assert "blob" not in str(twin)


async def test_frames_over_the_session_rate_are_dropped_and_counted(central: Central) -> None:
    ctx = central.app.state.hub.ctx
    ctx.settings = ctx.settings.model_copy(
        update={"channel_frame_rate": 0.0001, "channel_frame_burst": 3}
    )
    dev, secret = await enroll(central, "flood")
    sock, _ = await dial(central, dev, secret)
    t0 = time.time() - 100
    for seq in range(1, 7):
        pts = [("cpu_temp_c", t0 + seq, 40.0)]
        await sock.send(encode(TelemetryBatch(seq=seq, prev=seq - 1, points=pts)))
    assert [(await next_ack(sock)).seq for _ in range(3)] == [1, 2, 3]

    async def counted() -> bool:
        return bool(ctx.counters.get("rate_limited_frames", "ws") >= 3)

    await eventually(counted)
    await sock.finish()
    assert ctx.counters.get("rate_limited_frames", "ws") == 3
    assert await points_stored(central.db, dev) == 3


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2.0, burst=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] = 0.5  # one token back
    assert [bucket.take() for _ in range(2)] == [True, False]
    now[0] = 100.0  # never more than the burst
    assert sum(bucket.take() for _ in range(10)) == 3
