"""How a job's process runs on this board: the bounded tail of its output, how it is
launched (a transient systemd scope with ``CPUQuota=`` when systemd is there, else a plain
child in its own process group), its CPU seconds, and the record of the processes started
(``jobs.json``) by which a restarted agent ends the ones that outlived it.
Decides nothing about which work runs (``jobspec``, ``runner``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Final, Literal

from wrale.fleet.edge.jobspec import BASE_ENV, clip

log = logging.getLogger("wrale.fleet.edge.jobs")

TAIL_BYTES: Final = 4096
COMMAND_TIMEOUT_S: Final = 10.0
STRAY_POLL_S: Final = 0.05
UNIT_PREFIX: Final = "wrale-job-"
CommandRun = Callable[[Sequence[str], Mapping[str, str]], Awaitable[tuple[int, str]]]
ScopeMode = Literal["auto", "system", "user", "off"]


class OutputTail:
    """The last ``limit`` bytes of a stream (a ring: older bytes are dropped)."""

    def __init__(self, limit: int = TAIL_BYTES) -> None:
        self.limit = limit
        self._buf = bytearray()

    def feed(self, chunk: bytes) -> None:
        self._buf += chunk
        if len(self._buf) > self.limit:
            del self._buf[: len(self._buf) - self.limit]

    def text(self, limit: int | None = None) -> str:
        """The tail as text (at most ``limit`` bytes of it): a character cut at the start
        is dropped, undecodable bytes and control characters other than tab and newline
        become U+FFFD (a NUL could not be stored centrally)."""
        data = bytes(self._buf[-(limit or self.limit) :])
        start = 0
        while start < min(3, len(data)) and 0x80 <= data[start] <= 0xBF:
            start += 1  # continuation bytes of a character cut off in front
        text = data[start:].decode("utf-8", "replace")
        return "".join(c if c >= " " or c in "\n\t" else "\ufffd" for c in text)


async def run_command(argv: Sequence[str], env: Mapping[str, str]) -> tuple[int, str]:
    """Run a short host command (systemctl, systemd-run): its exit code and output."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(env),
        )
    except OSError as exc:
        return 127, str(exc)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), COMMAND_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return 124, f"{argv[0]} did not answer in {COMMAND_TIMEOUT_S:g} s"
    return proc.returncode or 0, out.decode("utf-8", "replace").strip()


def _host_env(user: bool) -> dict[str, str]:
    """What systemctl / systemd-run need: the minimal environment, plus the user
    manager's address for ``--user`` (never the agent's secrets)."""
    env = dict(BASE_ENV)
    if user:
        runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
        env["XDG_RUNTIME_DIR"] = runtime
        if bus := os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
            env["DBUS_SESSION_BUS_ADDRESS"] = bus
    return env


def unit_name(placement: str) -> str:
    return f"{UNIT_PREFIX}{placement}.scope"


class Launch:
    """A plain child in its own process group: the CPU quota is not enforced (``why``)."""

    enforced = False

    def __init__(self, why: str = "cpu quota not enforced: no systemd") -> None:
        self.why = why

    def command(self, placement: str, argv: Sequence[str], quota: float | None) -> list[str]:
        return list(argv)

    def extra_env(self) -> dict[str, str]:
        return {}

    async def set_quota(self, placement: str, quota: float | None) -> str | None:
        """Apply a new quota; the reason it is not in force, or ``None``."""
        return self.why if quota is not None else None

    async def ended(self, placement: str) -> None:
        """The process ended: release what is left of its unit."""

    async def stop_strays(self) -> None:
        """End jobs left running by an agent that is gone."""

    def describe(self) -> str:
        return f"plain child processes ({self.why})"


def _pct(quota: float) -> str:
    return f"{max(1, round(quota))}%"


class ScopeLaunch(Launch):
    """Each job in a transient scope ``wrale-job-<placement>.scope`` of the system manager
    (or the agent user's, ``user``), its ``CPUQuota=`` set at start and changed with
    ``systemctl set-property --runtime``. ``run`` runs systemctl (injected in tests);
    ``program`` is the systemd-run to start jobs with."""

    enforced = True

    def __init__(
        self,
        *,
        user: bool = False,
        run: CommandRun = run_command,
        program: Sequence[str] = ("systemd-run",),
        systemctl: Sequence[str] = ("systemctl",),
    ) -> None:
        super().__init__("")
        self.user = user
        self.run = run
        self.program = tuple(program)
        self.systemctl = tuple(systemctl)
        self._scope_flag = ("--user",) if user else ()

    def command(self, placement: str, argv: Sequence[str], quota: float | None) -> list[str]:
        props = ["-p", "CPUAccounting=yes"]
        if quota is not None:
            props += ["-p", f"CPUQuota={_pct(quota)}"]
        unit = unit_name(placement).removesuffix(".scope")
        scope = [*self._scope_flag, "--scope", "--quiet", "--collect", "--unit", unit]
        return [*self.program, *scope, *props, "--", *argv]

    def extra_env(self) -> dict[str, str]:
        return {k: v for k, v in _host_env(self.user).items() if k not in BASE_ENV}

    async def _systemctl(self, *args: str) -> tuple[int, str]:
        return await self.run([*self.systemctl, *self._scope_flag, *args], _host_env(self.user))

    async def set_quota(self, placement: str, quota: float | None) -> str | None:
        value = "" if quota is None else _pct(quota)
        code, out = await self._systemctl(
            "set-property", "--runtime", unit_name(placement), f"CPUQuota={value}"
        )
        return None if code == 0 else clip(f"cpu quota not applied: {out or f'exit {code}'}")

    async def ended(self, placement: str) -> None:
        await self._systemctl("stop", unit_name(placement))  # what it left behind, if any

    async def stop_strays(self) -> None:
        code, out = await self._systemctl("stop", f"{UNIT_PREFIX}*.scope")
        if code != 0:
            log.warning("cannot stop the job scopes of an earlier agent: %s", out)

    def describe(self) -> str:
        return f"transient {'user' if self.user else 'system'} scopes with CPUQuota="


