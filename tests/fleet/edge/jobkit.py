"""Test kit for the job runner: a runner driven in a task, its reports collected, and
Python one-liners as real process workloads (allowed by the prefix ``[python, -c]``)."""

from __future__ import annotations

import asyncio
import copy
import sys
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self, cast

from tests.fleet.edge.kit import eventually
from wrale.fleet.edge.runner import JobRunner
from wrale.metal.core.ports import MetalClient
from wrale.shared.errors import NotFoundError

PY = sys.executable
ALLOW = ((PY, "-c"),)
Json = dict[str, Any]


def py(code: str, **extra: Any) -> Json:
    """A desired placement running ``python -c code``."""
    return {
        "job": "j1",
        "name": "t",
        "workload": {"kind": "process", "argv": [PY, "-c", code]},
        **extra,
    }


def sim(pct: float, **extra: Any) -> Json:
    return {"job": "j1", "name": "t", "workload": {"kind": "sim_load", "cpu_pct": pct}, **extra}


class FakeMetal:
    """The calls the runner makes of metald, on a board of ``backend``."""

    def __init__(self, backend: str = "linux", job_load_pct: float = 0.0) -> None:
        self.backend = backend
        self.job_load_pct = job_load_pct
        self.job_loads: list[float] = []
        self.status_reads = 0

    async def health(self) -> Json:
        return {"status": "ok", "backend": self.backend}

    async def sim_status(self) -> Json:
        self.status_reads += 1
        if self.backend != "sim":
            raise NotFoundError("simulation controls exist only with the sim backend")
        return {"load_pct": 10.0, "job_load_pct": self.job_load_pct}

    async def sim_set_job_load(self, percent: float) -> Json:
        self.job_loads.append(percent)
        self.job_load_pct = percent
        return {}


def fake_metal(backend: str = "linux") -> MetalClient:
    return cast("MetalClient", FakeMetal(backend))


class Driven:
    """``async with Driven(runner) as d``: the runner's loop in a task; ``d.reports`` is
    every reported section it asked to send."""

    def __init__(self, runner: JobRunner) -> None:
        self.runner = runner
        self.reports: list[dict[str, Json]] = []
        self._task: asyncio.Task[None] | None = None

    async def _report(self) -> None:
        self.reports.append(copy.deepcopy(self.runner.reported()))

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self.runner.run(self._report))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            if self._task.done() and not self._task.cancelled() and self._task.exception():
                raise AssertionError("the runner's loop failed") from self._task.exception()
        await self.runner.close()

    def entry(self, placement: str) -> Json | None:
        return self.runner.reported().get(placement)

    async def until(self, placement: str, state: str, **fields: Any) -> Json:
        """Wait until the placement is reported (to the agent) in ``state``."""

        def seen() -> bool:
            e = self.reports[-1].get(placement) if self.reports else None
            return e is not None and e["state"] == state and _has(e, fields)

        await eventually(seen, f"{placement} reported {state}")
        return self.reports[-1][placement]

    def states(self, placement: str) -> list[str]:
        """The states the placement went through in the reports, without repeats."""
        out: list[str] = []
        for r in self.reports:
            s = r.get(placement, {}).get("state")
            if s is not None and (not out or out[-1] != s):
                out.append(s)
        return out


def _has(entry: Mapping[str, Any], fields: Mapping[str, Any]) -> bool:
    return all(entry.get(k) == v for k, v in fields.items())
