"""metald's operations as JSON-ready dicts, shared by the HTTP server and the in-process
MetalClient so both give the same shapes and raise the same errors.

Inputs are validated here with the request models of ``api_models``; nothing here knows HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator
from typing import Any, Self

from wrale.metal.core.api_models import (
    AmbientBody,
    ArmBody,
    ClearFaultsQuery,
    DiagRunBody,
    EventQuery,
    FanOverrideBody,
    FaultBody,
    FreqCapBody,
    GpioBody,
    LoadBody,
    PoliciesBody,
)
from wrale.metal.core.engine import MetalCore
from wrale.metal.core.events import Event, Severity
from wrale.metal.core.http import error_body
from wrale.metal.core.ports import Diagnostics
from wrale.metal.core.snapshot import Snapshot
from wrale.metal.core.snapshot import line_dict as snapshot_line_dict
from wrale.metal.hw.base import Fault, LineState, SimControls
from wrale.shared.errors import NotFoundError, UnavailableError, UnsupportedError
from wrale.shared.structs import to_builtins

BACKLOG_PAGE = 500
_STARTED = time.monotonic()
_SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}

# ----------------------------------------------------------------------------- state


def current(core: MetalCore) -> Snapshot:
    """The latest snapshot; ``UnavailableError`` before the first sample."""
    snap = core.snapshot
    if snap is None:
        raise UnavailableError("metald has not taken its first sample yet")
    return snap


STALE_AFTER_SAMPLES = 3  # /healthz is 503 once the last sample is older than this


def health(core: MetalCore) -> dict[str, Any]:
    """Liveness of the safety loops: ``status`` is ``stale`` (with an error ``code``) once
    the last sample is older than ``STALE_AFTER_SAMPLES`` sampling intervals."""
    uptime_s = round(time.monotonic() - _STARTED, 1)
    snap = current(core)
    sampled = core.sampled_mono
    age_s = 0.0 if sampled is None else max(0.0, core.clock.monotonic() - sampled)
    body: dict[str, Any] = {
        "status": "ok",
        "seq": snap.seq,
        "uptime_s": uptime_s,
        "updated_at": snap.at,
        "device": core.device_name,
        "backend": core.board.backend,
        "model": core.board.model,
        "sample_age_s": round(age_s, 3),
    }
    limit_s = STALE_AFTER_SAMPLES * core.sample_interval_s
    if age_s > limit_s:  # the sampler is stuck: the safety loops are not running
        message = f"last sample {age_s:.1f} s ago (more than {limit_s:g} s)"
        body |= {"status": "stale", **error_body("stale_sample", message)}
    return body


def state(core: MetalCore) -> dict[str, Any]:
    return current(core).to_dict()


def thermal(core: MetalCore) -> dict[str, Any]:
    return current(core).thermal_dict()


def power(core: MetalCore) -> dict[str, Any]:
    return current(core).power_dict()


def security(core: MetalCore) -> dict[str, Any]:
    return current(core).security_dict()


def gpio(core: MetalCore) -> dict[str, Any]:
    return current(core).gpio_dict()


def policies(core: MetalCore) -> dict[str, Any]:
    """The thermal, power and security policies the board runs now."""
    return {
        "thermal": to_builtins(core.thermal_policy),
        "power": to_builtins(core.power_policy),
        "security": to_builtins(core.security_policy),
    }


async def update_policies(core: MetalCore, body: PoliciesBody) -> dict[str, Any]:
    """Replace the policies given; ``UnsafeOperationError`` (nothing changed) if one would
    weaken the safety rules. Returns every policy in force afterwards."""
    await core.apply_policies(thermal=body.thermal, power=body.power, security=body.security)
    return policies(core)


# ----------------------------------------------------------------------------- actuators


async def set_fan(core: MetalCore, body: FanOverrideBody) -> dict[str, Any]:
    """Fan override; ``UnsafeOperationError`` below the floor, ``LockdownError`` in lockdown."""
    snap = await core.set_fan_override(body.percent, body.duration_s)
    return snap.thermal_dict()


async def clear_fan(core: MetalCore) -> dict[str, Any]:
    return (await core.clear_fan_override()).thermal_dict()


async def set_freq_cap(core: MetalCore, body: FreqCapBody) -> dict[str, Any]:
    """Operator frequency cap (only ever lowers the frequency); returns thermal."""
    return (await core.set_freq_cap(body.max_freq_pct)).thermal_dict()


async def arm(core: MetalCore, body: ArmBody) -> dict[str, Any]:
    return (await core.arm(body.level)).security_dict()


async def disarm(core: MetalCore) -> dict[str, Any]:
    """Disarm and lift a lockdown: the caller holds the API key, so it is authorised."""
    return (await core.disarm(authorised=True)).security_dict()


def line_dict(core: MetalCore, st: LineState) -> dict[str, Any]:
    name = next((n for n, cfg in core.gpio_lines.items() if cfg.line == st.line), None)
    return snapshot_line_dict(st, name)


async def gpio_line(core: MetalCore, name: str) -> dict[str, Any]:
    return line_dict(core, await core.gpio_read(name))


async def gpio_set(core: MetalCore, name: str, body: GpioBody) -> dict[str, Any]:
    if body.pwm is not None:
        st = await core.gpio_pwm(name, body.pwm.frequency_hz, body.pwm.duty_percent)
    else:
        assert body.value is not None  # the model requires one of the two
        st = await core.gpio_write(name, body.value)
    return line_dict(core, st)


# ----------------------------------------------------------------------------- diagnostics


def _diag(diagnostics: Diagnostics | None) -> Diagnostics:
    if diagnostics is None:
        raise NotFoundError("diagnostics are not available on this metald")
    return diagnostics


def diag_tests(diagnostics: Diagnostics | None) -> dict[str, Any]:
    return {"tests": list(_diag(diagnostics).names())}


async def run_diag(diagnostics: Diagnostics | None, body: DiagRunBody) -> dict[str, Any]:
    diag = _diag(diagnostics)
    if body.tests is not None:
        known = diag.names()
        unknown = [t for t in body.tests if t not in known]
        if unknown:
            raise NotFoundError(
                f"no such diagnostic: {', '.join(unknown)} (known: {', '.join(known)})",
                unknown=unknown,
                known=known,
            )
    return {"results": await diag.run(body.tests)}


async def diag_history(diagnostics: Diagnostics | None, limit: int) -> dict[str, Any]:
    return {"items": await _diag(diagnostics).history(limit)}


# ----------------------------------------------------------------------------- events


async def events(core: MetalCore, q: EventQuery) -> list[dict[str, Any]]:
    found = await core.events(
        since_id=q.since_id, limit=q.limit, types=q.type_names(), min_severity=q.min_severity
    )
    return [e.to_dict() for e in found]


def _matches(e: Event, q: EventQuery) -> bool:
    if q.type and e.type not in q.type:
        return False
    return q.min_severity is None or _SEVERITY_RANK[e.severity] >= _SEVERITY_RANK[q.min_severity]


class EventFeed:
    """Stored events after ``q.since_id`` (if given), then live ones, each exactly once.

    ``await open()`` subscribes before the backlog is read, so nothing raised in between
    is lost; ``aclose()`` unsubscribes (also when the feed was never iterated).
    """

    def __init__(self, core: MetalCore, q: EventQuery) -> None:
        self._core = core
        self._q = q
        self._stack = contextlib.AsyncExitStack()
        self._events: AsyncGenerator[Event, None] | None = None

    async def open(self) -> Self:
        queue = await self._stack.enter_async_context(self._core.subscribe())
        self._events = self._feed(queue)
        return self

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        if self._events is None:
            raise RuntimeError("open() the feed before reading it")
        return await anext(self._events)

    async def aclose(self) -> None:
        if self._events is not None:
            await self._events.aclose()
        await self._stack.aclose()

    async def _feed(self, queue: asyncio.Queue[Event]) -> AsyncGenerator[Event, None]:
        last = self._q.since_id
        if last is not None:
            async for e in self._stored(after=last):
                last = e.id
                yield e
        while True:
            e = await queue.get()
            if e.id is None:  # not stored: nothing to order it by
                if _matches(e, self._q):
                    yield e
                continue
            if last is not None:
                if e.id <= last:
                    continue  # already sent from the store
                if e.id > last + 1:  # the queue overflowed: fetch what it dropped
                    async for missed in self._stored(after=last, before=e.id):
                        yield missed
            last = e.id
            if _matches(e, self._q):
                yield e

    async def _stored(
        self, *, after: int, before: int | None = None
    ) -> AsyncGenerator[Event, None]:
        """Stored events matching the query with ``after < id < before``, oldest first."""
        while True:
            batch = await self._core.events(
                since_id=after,
                limit=BACKLOG_PAGE,
                types=self._q.type_names(),
                min_severity=self._q.min_severity,
            )
            for e in batch:
                if e.id is None or (before is not None and e.id >= before):
                    return
                after = e.id
                yield e
            if len(batch) < BACKLOG_PAGE:
                return


# ----------------------------------------------------------------------------- simulator


def _sim(core: MetalCore) -> SimControls:
    try:
        return core.sim
    except UnsupportedError:
        raise NotFoundError("simulation controls exist only with the sim backend") from None


def fault_dict(f: Fault) -> dict[str, Any]:
    return {"fault": f.kind.value, "params": dict(f.params), "duration_s": f.duration_s}


def sim_status(core: MetalCore) -> dict[str, Any]:
    sim = _sim(core)
    return {**sim.status(), "active_faults": [fault_dict(f) for f in sim.active_faults()]}


def _after(core: MetalCore, snap: Snapshot, **extra: Any) -> dict[str, Any]:
    return {**extra, "sim": sim_status(core), "state": snap.to_dict()}


async def sim_set_ambient(core: MetalCore, body: AmbientBody) -> dict[str, Any]:
    sim = _sim(core)
    return _after(core, await core.sim_call(lambda: sim.set_ambient(body.celsius)))


async def sim_set_load(core: MetalCore, body: LoadBody) -> dict[str, Any]:
    sim = _sim(core)
    return _after(core, await core.sim_call(lambda: sim.set_load(body.percent)))


async def sim_set_job_load(core: MetalCore, body: LoadBody) -> dict[str, Any]:
    sim = _sim(core)
    return _after(core, await core.sim_call(lambda: sim.set_job_load(body.percent)))


async def sim_inject_fault(core: MetalCore, body: FaultBody) -> dict[str, Any]:
    sim = _sim(core)
    fault = Fault(body.fault, body.params(), body.duration_s)
    return _after(core, await core.sim_call(lambda: sim.inject_fault(fault)))


async def sim_clear_faults(core: MetalCore, q: ClearFaultsQuery) -> dict[str, Any]:
    sim = _sim(core)
    cleared: list[int] = []
    snap = await core.sim_call(lambda: cleared.append(sim.clear_faults(q.fault)))
    return _after(core, snap, cleared=cleared[0])