async def detect_launch(
    mode: ScopeMode,
    *,
    run: CommandRun = run_command,
    environ: Mapping[str, str] | None = None,
    systemd_dir: Path = Path("/run/systemd/system"),
) -> Launch:
    """How jobs run here. ``auto``: in scopes when ``systemd-run`` is on PATH, systemd is
    the init (``systemd_dir``) and the agent is a systemd service (``INVOCATION_ID``), the
    system manager tried first, then the agent user's; ``system``/``user``: only that one;
    ``off``: plain children. A scope that cannot be made (no polkit rule, no user
    manager) falls back to plain children, saying why."""
    environ = os.environ if environ is None else environ
    if mode == "off":
        return Launch("cpu quota not enforced: job_scope is off")
    import shutil  # here: at module level it costs the board ~0.4 MiB (bz2, lzma) for one call

    if shutil.which("systemd-run") is None:
        return Launch("cpu quota not enforced: no systemd (systemd-run not found)")
    is_init = await asyncio.to_thread(systemd_dir.is_dir)
    if mode == "auto" and not (is_init and environ.get("INVOCATION_ID")):
        return Launch("cpu quota not enforced: the agent does not run under systemd")
    tries = [False, True] if mode == "auto" else [mode == "user"]
    last = ""
    for user in tries:
        probe = ScopeLaunch(user=user, run=run)
        argv = probe.command(f"probe-{os.getpid()}", ["true"], 100.0)
        code, out = await run(argv, _host_env(user))
        if code == 0:
            return probe
        last = out.splitlines()[-1] if out else f"exit {code}"
        log.info("systemd-run%s --scope refused: %s", " --user" if user else "", last)
    return Launch(clip(f"cpu quota not enforced: systemd-run --scope failed: {last}"))


# ----------------------------------------------------------------------------- /proc


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()  # fields from the 3rd (state) on


def start_ticks(pid: int) -> int | None:
    """The live process's start time (clock ticks after boot), which tells a pid from its
    reuse; ``None`` when there is no such process or it is a zombie."""
    fields = _stat_fields(pid)
    if not fields or len(fields) <= 19 or fields[0] == "Z":
        return None
    return int(fields[19])


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds of a job: its scope's cgroup when it has one, else the process with
    the children it waited for (utime + stime + cutime + cstime)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            path = line.split(":", 2)[-1]
            if line.startswith("0::") and path.rsplit("/", 1)[-1].startswith(UNIT_PREFIX):
                stat = Path("/sys/fs/cgroup" + path, "cpu.stat").read_text()
                for row in stat.splitlines():
                    name, _, value = row.partition(" ")
                    if name == "usage_usec":
                        return int(value) / 1e6
    fields = _stat_fields(pid)
    if not fields or len(fields) < 15:
        return None
    ticks = sum(int(v) for v in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process group a job leads (it was started in a new session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


# ----------------------------------------------------------------------------- record


class StartedRecord:
    """``jobs.json`` in the agent's state directory: the process groups of running jobs
    (placement → pid and start time), so the next agent can end those that outlived it."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def load(self) -> dict[str, tuple[int, int]]:
        if self.path is None:
            return {}
        try:
            raw = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        found: dict[str, tuple[int, int]] = {}
        if isinstance(raw, dict):
            for placement, rec in raw.items():
                if isinstance(rec, list) and len(rec) == 2 and all(isinstance(v, int) for v in rec):
                    found[placement] = (rec[0], rec[1])
        return found

    def save(self, running: Mapping[str, tuple[int, int]]) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({p: list(v) for p, v in running.items()}))
        tmp.replace(self.path)


async def end_strays(record: Mapping[str, tuple[int, int]], grace_s: float) -> list[str]:
    """End the recorded process groups still alive (the same pid *and* start time):
    SIGTERM, SIGKILL after ``grace_s``. Returns the placements that were ended."""

    def living() -> dict[str, int]:
        return {p: pid for p, (pid, t) in record.items() if pid > 1 and start_ticks(pid) == t}

    alive = await asyncio.to_thread(living)
    for placement, pid in alive.items():
        log.warning("job %s (pid %d) outlived the agent: ending it", placement, pid)
        signal_group(pid, signal.SIGTERM)
    left = alive
    for _ in range(max(1, math.ceil(grace_s / STRAY_POLL_S))):
        await asyncio.sleep(STRAY_POLL_S)
        left = await asyncio.to_thread(living)
        if not left:
            break
    for pid in left.values():
        signal_group(pid, signal.SIGKILL)
    return sorted(alive)
