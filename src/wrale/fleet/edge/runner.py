"""``JobRunner``: the board runs the work of its desired ``jobs`` section and reports each
placement in the reported one (docs/jobs.md). ``jobspec.plan`` says what to start, stop
or re-cap; this module does it without blocking the agent's loop (asyncio subprocesses,
``/proc`` and files read in a thread) and never lets a bad entry or a failed start out of
its loop: they become ``failed`` placements with the reason.

After an agent restart the placements still desired are started again; the processes
the previous agent left running (``jobs.json``, and in systemd mode every
``wrale-job-*.scope``) are ended first, and those no longer desired reported once as
``stopped``. A placement that had finished (it ran, then succeeded or failed) is restored
from the stored reported document and not run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import msgspec

from wrale.fleet.edge.jobproc import (
    TAIL_BYTES,
    CommandRun,
    Launch,
    ScopeMode,
    StartedRecord,
    cpu_seconds,
    detect_launch,
    end_strays,
    run_command,
    signal_group,
    start_ticks,
)
from wrale.fleet.edge.jobsim import SimJobLoad, account
from wrale.fleet.edge.jobspec import (
    ACTIVE,
    Fail,
    Forget,
    Json,
    Known,
    ProcessWork,
    SetQuota,
    SimLoadWork,
    Start,
    State,
    Step,
    Stop,
    clip,
    job_env,
    plan,
)
from wrale.fleet.edge.jobstate import Placement, exit_reason
from wrale.metal.core.ports import MetalClient
from wrale.shared.clock import Clock, SystemClock

log = logging.getLogger("wrale.fleet.edge.jobs")

STOP_GRACE_S: Final = 10.0  # SIGTERM, then SIGKILL after this
REPORT_EVERY_S: Final = 30.0  # CPU seconds and output of running jobs, at most this often
RETRY_S: Final = 1.0  # metald not answering a sim_load
MAX_NAP_S: Final = 60.0
TAIL_BUDGET_BYTES: Final = 32 * 1024  # all tails of one report (the server takes 64 KiB)
RECORD_FILE: Final = "jobs.json"
OUTLIVED: Final = "ended at agent start: it outlived the agent that started it"


class JobRunner:
    """Runs the desired placements of one board. ``want()`` gives it the desired section,
    ``reported()`` is the reported one, ``run(report)`` is its loop (``report`` is called
    after a change), ``close()`` stops everything when the agent stops.

    ``launch`` defaults to what ``detect_launch(scope)`` finds at the first ``run``;
    ``state_dir`` holds ``jobs.json`` (``None``: no record across restarts).
    """

    def __init__(
        self,
        metal: MetalClient,
        *,
        allow: Sequence[Sequence[str]] = (),
        clock: Clock | None = None,
        launch: Launch | None = None,
        scope: ScopeMode = "auto",
        state_dir: Path | None = None,
        stop_grace_s: float = STOP_GRACE_S,
        report_every_s: float = REPORT_EVERY_S,
        command_run: CommandRun = run_command,
    ) -> None:
        self.metal = metal
        self.allow = tuple(tuple(p) for p in allow)
        self.clock: Clock = clock or SystemClock()
        self.launch = launch
        self.scope: ScopeMode = scope
        self.stop_grace_s = stop_grace_s
        self.report_every_s = report_every_s
        self._command_run = command_run
        self._record = StartedRecord(state_dir / RECORD_FILE if state_dir else None)
        self._recorded: dict[str, tuple[int, int]] | None = None  # as last saved
        self._placements: dict[str, Placement] = {}
        self._desired: Any = None
        self._told = False  # want() was called: plan nothing before (restored ones stay)
        self._wake = asyncio.Event()
        self._started = False
        self._changed = False  # a state changed: report now
        self._dirty = False  # CPU seconds or output changed: report when due
        self._last_report = -math.inf
        self._sim = SimJobLoad(metal)

    # ------------------------------------------------------------------ the agent's side

    def want(self, jobs: Any) -> str | None:
        """The desired ``jobs`` section (``None``: none). Returns why the section itself is
        unusable (then nothing is desired), or ``None``."""
        self._desired, self._told = jobs, True
        self._wake.set()
        return None if jobs is None or isinstance(jobs, Mapping) else "jobs must be an object"

    def reported(self) -> dict[str, Json]:
        """The reported ``jobs`` section (no I/O). With many placements each output tail
        is shortened so the whole section stays within ``TAIL_BUDGET_BYTES``."""
        tail = min(TAIL_BYTES, TAIL_BUDGET_BYTES // max(1, len(self._placements)))
        return {p: pl.entry(tail) for p, pl in sorted(self._placements.items())}

    def sent(self, jobs: Any) -> None:
        """A reported document holding ``jobs`` was sent: the ``stopped`` placements in it
        have been reported once and are dropped."""
        if not isinstance(jobs, Mapping):
            return
        for p, e in jobs.items():
            pl = self._placements.get(p)
            delivered = isinstance(e, Mapping) and e.get("state") == "stopped"
            if pl is not None and pl.state == "stopped" and delivered:
                del self._placements[p]
                self._changed = True
                self._wake.set()

    def restore(self, jobs: Any) -> None:
        """Placements from the stored reported document that ended for good (they ran and
        succeeded or failed, or were stopped and not yet reported): kept, not run again."""
        if not isinstance(jobs, Mapping):
            return
        for p, e in jobs.items():
            pl = Placement.ended_from(p, e) if isinstance(p, str) else None
            if pl is not None and p not in self._placements:
                self._placements[p] = pl

    async def run(self, report: Callable[[], Awaitable[None]]) -> None:
        """The runner's loop; ``report`` stores and sends the agent's reported state."""
        if not self._started:
            await self._startup()
            self._started = True
        while True:
            self._wake.clear()
            await self._step()
            now = self.clock.monotonic()
            if self._changed or (self._dirty and now >= self._last_report + self.report_every_s):
                await self._sample_cpu()
                self._changed = self._dirty = False
                self._last_report = now
                await report()
            await self._nap(self._next_wake(now))

    async def close(self) -> None:
        """The agent stops: its jobs stop with it (SIGTERM, SIGKILL after the grace)."""
        for pl in list(self._placements.values()):
            if pl.state in ACTIVE:
                self._stop(pl, "stopped", "the agent stopped")
        tasks = [t for pl in self._placements.values() for t in (pl.watcher, pl.stopper) if t]
        if tasks:
            await asyncio.wait(tasks, timeout=self.stop_grace_s + 5.0)
        await self._sim.clear()
        await self._save_record()

    # ------------------------------------------------------------------ the loop

    async def _startup(self) -> None:
        """End the jobs an earlier agent left running (a board that never ran a job does
        nothing here)."""
        record = await asyncio.to_thread(self._record.load)
        if not record:
            self._recorded = {}
            return
        launch = await self._launch()
        for p in await end_strays(record, self.stop_grace_s):
            if p not in self._placements:
                pl = Placement(p, None, "stopped", reason=OUTLIVED, ended_at=self.clock.now())
                self._placements[p] = pl
                self._changed = True
        await launch.stop_strays()
        await self._save_record()

    async def _launch(self) -> Launch:
        """How processes start here, found at the first need (``detect_launch``)."""
        if self.launch is None:
            self.launch = await detect_launch(self.scope, run=self._command_run)
            log.info("jobs run as %s", self.launch.describe())
        return self.launch

    async def _step(self) -> None:
        known = {p: Known(pl.state, pl.spec) for p, pl in self._placements.items()}
        steps, _ = plan(known, self._desired, self.allow) if self._told else ([], None)
        for step in steps:
            try:
                await self._do(step)
            except Exception as exc:  # a bug must not stop the other placements
                log.exception("job %s: cannot %s", step.placement, type(step).__name__)
                pl = self._placements.setdefault(step.placement, Placement(step.placement, None))
                self._finish(pl, "failed", clip(f"agent error: {exc}"))
        now = self.clock.monotonic()
        for pl in list(self._placements.values()):
            if pl.state in ACTIVE and pl.deadline is not None and now >= pl.deadline:
                self._stop(pl, "succeeded", "duration_s reached")
        sims = [
            pl
            for pl in self._placements.values()
            if pl.state in ACTIVE and pl.end_as is None and isinstance(pl.work, SimLoadWork)
        ]
        try:  # the simulated board's job load follows the active sim_load placements
            outcome = await self._sim.follow(sims, now)
        except Exception:
            log.exception("cannot apply the simulated job load")
            return
        for pl in sims:
            if isinstance(outcome, str):
                self._finish(pl, "failed", outcome)
            elif outcome and pl.state == "starting":
                self._running(pl)
            elif outcome:
                self._dirty = True

    async def _do(self, step: Step) -> None:
        match step:
            case Fail(placement=p, reason=reason):
                pl = self._placements[p] = Placement(p, None)
                self._finish(pl, "failed", reason)
            case Start(placement=p, spec=spec):
                pl = self._placements[p] = Placement(p, spec, quota=spec.cpu_quota_pct)
                self._changed = True
                if isinstance(spec.work, ProcessWork):
                    await self._spawn(pl, spec.work)
            case Stop(placement=p):
                self._stop(self._placements[p], "stopped", None)
            case SetQuota(placement=p, cpu_quota_pct=quota):
                await self._set_quota(self._placements[p], quota)
            case Forget(placement=p):
                del self._placements[p]
                self._changed = True

    async def _nap(self, seconds: float) -> None:
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()

    def _next_wake(self, now: float) -> float:
        waits = [MAX_NAP_S]
        active = [pl for pl in self._placements.values() if pl.state in ACTIVE]
        if active:
            waits.append(self._last_report + self.report_every_s - now)
        for pl in active:
            if pl.deadline is not None:
                waits.append(pl.deadline - now)
            if pl.state == "starting" and isinstance(pl.work, SimLoadWork):
                waits.append(RETRY_S)  # metald did not answer yet
        return max(0.0, min(waits))

    def _finish(self, pl: Placement, state: State, reason: str | None) -> None:
        pl.state, pl.reason = state, reason
        pl.ended_at = self.clock.now()
        pl.deadline = None
        self._changed = True
        self._wake.set()

    def _running(self, pl: Placement) -> None:
        pl.state = "running"
        pl.started_at = self.clock.now()
        spec = pl.spec
        if spec is not None and spec.duration_s is not None:
            pl.deadline = self.clock.monotonic() + spec.duration_s
        self._changed = True

    # ------------------------------------------------------------------ processes

    async def _spawn(self, pl: Placement, work: ProcessWork) -> None:
        launch = await self._launch()
        argv = launch.command(pl.id, work.argv, pl.quota)
        env = {**job_env(work), **launch.extra_env()}
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                cwd="/",
                start_new_session=True,  # its own process group, which a stop signals
            )
        except OSError as exc:
            self._finish(pl, "failed", clip(f"cannot start: {exc}"))
            return
        pl.proc = proc
        pl.ticks = await asyncio.to_thread(start_ticks, proc.pid)
        pl.quota_note = launch.why if pl.quota is not None and not launch.enforced else None
        self._running(pl)
        log.info("job %s started: pid %d, %s", pl.id, proc.pid, clip(" ".join(work.argv), 120))
        pl.watcher = asyncio.create_task(self._watch(pl, proc), name=f"job-{pl.id}")
        await self._save_record()

    async def _watch(self, pl: Placement, proc: asyncio.subprocess.Process) -> None:
        reader = asyncio.create_task(self._read(pl, proc))
        try:
            code = await proc.wait()
            with contextlib.suppress(TimeoutError):  # a daemonized child may hold the pipe
                await asyncio.wait_for(asyncio.shield(reader), 1.0)
        finally:
            reader.cancel()
        pl.proc = None
        pl.exit_code = code
        if self.launch is not None:  # its unit goes before the placement may start again
            with contextlib.suppress(Exception):
                await self.launch.ended(pl.id)
        state, reason = pl.end_as or ("succeeded" if code == 0 else "failed", exit_reason(code))
        self._finish(pl, state, reason)
        log.info("job %s %s (exit %d)", pl.id, state, code)
        await self._save_record()

    async def _read(self, pl: Placement, proc: asyncio.subprocess.Process) -> None:
        stream = proc.stdout
        if stream is None:
            return
        while chunk := await stream.read(65536):
            pl.tail.feed(chunk)
            self._dirty = True

    def _stop(self, pl: Placement, state: State, reason: str | None) -> None:
        """End a placement as ``state``: a process is signalled (its end is reported by
        its watcher), anything else ends now."""
        if pl.end_as is not None:
            return
        pl.end_as = (state, reason)
        proc = pl.proc
        if proc is None or proc.returncode is not None:
            if isinstance(pl.work, SimLoadWork):
                self._dirty |= account(pl, self.clock.monotonic())
            if pl.watcher is None:
                self._finish(pl, state, reason)
            return
        pl.stopper = asyncio.create_task(self._terminate(pl, proc.pid))

    async def _terminate(self, pl: Placement, pid: int) -> None:
        signal_group(pid, signal.SIGTERM)
        watcher = pl.watcher
        if watcher is None:
            return
        sleeper = asyncio.ensure_future(self.clock.sleep(self.stop_grace_s))
        try:
            await asyncio.wait({sleeper, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
        if not watcher.done():
            log.warning("job %s ignored SIGTERM for %g s: killing it", pl.id, self.stop_grace_s)
            signal_group(pid, signal.SIGKILL)

    async def _set_quota(self, pl: Placement, quota: float | None) -> None:
        if pl.spec is not None:
            pl.spec = msgspec.structs.replace(pl.spec, cpu_quota_pct=quota)
        pl.quota = quota
        self._changed = True
        if isinstance(pl.work, ProcessWork) and pl.proc is not None and self.launch:
            pl.quota_note = await self.launch.set_quota(pl.id, quota)

    async def _sample_cpu(self) -> None:
        procs = {pl: pl.proc.pid for pl in self._placements.values() if pl.proc is not None}
        if not procs:
            return
        found = await asyncio.to_thread(lambda: {pl: cpu_seconds(pid) for pl, pid in procs.items()})
        for pl, cpu in found.items():
            if cpu is not None and cpu > pl.cpu_s:
                pl.cpu_s = cpu

    async def _save_record(self) -> None:
        running = {
            p: (pl.proc.pid, pl.ticks)
            for p, pl in self._placements.items()
            if pl.proc is not None and pl.ticks is not None
        }
        if running == self._recorded:
            return
        try:
            await asyncio.to_thread(self._record.save, running)
        except OSError as exc:
            log.warning("cannot record the running jobs: %s", exc)
            return
        self._recorded = running
