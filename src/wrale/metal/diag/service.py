"""``DiagnosticsService``: runs the board's diagnostics one run at a time, stamps and
stores the results as history, and records a DIAGNOSTICS event summarising each run.

It implements ``wrale.metal.core.ports.Diagnostics``; the hardware it reaches only through
``MetalCore`` operations, so every safety rule of the core still applies to its tests.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from wrale.metal.core.engine import MetalCore
from wrale.metal.core.events import Event, EventType
from wrale.metal.core.ports import Diagnostics
from wrale.metal.core.snapshot import Snapshot
from wrale.metal.core.store import DeviceStore
from wrale.metal.diag.catalog import BY_NAME, CATALOG, FAN_SPIN_UP, GPIO_LOOPBACK, DiagSpec
from wrale.metal.diag.evidence import Evidence, seen_sensors
from wrale.metal.diag.fan import spin_up
from wrale.metal.diag.gpio import loopback_all, pairs_from_lines
from wrale.metal.diag.limits import DiagLimits
from wrale.metal.diag.result import DiagResult, DiagStatus, severity_of, worst
from wrale.metal.diag.sampling import sample
from wrale.shared.clock import Clock
from wrale.shared.errors import InvalidRequestError, NotFoundError, WraleError

MEMORY_KEY = "diag.memory"
MAX_HISTORY = 10_000


class _Memory(msgspec.Struct):
    """What diagnostics learn about the board and keep across restarts."""

    sensors: set[str]
    fan_full_rpm: float | None

    def to_json(self) -> dict[str, Any]:
        return {"sensors": sorted(self.sensors), "fan_full_rpm": self.fan_full_rpm}


class DiagnosticsService:
    """The board's diagnostics. Runs are serialised: a second run waits for the first."""

    def __init__(
        self,
        core: MetalCore,
        *,
        store: DeviceStore | None = None,
        loopback_pairs: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        limits: DiagLimits | None = None,
    ) -> None:
        self.core = core
        self.store = store if store is not None else core.store
        self.clock = clock if clock is not None else core.clock
        self.limits = limits or DiagLimits()
        if loopback_pairs is None:
            loopback_pairs = pairs_from_lines(core.gpio_lines)
        self.loopback_pairs = dict(loopback_pairs)
        self._lock = asyncio.Lock()
        self._memory: _Memory | None = None
        self._seen_at_start = seen_sensors(
            [core.snapshot] if core.snapshot is not None else [], self.limits
        )

    def names(self) -> list[str]:
        return [spec.name for spec in CATALOG]

    async def run(self, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
        specs = self._select(names)
        async with self._lock:
            self.core.current()  # ConflictError before the first sample
            run_id = uuid.uuid4().hex[:12]
            memory = await self._recall()
            snaps = [self.core.current()]
            found: dict[str, list[dict[str, Any]]] = {}
            for spec in specs:
                if spec.check is None:
                    results = await self._active(spec, memory, snaps)
                    found[spec.name] = self._stamp(results, run_id)
            checks = [(spec, spec.check) for spec in specs if spec.check is not None]
            if checks:
                # The fan test's samples serve as evidence too; top them up when too few.
                wanted = self.limits.samples if any(spec.series for spec, _ in checks) else 1
                missing = wanted + 1 - len(snaps)
                if missing > 0:
                    snaps += await sample(self.core, self.clock, missing)
                ev = self._evidence(snaps, memory)
                for spec, check in checks:
                    found[spec.name] = self._stamp(check(ev), run_id)
                memory.sensors |= seen_sensors(snaps, self.limits)
            ordered = [r for spec in specs for r in found[spec.name]]
            await asyncio.to_thread(self.store.set_state, MEMORY_KEY, memory.to_json())
            await asyncio.to_thread(self.store.add_diag_results, ordered)
            await self.core.record([self._summary(run_id, specs, ordered)])
            return ordered

    async def history(self, limit: int = 100) -> list[dict[str, Any]]:
        if not 1 <= limit <= MAX_HISTORY:
            raise InvalidRequestError(f"limit must be between 1 and {MAX_HISTORY}", field="limit")
        return await asyncio.to_thread(self.store.diag_history, limit)

    # ------------------------------------------------------------------ internals

    def _select(self, names: Sequence[str] | None) -> list[DiagSpec]:
        if names is None:
            return list(CATALOG)
        wanted = [names] if isinstance(names, str) else list(names)
        if not wanted:
            raise InvalidRequestError("no test named; pass none at all to run every test")
        unknown = [n for n in dict.fromkeys(wanted) if n not in BY_NAME]
        if unknown:
            valid = self.names()
            raise NotFoundError(
                f"unknown diagnostic test {', '.join(map(repr, unknown))}; "
                f"valid tests: {', '.join(valid)}",
                unknown=unknown,
                valid=valid,
            )
        return [spec for spec in CATALOG if spec.name in wanted]

    async def _active(
        self, spec: DiagSpec, memory: _Memory, snaps: list[Snapshot]
    ) -> list[DiagResult]:
        """Run one active test; the snapshots it takes join the run's evidence."""
        try:
            if spec.name == FAN_SPIN_UP:
                expected = self.limits.fan_full_rpm or memory.fan_full_rpm
                outcome = await spin_up(self.core, self.clock, self.limits, expected)
                snaps.extend(outcome.snapshots)
                if outcome.result.status is DiagStatus.PASS and outcome.peak_rpm:
                    memory.fan_full_rpm = max(memory.fan_full_rpm or 0.0, outcome.peak_rpm)
                return [outcome.result]
            if spec.name == GPIO_LOOPBACK:
                return await loopback_all(self.core, self.clock, self.limits, self.loopback_pairs)
        except WraleError as exc:
            msg = f"the test could not run: {exc.message}"
            return [DiagResult(spec.type, spec.name, spec.name, DiagStatus.FAIL, msg)]
        raise AssertionError(f"no runner for active test {spec.name}")  # pragma: no cover

    def _evidence(self, snaps: list[Snapshot], memory: _Memory) -> Evidence:
        core = self.core
        return Evidence(
            snapshots=tuple(sorted({s.seq: s for s in snaps}.values(), key=lambda s: s.seq)),
            thermal=core.thermal_policy,
            power=core.power_policy,
            security=core.security_policy,
            limits=self.limits,
            sensors=frozenset({"cpu"} | memory.sensors),
        )

    def _stamp(self, results: list[DiagResult], run_id: str) -> list[dict[str, Any]]:
        now = self.clock.now()
        return [r.to_dict(timestamp=now, run_id=run_id) for r in results]

    async def _recall(self) -> _Memory:
        if self._memory is None:
            saved = await asyncio.to_thread(self.store.get_state, MEMORY_KEY)
            saved = saved if isinstance(saved, dict) else {}
            rpm = saved.get("fan_full_rpm")
            self._memory = _Memory(
                sensors={str(s) for s in saved.get("sensors", [])} | self._seen_at_start,
                fan_full_rpm=float(rpm) if isinstance(rpm, int | float) else None,
            )
            # Sensors read before the first run (e.g. at start-up) belong to the board too.
            self._memory.sensors |= seen_sensors([self.core.current()], self.limits)
        return self._memory

    def _summary(self, run_id: str, specs: list[DiagSpec], results: list[dict[str, Any]]) -> Event:
        statuses = [DiagStatus(r["status"]) for r in results]
        counts = Counter(statuses)
        failed = sorted({r["name"] for r in results if r["status"] == DiagStatus.FAIL})
        warned = sorted({r["name"] for r in results if r["status"] == DiagStatus.WARNING})
        tally = ", ".join(f"{counts[s]} {s.value.lower()}" for s in DiagStatus if counts[s])
        message = f"diagnostics run {run_id}: {len(specs)} tests, {tally}"
        if failed:
            message += f"; failed: {', '.join(failed)}"
        if warned:
            message += f"; warnings: {', '.join(warned)}"
        return Event(
            EventType.DIAGNOSTICS,
            severity_of(worst(statuses)),
            self.clock.now(),
            message,
            {
                "run_id": run_id,
                "tests": [spec.name for spec in specs],
                "counts": {s.value: counts[s] for s in DiagStatus},
                "failed": failed,
                "warnings": warned,
            },
        )


def _conforms(service: DiagnosticsService) -> Diagnostics:  # mypy checks the port's protocol
    return service
