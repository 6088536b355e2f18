"""A simulated board with a wired GPIO loopback pair and an ambient-sensor HAT, its metal
core and diagnostics (a Pi 5 has no GPU sensor: its checks are skipped).

Everything runs on the board's ``FakeClock``: diagnostics advance it while they sample.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from wrale.metal.core.engine import MetalCore
from wrale.metal.core.store import DeviceStore
from wrale.metal.diag import DiagnosticsService
from wrale.metal.hw.sim import SimBoard
from wrale.shared.clock import FakeClock
from wrale.shared.config import GpioLineSettings, SimSettings

Boot = Callable[..., Awaitable[MetalCore]]


@pytest.fixture
def gpio_lines() -> dict[str, GpioLineSettings]:
    """Output 17 wired to input 27 on the simulated header."""
    return {
        "out": GpioLineSettings(line=17, direction="out", loopback_to="in"),
        "in": GpioLineSettings(line=27, direction="in"),
    }


@pytest.fixture
def board(gpio_lines: dict[str, GpioLineSettings]) -> SimBoard:
    return SimBoard(
        SimSettings(seed=1, ambient_sensor=True), clock=FakeClock(), gpio_lines=gpio_lines
    )


@pytest.fixture
def boot() -> Iterator[Boot]:
    """Start a core on a fresh sim board (or on ``board``); closes its store afterwards."""
    stores: list[DeviceStore] = []

    async def start(
        *,
        board: SimBoard | None = None,
        gpio_lines: Mapping[str, GpioLineSettings] | None = None,
        path: Path | str = ":memory:",
        started: bool = True,
        **policies: Any,
    ) -> MetalCore:
        board = board or SimBoard(
            SimSettings(seed=1, ambient_sensor=True), clock=FakeClock(), gpio_lines=gpio_lines
        )
        store = DeviceStore(path)
        stores.append(store)
        core = MetalCore(board, store=store, clock=board.clock, gpio_lines=gpio_lines, **policies)
        if started:
            await core.start()
        return core

    yield start
    for store in stores:
        store.close()


@pytest.fixture
async def core(boot: Boot, board: SimBoard, gpio_lines: dict[str, GpioLineSettings]) -> MetalCore:
    return await boot(board=board, gpio_lines=gpio_lines)


@pytest.fixture
def diag(core: MetalCore) -> DiagnosticsService:
    return DiagnosticsService(core)
