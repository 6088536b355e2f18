"""EdgeAgent: the device's link to the fleet. It samples the board through ``MetalClient``,
keeps telemetry and metald's events in a durable outbox until the central server has
stored them, applies the desired twin and runs commands, and keeps working offline.

Per session: ``Hello`` (what was acknowledged, twin versions) → ``Welcome`` (what the
server stored) → the backlog oldest first, at most ``window_batches`` unacknowledged and
``drain_batches_per_s``, while ``Status`` heartbeats carry the live readings. An ack with
``gap`` (or no ack in time) resends from the last acknowledged seq (go-back-N); the server
stores a batch only once, so nothing is lost and nothing is stored twice.

Modes: NORMAL; AUTONOMOUS after ``autonomous_after_s`` without the server (back to NORMAL
at the next Welcome); SAFE by command or a ``quarantined`` Goodbye, left only by the
command ``safe_mode {on: false}``. SAFE stores desired state without applying it and runs
only safety commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any, Final, TypeVar

from wrale import __version__
from wrale.fleet.edge.clockwatch import HOLD_S, WallSteps, plausible, retime
from wrale.fleet.edge.commands import CommandPower, CommandRunner, PowerActions, RefusePower
from wrale.fleet.edge.credentials import Credentials
from wrale.fleet.edge.executor import Executor, Held
from wrale.fleet.edge.reconcile import plan
from wrale.fleet.edge.settings import EdgeSettings
from wrale.fleet.edge.store import EdgeStore, Row, Twin
from wrale.fleet.edge.telemetry import Point, points, protocol_event
from wrale.fleet.sync.backoff import Backoff, TokenBucket
from wrale.fleet.sync.protocol import (
    STREAMS,
    Ack,
    Command,
    CommandResult,
    Desired,
    EventsBatch,
    Goodbye,
    Hello,
    Message,
    ProtocolError,
    Reported,
    Status,
    TelemetryBatch,
    Welcome,
)
from wrale.fleet.sync.transport.base import (
    Connection,
    ConnectionClosed,
    Dialer,
    DialError,
    Refused,
)
from wrale.fleet.sync.twin import diff
from wrale.metal.core.ports import MetalClient
from wrale.shared.clock import Clock, SystemClock
from wrale.shared.errors import WraleError

log = logging.getLogger(__name__)
T = TypeVar("T")
Json = dict[str, Any]

AGENT_VERSION: Final = __version__
FIRST_EVENTS_BACKLOG = 100  # events a newly installed agent forwards from before its time
RESULT_RESEND_S = 600.0  # results this recent are sent again at every new session
FAN_RENEW_FRACTION = 0.25  # renew the held fan override when this much of it is left
COMMAND_QUEUE = 1000


class Mode(StrEnum):
    NORMAL = "normal"
    SAFE = "safe"
    AUTONOMOUS = "autonomous"


@dataclass(frozen=True, slots=True)
class _Batch:
    prev: int
    seq: int
    sent_at: float


@dataclass
class _Flow:
    """One stream's sending state in a session."""

    acked: int
    sent_to: int
    inflight: deque[_Batch] = field(default_factory=deque)
    stale: int = 0  # acks still due for batches abandoned by a go-back (their gaps ignored)
    epoch: int = 0  # bumped at each go-back; a batch read before it is not sent


