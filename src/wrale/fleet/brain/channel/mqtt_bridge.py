"""The central server's end of the MQTT device channel: broker messages ⇄ ``DeviceSession``.

Every replica subscribes to the device → server topics through the shared subscription
``$share/wrale-central/<root>/+/<kind>``, so the broker splits devices' messages between
replicas. Messages of one device are handled in arrival order, those waiting together in one
transaction (group commit), and acknowledged to the broker only after that (manual PUBACK);
its command results have a lane of their own and an urgent writer turn, so an operator's
answer does not wait behind the device's telemetry. The broker's in-flight window (MQTT 5
Receive Maximum) bounds what this process holds. Replies and pushes go to
``<root>/<device_id>/<kind>``. What a device's messages mean — hello, goodbye, sessions
attached from the database, pushes and the sweep — is ``mqtt_sessions.MqttSessions``; this
module owns the broker connection, the per-device lanes and the workers.

Pushes: the bridge is the hub's fallback pusher (desired / command changes and quarantine
of devices without a WebSocket here), and a sweep every heartbeat re-checks the sessions
it has seen (revoked, quarantined, replaced; work queued through another replica).
No state another replica needs is kept here: the session cache is only a shortcut and is
re-checked against the database. The broker authenticates devices on their topics (see
``fleet/sync/transport/mqtt.py``, ``channel/broker_accounts.py``): with broker accounts a
hello needs no secret; only on a legacy anonymous broker (``mqtt_hello_secret``) is a
hello authenticated by the secret it carries.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from wrale.fleet.brain.channel.frames import urgent
from wrale.fleet.brain.channel.limits import TokenBucket
from wrale.fleet.brain.channel.mqtt_sessions import BridgeDownError, BridgeStats, MqttSessions
from wrale.fleet.brain.channel.session import ChannelContext
from wrale.fleet.brain.services import registry
from wrale.fleet.sync.backoff import Backoff
from wrale.fleet.sync.protocol import (
    Goodbye,
    Hello,
    Message,
    ProtocolError,
    decode,
    encode,
)
from wrale.fleet.sync.transport.base import require_secure
from wrale.fleet.sync.transport.mqtt import (
    QOS,
    SOCKET_OPTIONS,
    UP,
    UP_TYPES,
    BrokerUrl,
    connect_properties,
    parse_broker_url,
    tls_context,
)

if TYPE_CHECKING:
    import aiomqtt

    from wrale.fleet.brain.channel.hub import ChannelHub

log = logging.getLogger("wrale.central.mqtt")

GROUP: Final = "wrale-central"
DOWN_KINDS: Final = frozenset({"welcome", "ack", "desired", "cmd", "goodbye"})
PUSH_KINDS: Final = {"twin.desired": "desired", "command.queued": "commands"}
# a lane: a device's messages, or its command results (an operator waits for those: they
# have their own lane, so they do not queue behind the device's telemetry group commit)
_Key = tuple[str, bool]


@dataclass(slots=True)
class _Item:
    msg: Message
    mid: int
    generation: int  # which broker connection it came on (its mid is only valid there)


@dataclass(slots=True)
class _Lane:
    """What waits for one device: broker messages in order, and pushes to make."""

    items: list[_Item] = field(default_factory=list)
    push: set[str] = field(default_factory=set)  # desired / commands / status
    data: dict[str, Any] = field(default_factory=dict)  # the device.status event's


class MqttBridge:
    """Serve devices over an MQTT broker for this replica (start / stop with the app).

    ``hub`` (optional): the bridge registers itself as the hub's fallback pusher, so desired
    and command changes of devices without a WebSocket here reach them over MQTT.
    """

    def __init__(
        self,
        url: str,
        ctx: ChannelContext,
        hub: ChannelHub | None = None,
        *,
        group: str = GROUP,
        receive_maximum: int = 256,
        workers: int = 4,
        max_sessions: int = 50_000,
        max_push_lanes: int = 100_000,
        keepalive_s: int = 30,
        recheck_s: float | None = None,
    ) -> None:
        self.broker: BrokerUrl = parse_broker_url(url)
        require_secure(url, insecure=self.broker.insecure, what="the MQTT broker")
        self._tls = tls_context(self.broker.ca_file) if self.broker.tls else None
        self.ctx = ctx
        self.hub = hub
        self.group = group
        self.receive_maximum = receive_maximum
        self.workers = workers
        self.max_sessions = max_sessions
        self.max_push_lanes = max_push_lanes
        self.keepalive_s = keepalive_s
        self.client_id = self.broker.client_id or f"wrale-central-{ctx.replica}"
        self.stats = BridgeStats()
        self.backoff = Backoff(base_s=0.5, cap_s=30.0)  # between attempts to reach the broker
        self.ready = asyncio.Event()  # connected and subscribed
        self._client: aiomqtt.Client | None = None
        self._generation = 0
        self._lanes: dict[_Key, _Lane] = {}
        self._scheduled: set[_Key] = set()
        self._queue: asyncio.Queue[_Key] = asyncio.Queue()
        self.devices = MqttSessions(
            ctx,
            self._publish,
            self._enqueue,
            self.stats,
            recheck_s=recheck_s if recheck_s is not None else ctx.last_seen_every_s,
            max_sessions=max_sessions,
        )
        self._buckets: collections.OrderedDict[str, TokenBucket] = collections.OrderedDict()
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()

    # ------------------------------------------------------------------ life

    async def start(self) -> None:
        """Connect in the background (retrying with backoff) and start the workers."""
        if self._tasks:
            return
        self._stop.clear()
        self._tasks.append(self._supervised(self._run, "wrale-mqtt-bridge"))
        self._tasks.append(self._supervised(self._sweeper, "wrale-mqtt-sweep"))
        for i in range(self.workers):
            self._tasks.append(self._supervised(self._worker, f"wrale-mqtt-{i}"))
        if self.hub is not None:
            self.hub.set_fallback(self.push)
        log.info("MQTT bridge to %s as %s", self.broker.redacted, self.client_id)

    async def stop(self) -> None:
        """Stop receiving; the devices' sessions stay open for the other replicas."""
        if self.hub is not None:
            self.hub.set_fallback(None)
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        self.ready.clear()

    def _supervised(self, loop: Callable[[], Any], name: str) -> asyncio.Task[None]:
        """Run ``loop`` until stopped; restart it with backoff whatever kills it."""

        async def supervise() -> None:
            backoff = Backoff(base_s=0.2, cap_s=30.0)
            while not self._stop.is_set():
                try:
                    await loop()
                except asyncio.CancelledError:
                    raise
                except Exception:  # RecursionError, MemoryError, a bug: restart it
                    self.ctx.counters.inc("bridge_restarts", "mqtt")
                    log.exception("MQTT bridge: %s died; restarting it", name)
                else:
                    if self._stop.is_set():
                        return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), backoff.next_delay())

        return asyncio.create_task(supervise(), name=name)

    @property
    def healthy(self) -> bool:
        """Started, connected and subscribed, and the receive loop alive (``/readyz``)."""
        return bool(self._tasks) and self.ready.is_set() and not self._tasks[0].done()

    # ------------------------------------------------------------------ broker connection

    def _new_client(self) -> aiomqtt.Client:
        import aiomqtt

        persistent = self.broker.client_id is not None
        props = {"ReceiveMaximum": self.receive_maximum}
        if persistent:  # a named replica gets what it had not acknowledged after a restart
            props["SessionExpiryInterval"] = 3600
        return aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            identifier=self.client_id,
            username=self.broker.username,
            password=self.broker.password,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=not persistent,
            properties=connect_properties(**props),
            tls_context=self._tls,
            keepalive=self.keepalive_s,
            socket_options=SOCKET_OPTIONS,
        )

    async def _run(self) -> None:
        import aiomqtt

        backoff = self.backoff
        while not self._stop.is_set():
            client = self._new_client()
            # PUBACK only after the commit: aiomqtt does not expose paho's manual acks
            client._client.manual_ack_set(True)
            try:
                async with client:
                    self._generation += 1
                    self._client = client
                    await client.subscribe(
                        [(f"$share/{self.group}/{self.broker.root}/+/{k}", QOS) for k in UP]
                    )
                    self.ready.set()
                    backoff.reset()
                    log.info("MQTT bridge subscribed on %s", self.broker.redacted)
                    async for raw in client.messages:
                        self._receive(raw)
            except aiomqtt.MqttError as exc:
                log.warning("MQTT bridge: broker %s: %s", self.broker.redacted, exc)
            finally:
                self.ready.clear()
                self._client = None
            if self._stop.is_set():
                return
            self.stats.reconnects += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), backoff.next_delay())

    def _receive(self, raw: aiomqtt.Message) -> None:
        """Queue one broker message on its device's lane; anything that is not a valid
        frame for its topic is dropped, acknowledged (never redelivered) and counted."""
        self.stats.received += 1
        try:
            where = self.broker.split(str(raw.topic.value))
            if where is None or where[1] not in UP_TYPES:
                raise ProtocolError(f"not a device topic: {str(raw.topic.value)[:200]!r}")
            payload = raw.payload if isinstance(raw.payload, bytes | str) else b""
            msg = decode(payload)
            if not isinstance(msg, UP_TYPES[where[1]]):
                raise ProtocolError(f"a {msg.T!r} frame on the {where[1]!r} topic")
            if not isinstance(msg, Hello | Goodbye) and not self._bucket(where[0]).take():
                self.ctx.counters.inc("rate_limited_frames", "mqtt")
                if self.ctx.log_gate.ok(f"mqtt-rate:{where[0]}"):
                    log.warning("MQTT: device %s: frames over the rate limit dropped", where[0])
                self._ack(raw.mid, self._generation)
                return
            lane = self._lane((where[0], urgent(msg)))
            lane.items.append(_Item(msg, raw.mid, self._generation))
        except Exception as exc:  # a hostile frame must not stop the loop serving the others
            self.stats.dropped += 1
            self.ctx.counters.inc("bad_frames", "mqtt")
            topic = str(getattr(raw.topic, "value", ""))[:200]
            if self.ctx.log_gate.ok(f"mqtt-bad:{topic}"):
                log.info("MQTT: dropping a bad frame on %s (more in the counter): %s", topic, exc)
            self._ack(raw.mid, self._generation)

    def _bucket(self, device_id: str) -> TokenBucket:
        """The device's frame-rate bucket (per replica; the oldest are forgotten)."""
        bucket = self._buckets.get(device_id)
        if bucket is None:
            settings = self.ctx.settings
            bucket = TokenBucket(settings.channel_frame_rate, settings.channel_frame_burst)
            self._buckets[device_id] = bucket
            while len(self._buckets) > self.max_sessions:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(device_id)
        return bucket

    def _ack(self, mid: int, generation: int) -> None:
        client = self._client
        if client is None or generation != self._generation or mid <= 0:
            return  # that connection is gone; the broker forgets its in-flight messages
        client._client.ack(mid, QOS)

    async def _publish(self, device_id: str, msg: Message) -> None:
        import aiomqtt

        if msg.T not in DOWN_KINDS:
            raise ProtocolError(f"the server does not send {msg.T!r}")
        client = self._client
        if client is None:
            raise BridgeDownError("the MQTT broker is not connected")
        try:
            await client.publish(self.broker.topic(device_id, msg.T), encode(msg), qos=QOS)
        except aiomqtt.MqttError as exc:
            raise BridgeDownError(f"MQTT publish failed: {exc}") from None
        self.stats.published += 1

    # ------------------------------------------------------------------ lanes

    def _lane(self, key: _Key) -> _Lane:
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        if key not in self._scheduled:
            self._scheduled.add(key)
            self._queue.put_nowait(key)
        return lane

    async def push(self, kind: str, device_id: str, data: dict[str, Any]) -> None:
        """The hub's fallback: ``twin.desired`` / ``command.queued`` / ``device.status`` of a
        device with no WebSocket session on this replica."""
        self._enqueue(kind, device_id, data)

    def _enqueue(self, kind: str, device_id: str, data: dict[str, Any]) -> None:
        if kind in PUSH_KINDS:
            what = PUSH_KINDS[kind]
        elif kind == "device.status" and data.get("status") in registry.HELD_STATUSES:
            what = "status"
        else:
            return
        key = (device_id, False)
        if key not in self._lanes and len(self._lanes) >= self.max_push_lanes:
            self.stats.dropped += 1  # the sweep of cached sessions catches up
            return
        lane = self._lane(key)
        lane.push.add(what)
        if what == "status":
            lane.data = dict(data)

    async def _worker(self) -> None:
        while True:
            key = await self._queue.get()
            device_id = key[0]
            lane = self._lanes.pop(key, None)
            try:
                if lane is not None:
                    await self._serve(device_id, lane)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("MQTT: device %s: handling failed", device_id)
            finally:
                if lane is not None:
                    for item in lane.items:
                        self._ack(item.mid, item.generation)
                if key in self._lanes:
                    self._queue.put_nowait(key)  # more arrived meanwhile
                else:
                    self._scheduled.discard(key)

    async def _serve(self, device_id: str, lane: _Lane) -> None:
        msgs = [item.msg for item in lane.items]
        await self.devices.serve(device_id, msgs, lane.push, lane.data)

    # ------------------------------------------------------------------ sweep

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(self.ctx.settings.channel_heartbeat_s)
            try:
                await self.devices.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("MQTT bridge sweep failed")

    async def sweep(self) -> int:
        """Re-check the cached sessions now (``MqttSessions.sweep``)."""
        return await self.devices.sweep()

    @property
    def recheck_s(self) -> float:
        """How old a cached session may be before it is checked against the database."""
        return self.devices.recheck_s

    @recheck_s.setter
    def recheck_s(self, value: float) -> None:
        self.devices.recheck_s = value

    @property
    def sessions_cached(self) -> int:
        return len(self.devices)

    @property
    def waiting(self) -> int:
        """Broker messages held (bounded by the Receive Maximum) plus lanes with pushes."""
        return sum(len(lane.items) for lane in self._lanes.values())
