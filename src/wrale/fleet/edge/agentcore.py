"""What every part of the edge agent shares: its state, made in one ``__init__``; running a
store call; sending on the open link; loading what was stored; the modes. The parts (link,
outflow, twins, intake, command queue) are mixins of ``EdgeAgent`` over ``AgentCore``; one
calls another only through the hooks declared here. No loops, no protocol handling here.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, TypeVar

from wrale import __version__
from wrale.fleet.edge.clockwatch import WallSteps
from wrale.fleet.edge.commands import CommandPower, CommandRunner, PowerActions, RefusePower
from wrale.fleet.edge.credentials import Credentials
from wrale.fleet.edge.executor import Executor, Held
from wrale.fleet.edge.runner import JobRunner
from wrale.fleet.edge.settings import EdgeSettings
from wrale.fleet.edge.store import EdgeStore, Twin
from wrale.fleet.edge.telemetry import Point
from wrale.fleet.sync.backoff import Backoff
from wrale.fleet.sync.protocol import Ack, Command, Desired, Goodbye, Message
from wrale.fleet.sync.transport.base import Connection, ConnectionClosed, Dialer
from wrale.metal.core.ports import MetalClient
from wrale.shared.clock import Clock, SystemClock
from wrale.shared.errors import WraleError

log = logging.getLogger("wrale.fleet.edge.agent")  # one logger for all the agent's parts
T = TypeVar("T")
Json = dict[str, Any]

AGENT_VERSION: Final = __version__
COMMAND_QUEUE = 1000


class Mode(StrEnum):
    NORMAL = "normal"
    SAFE = "safe"
    AUTONOMOUS = "autonomous"


@dataclass(frozen=True, slots=True)
class Batch:
    """A batch sent in a session and not yet acknowledged."""

    prev: int
    seq: int
    sent_at: float


@dataclass
class Flow:
    """One stream's sending state in a session."""

    acked: int
    sent_to: int
    inflight: deque[Batch] = field(default_factory=deque)
    stale: int = 0  # acks still due for batches abandoned by a go-back (their gaps ignored)
    epoch: int = 0  # bumped at each go-back; a batch read before it is not sent


class AgentCore(abc.ABC):
    """The agent's shared state and plumbing (see ``EdgeAgent`` for the arguments)."""

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
        jobs: JobRunner | None = None,
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
        self._jobs = jobs or JobRunner(
            metal,
            allow=settings.job_allow,
            clock=self.clock,
            scope=settings.job_scope,
            state_dir=settings.state_dir,
            report_every_s=settings.job_report_s,
        )
        self._mode = Mode.NORMAL
        self._conn: Connection | None = None
        self._flows: dict[str, Flow] = {}
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
        # the first report comes after a random part of the interval: boards started
        # together (a site's power back, a simulated fleet) do not all report in the same
        # instant ever after, which would hand the central one burst per interval
        phase = random.random() * settings.report_interval_s
        self._last_flush = self.clock.monotonic() - phase
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

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def connected(self) -> bool:
        return self._conn is not None

    # ------------------------------------------------------------------ hooks of the parts

    @abc.abstractmethod
    async def _report(self, *, resend: bool = False) -> None:
        """Store a new reported version if anything changed, and send it (``twins``)."""

    @abc.abstractmethod
    async def _hold_fan(self, thermal: Json) -> None:
        """Keep the desired fan override in force (``twins``)."""

    @abc.abstractmethod
    async def _on_desired(self, msg: Desired) -> None:
        """A desired twin from the server (``twins``)."""

    @abc.abstractmethod
    async def _on_ack(self, ack: Ack) -> None:
        """An ack from the server (``outflow``)."""

    @abc.abstractmethod
    async def _sender(self, conn: Connection) -> None:
        """Send the outbox on ``conn`` for as long as the session lasts (``outflow``)."""

    @abc.abstractmethod
    def _on_command(self, cmd: Command) -> None:
        """A command from the server, queued to run (``commandqueue``)."""

    # ------------------------------------------------------------------ plumbing

    async def _io(self, fn: Callable[..., T], *args: Any) -> T:
        """A store call: in a thread (a commit may block for a while on a board's flash), or
        on the loop with ``store_inline`` (many agents in one process: no thread hop)."""
        if self.settings.store_inline:
            return fn(*args)
        return await asyncio.to_thread(fn, *args)

    async def _io_whole(self, fn: Callable[..., T], *args: Any) -> T:
        """``_io`` that runs to its end even when the caller is cancelled meanwhile (the
        caller's cancellation is raised once it has): cancelling ``to_thread`` before the
        thread picks the call up would drop it, and a sample handed to the outbox on the
        agent's way down must be stored, not lost."""
        if self.settings.store_inline:
            return fn(*args)
        call = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        try:
            return await asyncio.shield(call)
        except asyncio.CancelledError:
            await asyncio.wait({call})
            if not call.cancelled() and call.exception() is not None:
                log.warning("edge agent: a store call failed while stopping: %s", call.exception())
            raise

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
            self._jobs.restore(self._reported.doc.get("jobs"))
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
