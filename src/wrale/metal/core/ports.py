"""Interfaces between metal.core and the layers around it, free of their implementations.

``Diagnostics`` is what metal.core needs from ``wrale.metal.diag`` (which builds on core),
injected at the entry point. ``MetalClient`` is what the edge agent and the CLI ask of
metald; its implementations (in-process, HTTP) live in ``client.py``, so a caller that only
needs the interface (``wrale.fleet.edge``) imports none of the core from here.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from types import TracebackType
from typing import Any, Protocol, Self

JsonDict = dict[str, Any]


class Diagnostics(Protocol):
    """Runs the board's diagnostics and keeps their history."""

    def names(self) -> list[str]:
        """Names of every test this board can run."""
        ...

    async def run(self, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Run the named tests (all when ``None``); ``NotFoundError`` for an unknown name.

        Each result is a dict with ``type`` (GPIO / POWER / THERMAL / SECURITY), ``name``,
        ``component``, ``status`` (PASS / WARNING / FAIL / SKIPPED), ``reading``,
        ``expected``, ``message`` and ``timestamp`` (seconds since the epoch).
        """
        ...

    async def history(self, limit: int = 100) -> list[dict[str, Any]]:
        """Past results, newest first."""
        ...


class MetalClient(Protocol):
    """Everything the edge agent and the CLI ask of metald. Usable as ``async with``."""

    async def health(self) -> JsonDict: ...
    async def state(self) -> JsonDict: ...
    async def thermal(self) -> JsonDict: ...
    async def power(self) -> JsonDict: ...
    async def security(self) -> JsonDict: ...
    async def gpio(self) -> JsonDict: ...

    async def set_fan(self, percent: float, duration_s: float = 300.0) -> JsonDict:
        """Override the fan; ``UnsafeOperationError`` below the safety floor. Returns thermal."""
        ...

    async def clear_fan(self) -> JsonDict: ...

    async def set_throttle(self, max_freq_pct: float | None) -> JsonDict:
        """Cap the CPU frequency (40-100 %, ``None`` lifts the cap); it only ever lowers
        the frequency, never lifts a safety throttle. Returns thermal."""
        ...

    async def policies(self) -> JsonDict:
        """``{"thermal": {...}, "power": {...}, "security": {...}}`` in force now."""
        ...

    async def update_policies(
        self,
        *,
        thermal: JsonDict | None = None,
        power: JsonDict | None = None,
        security: JsonDict | None = None,
    ) -> JsonDict:
        """Replace the given policies, each a whole document; ``InvalidRequestError`` if
        malformed, ``UnsafeOperationError`` (``details["path"]`` names the field) if it
        would weaken the safety rules. Returns ``policies()``."""
        ...

    async def arm(self, level: str | None = None) -> JsonDict: ...
    async def disarm(self) -> JsonDict: ...
    async def gpio_write(self, line: str, value: int) -> JsonDict: ...
    async def gpio_pwm(self, line: str, frequency_hz: float, duty_percent: float) -> JsonDict: ...
    async def diag_tests(self) -> list[str]: ...
    async def run_diag(self, tests: list[str] | None = None) -> list[JsonDict]: ...
    async def diag_history(self, limit: int = 50) -> list[JsonDict]: ...

    async def events(
        self,
        since_id: int | None = None,
        limit: int = 100,
        *,
        types: list[str] | None = None,
        min_severity: str | None = None,
    ) -> list[JsonDict]:
        """Stored events after ``since_id`` (oldest first), or else the latest ``limit``."""
        ...

    def stream_events(self, since_id: int | None = None) -> AsyncGenerator[JsonDict, None]:
        """Live events (after the stored ones following ``since_id``, when given)."""
        ...

    async def sim_status(self) -> JsonDict: ...
    async def sim_set_ambient(self, celsius: float) -> JsonDict: ...
    async def sim_set_load(self, percent: float) -> JsonDict: ...

    async def sim_set_job_load(self, percent: float) -> JsonDict:
        """The simulated board's job load (the agent's ``sim_load`` jobs), on top of its
        background load (``sim_set_load``)."""
        ...

    async def sim_inject_fault(
        self, fault: str, duration_s: float | None = None, **params: Any
    ) -> JsonDict: ...

    async def sim_clear_faults(self, fault: str | None = None) -> JsonDict: ...
    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