def _clip(text: str, limit: int) -> str:
    """``text`` within the protocol's length limit."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class EdgeAgent:
    """The agent of one device. ``await run(stop)`` until ``stop`` is set.

    ``device_id`` defaults to the one in ``settings.credentials_path()``; ``power`` to
    running the configured host commands when ``settings.power_commands`` is on, else to
    refusing reboot / shutdown.
    """

    def __init__(
        self,
        settings: EdgeSettings,
        metal: MetalClient,
        store: EdgeStore,
        dialer: Dialer,
        *,
        clock: Clock | None = None,
        power: PowerActions | None = None,
        device_id: str | None = None,
        agent_version: str = AGENT_VERSION,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.metal = metal
        self.store = store
        self.dialer = dialer
        self.clock: Clock = clock or SystemClock()
        if power is None:
            power = (
                CommandPower(settings.reboot_command, settings.shutdown_command, self.clock)
                if settings.power_commands
                else RefusePower()
            )
        self.power = power
        self.device_id = device_id or Credentials.load(settings.credentials_path()).device_id
        self.agent_version = agent_version
        self._backoff = Backoff(
            settings.backoff_base_s, settings.backoff_cap_s, rng or random.Random()
        )
        self._held = Held(
            interval_s=settings.sampling_interval_s, report_interval_s=settings.report_interval_s
        )
        self._executor = Executor(metal, self._held)
        self._runner = CommandRunner(metal, self.power, self.clock, self._switch_safe)
        self._mode = Mode.NORMAL
        self._conn: Connection | None = None
        self._flows: dict[str, _Flow] = {}
        self._desired: Twin | None = None
        self._reported: Twin | None = None
        self._applied = 0
        self._rejected: dict[str, str] = {}
        self._hardware: Json = {}
        self._pending: list[Point] = []
        self._pending_since = self.clock.monotonic()  # when the first pending one was taken
        self._steps = WallSteps()
        self._writing = 0  # points being written to the outbox right now
        self._live: dict[str, float] = {}
        self._sampled: list[Any] | None = None  # [seq, updated_at] of the newest reading
        self._sampled_at: float | None = None
        self._last_flush = self.clock.monotonic()
        self._disconnected_since: float | None = self.clock.monotonic()
        self._fan_tried = float("-inf")
        self._started_at = self.clock.now()
        self._metal_ok = True
        self._refused: Goodbye | None = None
        self._wake = asyncio.Event()
        self._reconcile_needed = asyncio.Event()
        self._commands: asyncio.Queue[Command] = asyncio.Queue(COMMAND_QUEUE)
        self._report_lock = asyncio.Lock()
        self._counts: dict[str, int] = dict.fromkeys(
            (
                "dials",
                "dial_failures",
                "sessions",
                "samples",
                "points",
                "events",
                "batches_sent",
                "resends",
                "commands",
            ),
            0,
        )

    # ------------------------------------------------------------------ public

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def stats(self) -> Json:
        """Counters and state for logs, tests and benchmarks (no I/O)."""
        refused = self._refused
        return {
            "device_id": self.device_id,
            "mode": self._mode.value,
            "connected": self.connected,
            **self._counts,
            "pending_points": len(self._pending) + self._writing,
            "sampled_at": self._sampled_at,
            "outbox": {s: self.store.depth(s) for s in STREAMS},
            "dropped": {s: self.store.dropped(s) for s in STREAMS},
            "acked": {s: f.acked for s, f in self._flows.items()},
            "desired_version": self._desired.version if self._desired else 0,
            "applied_desired_version": self._applied,
            "reported_version": self._reported.version if self._reported else 0,
            "rejected": dict(self._rejected),
            "refused": None
            if refused is None
            else {"code": refused.code, "message": refused.message, "retry": refused.retry},
        }

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; then the samples not yet in the outbox are stored
        and the link is closed. Works offline from the first second: the stored desired
        state is applied at once, whether or not the server can be reached."""
        self._started_at = self.clock.now()
        await self._load()
        self._reconcile_needed.set()
        loops: dict[str, Callable[[], Awaitable[None]]] = {
            "sampler": self._sample_loop,
            "events": self._events_loop,
            "reconcile": self._reconcile_loop,
            "commands": self._command_loop,
            "link": self._link_loop,
        }
        tasks = [asyncio.create_task(self._supervise(n, fn), name=n) for n, fn in loops.items()]
        try:
            await stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._flush(force=True)
            conn, self._conn = self._conn, None
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()

    # ------------------------------------------------------------------ plumbing

    async def _supervise(self, name: str, fn: Callable[[], Awaitable[None]]) -> None:
        """Run one loop; a bug in it is logged and the loop restarted, never fatal."""
        while True:
            try:
                await fn()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("edge agent: the %s loop failed; restarting it", name)
                await self.clock.sleep(1.0)

    async def _io(self, fn: Callable[..., T], *args: Any) -> T:
        """A store call: in a thread (a commit may block for a while on a board's flash), or
        on the loop with ``store_inline`` (many agents in one process: no thread hop)."""
        if self.settings.store_inline:
            return fn(*args)
        return await asyncio.to_thread(fn, *args)

    async def _wait(self, event: asyncio.Event, timeout_s: float | None) -> None:
        """Until ``event`` is set, or ``timeout_s`` passed (None: no timeout)."""
        if event.is_set():
            return
        if timeout_s is None:
            await event.wait()
            return
        waiter = asyncio.ensure_future(event.wait())
        sleeper = asyncio.ensure_future(self.clock.sleep(timeout_s))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            sleeper.cancel()

    async def _load(self) -> None:
        s = self.store
        try:
            self._mode = Mode(await self._io(s.mode))
        except ValueError:
            self._mode = Mode.NORMAL
        self._desired = await self._io(s.desired)
        if self._sampled is None:
            self._sampled = await self._io(s.sampled)
            if self._sampled is not None and isinstance(self._sampled[-1], int | float):
                self._sampled_at = float(self._sampled[-1])
        self._reported = await self._io(s.reported)
        if self._reported is not None:
            self._applied = self._reported.applied_desired_version
            self._rejected = dict(self._reported.rejected)
        log.info(
            "edge agent %s for device %s: mode %s, desired v%d, outbox %d telemetry / %d events",
            self.agent_version,
            self.device_id,
            self._mode.value,
            self._desired.version if self._desired else 0,
            s.depth("telemetry"),
            s.depth("events"),
        )

    async def _send(self, msg: Message) -> bool:
        """Send on the open link; ``False`` when there is none (the session loop notices)."""
        conn = self._conn
        if conn is None:
            return False
        try:
            await conn.send(msg)
        except ConnectionClosed:
            return False
        return True

    # ------------------------------------------------------------------ modes

    async def _set_mode(self, mode: Mode) -> None:
        if mode is self._mode:
            return
        old, self._mode = self._mode, mode
        await self._io(self.store.set_mode, mode.value)
        level = logging.WARNING if Mode.SAFE in (mode, old) else logging.INFO
        log.log(level, "edge agent mode %s → %s", old.value, mode.value)
        if mode is Mode.SAFE and self._held.fan_pct is not None:
            # SAFE leaves the fan to metal's curve; the desired override returns after.
            self._held.fan_pct, self._held.fan_active = None, False
            with contextlib.suppress(WraleError):
                await self.metal.clear_fan()
        self._reconcile_needed.set()  # leaving SAFE applies desired; any change reports

    async def _switch_safe(self, on: bool) -> str:
        if on:
            await self._set_mode(Mode.SAFE)
            return "SAFE mode on: desired state is stored but not applied; safety commands only"
        if self._mode is not Mode.SAFE:
            return f"not in SAFE mode (mode is {self._mode.value})"
        await self._set_mode(Mode.NORMAL if self.connected else Mode.AUTONOMOUS)
        return "SAFE mode off: applying the desired state"

    async def _check_autonomous(self) -> None:
        since = self._disconnected_since
        if (
            self._mode is Mode.NORMAL
            and since is not None
            and self.clock.monotonic() - since >= self.settings.autonomous_after_s
        ):
            await self._set_mode(Mode.AUTONOMOUS)

    # ------------------------------------------------------------------ sampling

    async def _sample_loop(self) -> None:
        next_at = self.clock.monotonic()
        while True:
            interval = self._held.interval_s
            next_at += interval
            delay = next_at - self.clock.monotonic()
            if delay < -interval:  # fell behind: skip, never burst
                next_at = self.clock.monotonic()
                delay = 0.0
            await self.clock.sleep(max(delay, 0.0))
            await self._sample()
            if self.clock.monotonic() - self._last_flush >= self._held.report_interval_s:
                await self._flush()
            await self._check_autonomous()

    async def _sample(self) -> None:
        try:
            state = await self.metal.state()
        except WraleError as exc:
            if self._metal_ok:
                log.warning("metald does not answer: %s", exc.message)
                self._metal_ok = False
            return
        if not self._metal_ok:
            log.info("metald answers again")
            self._metal_ok = True
        at = state.get("updated_at")
        key = [state.get("seq"), at]
        if not isinstance(at, int | float) or key == self._sampled:
            return  # no new reading since the last sample (also across agent restarts)
        pts = points(state)
        self._live = {m: v for m, _, v in pts}
        step = self._steps.observe(self.clock.now(), self.clock.monotonic())
        if step:
            log.warning(
                "the wall clock was set (%+.0f s): %d reading(s) not yet stored re-timed",
                step,
                len(self._pending),
            )
            self._pending, pts = retime(self._pending, pts, step, self.clock.now())
        if self._pending and len(self._pending) + len(pts) > self.settings.batch_max_points:
            await self._flush(force=True)  # stored with the key of the readings it holds
        if not self._pending:
            self._pending_since = self.clock.monotonic()
        self._sampled, self._sampled_at = key, float(at)
        self._pending.extend(pts)
        self._counts["samples"] += 1
        thermal = state.get("thermal")
        if isinstance(thermal, dict):
            await self._hold_fan(thermal)

    async def _flush(self, *, force: bool = False) -> None:
        """Append the samples taken since the last report as one outbox row. While the
        wall clock was never set (1970) they wait to be re-timed (``HOLD_S`` at most, one
        batch at most; ``force``: not at all)."""
        self._last_flush = self.clock.monotonic()
        if not self._pending:
            if self.store.persist_due():  # held rows unacknowledged too long: written now
                await self._io(self.store.flush)
            return
        if (
            not force
            and not plausible(self.clock.now())
            and self.clock.monotonic() - self._pending_since < HOLD_S
        ):
            return
        pts, self._pending = self._pending, []
        rows = [list(p) for p in pts]
        append = partial(self.store.append, "telemetry", rows, sampled=self._sampled)
        # Counted first: once handed to the thread the row is stored even if we are
        # cancelled while waiting for it.
        self._counts["points"] += len(pts)
        self._writing += len(pts)
        try:
            await self._io(append)
        except Exception:
            self._counts["points"] -= len(pts)
            if len(self._pending) < 10 * self.settings.batch_max_points:
                self._pending[:0] = pts  # kept for the next try (bounded)
            raise
        finally:
            self._writing -= len(pts)
        self._wake.set()

    async def _hold_fan(self, thermal: Json) -> None:
        """Keep the desired fan override in force: renew it before metal lets it lapse,
        and retry (every ``duration/4``, at most every 30 s) while metal refuses it."""
        h = self._held
        if h.fan_pct is None or self._mode is Mode.SAFE:
            return
        override = thermal.get("override")
        remaining = override.get("remaining_s") if isinstance(override, dict) else None
        if isinstance(remaining, int | float) and remaining > h.fan_duration_s * FAN_RENEW_FRACTION:
            return
        now = self.clock.monotonic()
        if now - self._fan_tried < min(30.0, max(1.0, h.fan_duration_s / 4)):
            return
        self._fan_tried = now
        try:
            await self.metal.set_fan(h.fan_pct, h.fan_duration_s)
        except WraleError as exc:
            changed = h.fan_active or self._rejected.get("fan.override_pct") != exc.message
            h.fan_active = False
            self._rejected["fan.override_pct"] = exc.message
        else:
            changed = not h.fan_active or "fan.override_pct" in self._rejected
            h.fan_active = True
            self._rejected.pop("fan.override_pct", None)
        if changed:
            await self._report()

    # ------------------------------------------------------------------ metald events

    async def _events_loop(self) -> None:
        """Forward metald's events into the outbox, resuming after the last one stored."""
        failing = False
        while True:
            try:
                since = await self._events_start()
                async for e in self.metal.stream_events(since_id=since):
                    eid = e.get("id")
                    if not isinstance(eid, int) or eid <= since:
                        continue
                    body = [protocol_event(e)]
                    self._counts["events"] += 1  # counted first, like points
                    try:
                        await self._io(partial(self.store.append, "events", body, events_since=eid))
                    except Exception:
                        self._counts["events"] -= 1
                        raise
                    since = eid
                    self._wake.set()
                    at = e.get("at")
                    if (
                        e.get("type") == "METALD_STARTED"
                        and isinstance(at, int | float)
                        and at >= self._started_at
                    ):
                        self._reconcile_needed.set()  # a restarted metald forgot the twin
                    if failing:
                        log.info("metald's event stream is back")
                        failing = False
            except WraleError as exc:
                if not failing:
                    log.warning("metald's event stream failed: %s", exc.message)
                    failing = True
            await self.clock.sleep(self.settings.metal_retry_s)

    async def _events_start(self) -> int:
        since = await self._io(self.store.events_since)
        latest = await self.metal.events(limit=1)
        newest = int(latest[-1]["id"]) if latest and isinstance(latest[-1].get("id"), int) else 0
        if since is None:  # a new agent: forward the recent past, not months of it
            recent = await self.metal.events(limit=FIRST_EVENTS_BACKLOG)
            ids = [e["id"] for e in recent if isinstance(e.get("id"), int)]
            return min(ids) - 1 if ids else 0
        if newest < since:
            log.warning(
                "metald's event store was reset (newest %d < %d): following anew", newest, since
            )
            return 0
        return since

    # ------------------------------------------------------------------ twin

    async def _reconcile_loop(self) -> None:
        while True:
            await self._reconcile_needed.wait()
            self._reconcile_needed.clear()
            try:
                await self._reconcile()
            except WraleError as exc:
                log.warning("cannot apply the desired state yet: %s", exc.message)
                await self.clock.sleep(self.settings.metal_retry_s)
                self._reconcile_needed.set()

    async def _reconcile(self) -> None:
        desired = self._desired
        if desired is not None and self._mode is not Mode.SAFE:
            current = await self._current()
            steps = plan(current, desired.doc)
            if steps:
                log.info("applying desired state v%d: %d step(s)", desired.version, len(steps))
            rejected = await self._executor.apply(steps, current)
            self._rejected = rejected
            self._applied = desired.version
        await self._report()

    async def _on_desired(self, msg: Desired) -> None:
        if self._desired is not None and msg.version <= self._desired.version:
            return
        await self._io(self.store.save_desired, msg.version, msg.doc)  # durable before acting
        self._desired = Twin(msg.version, dict(msg.doc))
        log.info("desired state v%d received", msg.version)
        self._reconcile_needed.set()

    async def _current(self) -> Json:
        """What the board runs now, in the shape of the reported document."""
        m = self.metal
        policies = await m.policies()
        sec = await m.security()
        gpio = await m.gpio()
        if not self._hardware:
            health = await m.health()
            self._hardware = {k: health[k] for k in ("backend", "model", "device") if k in health}
        outputs: Json = {}
        for name, line in gpio.items():
            if isinstance(line, dict) and line.get("direction") == "out":
                pwm = line.get("pwm")
                outputs[name] = dict(pwm) if isinstance(pwm, dict) else {"value": line.get("value")}
        return {
            "agent_version": self.agent_version,
            "mode": self._mode.value,
            "thermal": policies.get("thermal", {}),
            "power": policies.get("power", {}),
            "security": policies.get("security", {}),
            "sampling": self._held.sampling(),
            "fan": self._held.fan(),
            "tamper": {k: sec.get(k) for k in ("armed", "level", "lockdown")},
            "gpio": outputs,
            "config": dict(self._held.config),
            "hardware": dict(self._hardware),
            "applied_desired_version": self._applied,
        }

    async def _report(self, *, resend: bool = False) -> None:
        """Store a new reported version if anything changed, and send it (or, with
        ``resend``, the current one) when connected."""
        async with self._report_lock:
            doc: Json | None
            try:
                doc = await self._current()
            except WraleError as exc:
                log.debug("reported state not refreshed: %s", exc.message)
                doc = self._reported.doc if self._reported else None
            if doc is None:
                return
            prev = self._reported
            changed = (
                prev is None
                or bool(diff(prev.doc, doc))
                or prev.rejected != self._rejected
                or prev.applied_desired_version != self._applied
            )
            if changed:
                twin = Twin(
                    (prev.version if prev else 0) + 1, doc, self._applied, dict(self._rejected)
                )
                await self._io(self.store.save_reported, twin)
                self._reported = twin
            last = self._reported
            if last is not None and (changed or resend):
                await self._send(
                    Reported(
                        last.version,
                        last.doc,
                        last.applied_desired_version,
                        {k[:200]: _clip(v, 1000) for k, v in last.rejected.items()},
                    )
                )

    # ------------------------------------------------------------------ commands

    async def _command_loop(self) -> None:
        while True:
            cmd = await self._commands.get()
            prior = await self._io(self.store.command_result, cmd.id)
            if prior is not None:  # redelivered: answer again, never run twice
                result = CommandResult(**prior)
            else:
                self._counts["commands"] += 1
                result = await self._runner.run(cmd, self._mode.value)
                log.info(
                    "command %s %s: %s%s",
                    cmd.op,
                    cmd.id,
                    result.status,
                    f" ({result.reason})" if result.reason else "",
                )
                body = {
                    "id": result.id,
                    "status": result.status,
                    "reason": result.reason,
                    "result": result.result,
                }
                await self._io(self.store.save_command_result, cmd.id, body, self.clock.now())
                if result.status == "succeeded":
                    await self._report()
            if await self._send(result):
                await self._io(self.store.mark_sent, cmd.id)

    def _on_command(self, cmd: Command) -> None:
        try:
            self._commands.put_nowait(cmd)
        except asyncio.QueueFull:
            log.warning("command queue full: %s (%s) dropped; it will expire", cmd.id, cmd.op)

    # ------------------------------------------------------------------ the link

    async def _hello(self) -> Hello:
        acked = {s: await self._io(self.store.acked, s) for s in STREAMS}
        return Hello(
            device_id=self.device_id,
            agent_version=self.agent_version,
            acked=acked,
            desired_version=self._desired.version if self._desired else 0,
            reported_version=self._reported.version if self._reported else 0,
            mode=self._mode.value,
            session=uuid.uuid4().hex,
        )

    async def _link_loop(self) -> None:
        """Dial, run the session, and after it ends wait (backoff with full jitter)."""
        failures = 0
        while True:
            self._counts["dials"] += 1
            try:
                conn, welcome = await self.dialer(await self._hello())
            except Refused as exc:
                await self._on_goodbye(exc.goodbye)
            except (DialError, ConnectionClosed, OSError, TimeoutError) as exc:
                self._counts["dial_failures"] += 1
                failures += 1
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(level, "cannot reach the central server: %s", exc)
            else:
                failures = 0
                started = self.clock.monotonic()
                try:
                    await self._session(conn, welcome)
                except Refused as exc:
                    await self._on_goodbye(exc.goodbye)
                except ConnectionClosed as exc:
                    log.info("link to the central server lost: %s", exc.reason)
                finally:
                    self._conn = None
                    self._flows = {}
                    self._disconnected_since = self.clock.monotonic()
                    with contextlib.suppress(Exception):
                        await conn.close()
                if self.clock.monotonic() - started >= self.settings.backoff_reset_s:
                    self._backoff.reset()
            if self._refused is not None and not self._refused.retry:
                log.error(
                    "the central server refused this device for good (%s: %s); not "
                    "reconnecting. Telemetry keeps being stored; restart the agent once "
                    "the device is allowed again.",
                    self._refused.code,
                    self._refused.message,
                )
                return
            await self.clock.sleep(self._backoff.next_delay())

    async def _on_goodbye(self, goodbye: Goodbye) -> None:
        self._refused = goodbye
        log.warning(
            "the central server ended the session: %s (%s)%s",
            goodbye.code,
            goodbye.message,
            "" if goodbye.retry else "; it says not to retry",
        )
        if goodbye.code == "quarantined":
            await self._set_mode(Mode.SAFE)

    async def _session(self, conn: Connection, welcome: Welcome) -> None:
        self._counts["sessions"] += 1
        self._refused = None
        flows: dict[str, _Flow] = {}
        for stream in STREAMS:
            acked = await self._io(self.store.welcome, stream, welcome.acked.get(stream, 0))
            flows[stream] = _Flow(acked, acked)
        self._flows = flows
        self._conn = conn
        self._disconnected_since = None
        log.info(
            "connected to the central server (server %s; stored telemetry %d, events %d)",
            welcome.server_version,
            flows["telemetry"].acked,
            flows["events"].acked,
        )
        if self._mode is Mode.AUTONOMOUS:
            await self._set_mode(Mode.NORMAL)
        await self._report(resend=True)
        for cid, body in await self._io(
            self.store.results_to_send, self.clock.now() - RESULT_RESEND_S
        ):
            if await self._send(CommandResult(**body)):
                await self._io(self.store.mark_sent, cid)
        heartbeat_s = welcome.heartbeat_s if welcome.heartbeat_s > 0 else self.settings.heartbeat_s
        tasks = [
            asyncio.create_task(self._receiver(conn)),
            asyncio.create_task(self._sender(conn)),
            asyncio.create_task(self._heartbeat(conn, heartbeat_s)),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                t.result()
            raise ConnectionClosed("session ended")
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _receiver(self, conn: Connection) -> None:
        while True:
            try:
                msg = await conn.recv()
            except ProtocolError as exc:
                log.warning("ignored a bad frame from the central server: %s", exc)
                continue
            if isinstance(msg, Ack):
                await self._on_ack(msg)
            elif isinstance(msg, Desired):
                await self._on_desired(msg)
            elif isinstance(msg, Command):
                self._on_command(msg)
            elif isinstance(msg, Goodbye):
                raise Refused(msg)
            else:
                log.debug("ignored %s from the central server", msg.T)

    async def _heartbeat(self, conn: Connection, interval_s: float) -> None:
        while True:
            await self.clock.sleep(interval_s)
            status = Status(
                ts=self.clock.now(),
                mode=self._mode.value,
                outbox={s: self.store.depth(s) for s in STREAMS},
                dropped={s: self.store.dropped(s) for s in STREAMS},
                live=dict(self._live),
            )
            await conn.send(status)
            await self._report()

    # ------------------------------------------------------------------ store and forward

    async def _on_ack(self, ack: Ack) -> None:
        flow = self._flows.get(ack.stream)
        if flow is None:
            return
        if ack.seq > flow.acked:
            await self._io(self.store.ack, ack.stream, ack.seq)
            flow.acked = ack.seq
            while flow.inflight and flow.inflight[0].seq <= ack.seq:
                flow.inflight.popleft()
            flow.sent_to = max(flow.sent_to, ack.seq)
        if flow.stale > 0:
            flow.stale -= 1
        elif ack.gap:
            log.info("the server misses %s after seq %d: resending from there", ack.stream, ack.seq)
            self._go_back(flow, ack.seq, answered=1)
        self._wake.set()

    def _go_back(self, flow: _Flow, to: int, *, answered: int) -> None:
        """Resend everything after ``to`` (go-back-N); acks still due for the batches in
        flight are expected and their gap flags ignored."""
        flow.stale += max(0, len(flow.inflight) - answered)
        flow.inflight.clear()
        flow.acked = min(flow.acked, to)
        flow.sent_to = flow.acked
        flow.epoch += 1
        self._counts["resends"] += 1

    def _batch(self, stream: str, prev: int, rows: list[Row]) -> Message:
        seq = rows[-1].seq
        if stream == "telemetry":
            pts = [(str(p[0]), float(p[1]), float(p[2])) for r in rows for p in r.items]
            return TelemetryBatch(seq=seq, prev=prev, points=pts)
        return EventsBatch(seq=seq, prev=prev, events=[e for r in rows for e in r.items])

    async def _sender(self, conn: Connection) -> None:
        s = self.settings
        pace = TokenBucket(s.drain_batches_per_s, float(s.window_batches))
        while True:
            self._wake.clear()
            now = self.clock.monotonic()
            for flow in self._flows.values():
                if flow.inflight and now - flow.inflight[0].sent_at >= s.ack_timeout_s:
                    log.info("no ack within %g s: resending", s.ack_timeout_s)
                    self._go_back(flow, flow.acked, answered=0)
            sent = False
            for stream in ("events", "telemetry"):  # events first: they are rarer and urgent
                flow = self._flows[stream]
                if len(flow.inflight) >= s.window_batches or flow.sent_to >= self.store.head(
                    stream
                ):
                    continue  # the window is full, or nothing new was stored (no read)
                limit = s.batch_max_events if stream == "events" else s.batch_max_points
                epoch, prev = flow.epoch, flow.sent_to
                rows = await self._io(self.store.rows_after, stream, prev, limit)
                if not rows:
                    continue
                while not pace.take(self.clock.monotonic()):  # the bounded drain rate
                    await self.clock.sleep(pace.wait_s(self.clock.monotonic()))
                if flow.epoch != epoch or flow.sent_to != prev:
                    continue  # a go-back or an ack moved the stream while we paced
                await conn.send(self._batch(stream, prev, rows))
                self._counts["batches_sent"] += 1
                if flow.epoch != epoch:
                    flow.stale += 1  # abandoned while sending: its ack is expected, stale
                    continue
                flow.inflight.append(_Batch(prev, rows[-1].seq, self.clock.monotonic()))
                flow.sent_to = rows[-1].seq
                sent = True
            if not sent:
                # Woken by a new row, an ack or a go-back; else at the next ack timeout.
                due = [
                    f.inflight[0].sent_at + s.ack_timeout_s
                    for f in self._flows.values()
                    if f.inflight
                ]
                timeout = max(min(due) - self.clock.monotonic(), 0.0) if due else None
                await self._wait(self._wake, timeout)
