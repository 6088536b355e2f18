"""Commands from the central server, run on the board: validated again here (arguments,
the agent's mode, the deadline) and by metal (physical safety). Every command ends in a
``CommandResult``: succeeded, failed (also ``expired``) or refused, with the reason.

Reboot and shutdown go through ``PowerActions``: on a simulated board the device restarts
in-process; on Linux a configured command runs, and only when the operator enabled it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from wrale.fleet.sync.protocol import COMMAND_OPS, Command, CommandResult
from wrale.metal.core.ports import MetalClient
from wrale.shared.clock import Clock
from wrale.shared.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    UnsupportedError,
    WraleError,
)

log = logging.getLogger(__name__)

Json = dict[str, Any]
POWER_GRACE_S = 1.0  # the result leaves before the board goes down
MAX_REASON = 2000
OPS = COMMAND_OPS
SAFE_OPS = frozenset({"safe_mode", "set_throttle", "run_diag", "arm", "clear_fan", "shutdown"})
"""What SAFE mode still runs: leaving it, and what only adds safety."""


# ----------------------------------------------------------------------------- power


class PowerActions(Protocol):
    """Reboots and shuts down the board; each returns what it scheduled."""

    async def reboot(self, delay_s: float) -> str: ...
    async def shutdown(self, delay_s: float) -> str: ...


class RefusePower:
    """The default on real hardware: power commands are off until the operator enables
    them (``WRALE_EDGE_POWER_COMMANDS=true``)."""

    async def reboot(self, delay_s: float) -> str:
        raise UnsupportedError(
            "reboot is not enabled on this device (set WRALE_EDGE_POWER_COMMANDS=true)"
        )

    async def shutdown(self, delay_s: float) -> str:
        raise UnsupportedError(
            "shutdown is not enabled on this device (set WRALE_EDGE_POWER_COMMANDS=true)"
        )


class _Scheduled:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._tasks: set[asyncio.Task[None]] = set()

    def _later(self, delay_s: float, action: Callable[[], Awaitable[None]]) -> None:
        async def run() -> None:
            await self.clock.sleep(max(delay_s, POWER_GRACE_S))
            await action()

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class CommandPower(_Scheduled):
    """Runs the configured host commands (e.g. ``systemctl reboot``) after the delay."""

    def __init__(
        self, reboot_command: tuple[str, ...], shutdown_command: tuple[str, ...], clock: Clock
    ) -> None:
        super().__init__(clock)
        self.reboot_command = reboot_command
        self.shutdown_command = shutdown_command

    async def _exec(self, argv: tuple[str, ...]) -> None:
        log.warning("running %s", " ".join(argv))
        try:
            proc = await asyncio.create_subprocess_exec(*argv)
            code = await proc.wait()
        except OSError as exc:
            log.error("cannot run %s: %s", " ".join(argv), exc)
            return
        if code:
            log.error("%s exited with %d", " ".join(argv), code)

    async def reboot(self, delay_s: float) -> str:
        self._later(delay_s, lambda: self._exec(self.reboot_command))
        return f"reboot in {delay_s:g} s ({' '.join(self.reboot_command)})"

    async def shutdown(self, delay_s: float) -> str:
        self._later(delay_s, lambda: self._exec(self.shutdown_command))
        return f"shutdown in {delay_s:g} s ({' '.join(self.shutdown_command)})"


class InProcessPower(_Scheduled):
    """A simulated board: reboot restarts the device in-process, shutdown stops it; the
    runner passes what to call."""

    def __init__(
        self,
        clock: Clock,
        on_reboot: Callable[[], Awaitable[None] | None],
        on_shutdown: Callable[[], Awaitable[None] | None],
    ) -> None:
        super().__init__(clock)
        self.on_reboot = on_reboot
        self.on_shutdown = on_shutdown

    @staticmethod
    async def _call(fn: Callable[[], Awaitable[None] | None]) -> None:
        result = fn()
        if result is not None:
            await result

    async def reboot(self, delay_s: float) -> str:
        self._later(delay_s, lambda: self._call(self.on_reboot))
        return f"simulated reboot in {delay_s:g} s"

    async def shutdown(self, delay_s: float) -> str:
        self._later(delay_s, lambda: self._call(self.on_shutdown))
        return f"simulated shutdown in {delay_s:g} s"


# ----------------------------------------------------------------------------- arguments


def _num(args: Mapping[str, Any], name: str, lo: float, hi: float, default: Any = ...) -> Any:
    if name not in args or args[name] is None:
        if default is ...:
            raise InvalidRequestError(f"{name} is required")
        return default
    v = args[name]
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise InvalidRequestError(f"{name} must be a number")
    if not lo <= v <= hi:
        raise InvalidRequestError(f"{name} must be between {lo:g} and {hi:g}")
    return float(v)


def _only(args: Mapping[str, Any], *names: str) -> None:
    extra = set(args) - set(names)
    if extra:
        raise InvalidRequestError(f"unknown argument(s): {', '.join(sorted(extra))}")


def _str(args: Mapping[str, Any], name: str, choices: tuple[str, ...] | None = None) -> Any:
    v = args.get(name)
    if v is None:
        return None
    if not isinstance(v, str) or (choices is not None and v not in choices):
        allowed = f" ({', '.join(choices)})" if choices else ""
        raise InvalidRequestError(f"{name} must be a string{allowed}")
    return v


# ----------------------------------------------------------------------------- running


ModeSwitch = Callable[[bool], Awaitable[str]]


class CommandRunner:
    """Executes one command at a time through metal, the power actions and the agent's
    mode switch (``safe_mode``)."""

    def __init__(
        self, metal: MetalClient, power: PowerActions, clock: Clock, set_safe: ModeSwitch
    ) -> None:
        self.metal = metal
        self.power = power
        self.clock = clock
        self.set_safe = set_safe

    async def run(self, cmd: Command, mode: str) -> CommandResult:
        """Run ``cmd`` in agent mode ``mode``; never raises for a refused or failed one."""
        r = await self._run(cmd, mode)
        if len(r.reason) > MAX_REASON:  # the protocol's limit
            r = CommandResult(r.id, r.status, r.reason[: MAX_REASON - 1] + "…", r.result)
        return r

    async def _run(self, cmd: Command, mode: str) -> CommandResult:
        if cmd.deadline < self.clock.now():
            return CommandResult(cmd.id, "failed", "expired")
        if cmd.op not in OPS:
            return CommandResult(cmd.id, "refused", f"unknown operation {cmd.op!r}")
        if mode == "safe" and cmd.op not in SAFE_OPS:
            return CommandResult(
                cmd.id,
                "refused",
                f"the device is in SAFE mode: only {', '.join(sorted(SAFE_OPS))} run "
                "(leave it with safe_mode {on: false})",
            )
        try:
            reason, result = await self._op(cmd.op, cmd.args, mode)
        except (ConflictError, InvalidRequestError, NotFoundError, UnsupportedError) as exc:
            return CommandResult(cmd.id, "refused", exc.message, _details(exc))
        except WraleError as exc:
            return CommandResult(cmd.id, "failed", exc.message, _details(exc))
        except Exception as exc:  # a bug must still answer the command
            log.exception("command %s (%s) failed", cmd.id, cmd.op)
            return CommandResult(cmd.id, "failed", f"{type(exc).__name__}: {exc}")
        return CommandResult(cmd.id, "succeeded", reason, result)

    async def _op(self, op: str, a: Mapping[str, Any], mode: str) -> tuple[str, Json]:
        m = self.metal
        match op:
            case "set_fan":
                _only(a, "percent", "duration_s")
                pct = _num(a, "percent", 0, 100)
                duration = _num(a, "duration_s", 1, 86_400, 300.0)
                t = await m.set_fan(pct, duration)
                return f"fan at {t['fan_percent']:g} %", _thermal(t)
            case "clear_fan":
                _only(a)
                t = await m.clear_fan()
                return "fan back on the curve", _thermal(t)
            case "set_throttle":
                _only(a, "max_freq_pct")
                cap = _num(a, "max_freq_pct", 40, 100, None)
                if cap is None and mode == "safe":
                    raise ConflictError("SAFE mode keeps frequency caps; leave it first")
                t = await m.set_throttle(cap)
                what = "frequency cap lifted" if cap is None else f"frequency capped at {cap:g} %"
                return what, _thermal(t)
            case "run_diag":
                _only(a, "tests")
                tests = a.get("tests")
                if tests is not None and not (
                    isinstance(tests, list) and all(isinstance(t, str) for t in tests)
                ):
                    raise InvalidRequestError("tests must be a list of test names")
                results = await m.run_diag(tests)
                summary: dict[str, int] = {}
                for r in results:
                    summary[str(r.get("status"))] = summary.get(str(r.get("status")), 0) + 1
                text = ", ".join(f"{n} {s}" for s, n in sorted(summary.items())) or "no tests"
                return text, {"results": results, "summary": summary}
            case "arm":
                _only(a, "level")
                s = await m.arm(_str(a, "level", ("low", "medium", "high")))
                return f"armed at {s['level']}", s
            case "disarm":
                _only(a)
                return "disarmed", await m.disarm()
            case "reboot" | "shutdown":
                _only(a, "delay_s")
                delay = _num(a, "delay_s", 0, 3600, 0.0)
                action = self.power.reboot if op == "reboot" else self.power.shutdown
                return await action(delay), {"delay_s": delay}
            case "safe_mode":
                _only(a, "on")
                on = a.get("on")
                if not isinstance(on, bool):
                    raise InvalidRequestError("on must be true or false")
                return await self.set_safe(on), {"mode": "safe" if on else "normal"}
            case "sim_fault":
                _only(a, "fault", "duration_s", "params")
                fault = _str(a, "fault")
                if fault is None:
                    raise InvalidRequestError("fault is required")
                params = a.get("params") or {}
                if not isinstance(params, dict):
                    raise InvalidRequestError("params must be an object")
                duration = _num(a, "duration_s", 0.001, 7 * 86_400, None)
                r = await m.sim_inject_fault(fault, duration, **params)
                return f"fault {fault} injected", _sim(r)
            case "sim_clear":
                _only(a, "fault")
                r = await m.sim_clear_faults(_str(a, "fault"))
                return "faults cleared", _sim(r)
            case "sim_load":
                _only(a, "percent")
                r = await m.sim_set_load(_num(a, "percent", 0, 100))
                return "load set", _sim(r)
            case "sim_ambient":
                _only(a, "celsius")
                r = await m.sim_set_ambient(_num(a, "celsius", -40, 80))
                return "ambient set", _sim(r)
        raise InvalidRequestError(f"unknown operation {op!r}")  # pragma: no cover


def _thermal(t: Json) -> Json:
    keys = ("fan_percent", "fan_floor_percent", "max_freq_pct", "freq_cap_pct", "status")
    return {k: t.get(k) for k in keys} | {"override": t.get("override")}


def _sim(r: Json) -> Json:
    sim = r.get("sim")
    return {"sim": sim} if isinstance(sim, dict) else {}


def _details(exc: WraleError) -> Json:
    """The error's code and JSON-able details, for the command's result."""
    out: Json = {"error": exc.code}
    for k, v in exc.details.items():
        try:
            json.dumps(v, allow_nan=False)
        except (TypeError, ValueError):
            continue
        if k != "http_status":
            out[k] = v
    return out


__all__ = [
    "OPS",
    "SAFE_OPS",
    "CommandPower",
    "CommandRunner",
    "InProcessPower",
    "PowerActions",
    "RefusePower",
]
