"""The thin layer over libgpiod v2: what of it is used (as Protocols) and settings translation.

``gpiod`` is imported on first use only, so boards without GPIO never load it; tests swap
the chip for a fake through ``GpiodGpio(open_chip=...)``. No ``WraleError`` mapping here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from wrale.metal.hw.base import Direction, Edge, LineConfig, Pull
from wrale.shared.errors import UnsupportedError

if TYPE_CHECKING:
    import gpiod
    from gpiod import EdgeEvent as GpiodEdgeEvent
    from gpiod import LineSettings
    from gpiod.line import Value

    LinesConfig = dict[Iterable[int | str] | int | str, LineSettings | None]


class ChipInfoLike(Protocol):
    @property
    def label(self) -> str: ...

    @property
    def num_lines(self) -> int: ...


class LineRequestLike(Protocol):
    """The part of ``gpiod.LineRequest`` used here."""

    def get_value(self, line: int | str) -> Value: ...

    def set_value(self, line: int | str, value: Value) -> None: ...

    def reconfigure_lines(self, config: LinesConfig) -> None: ...

    def wait_edge_events(self, timeout: timedelta | float | None = None) -> bool: ...

    def read_edge_events(self, max_events: int | None = None) -> list[GpiodEdgeEvent]: ...

    def release(self) -> None: ...


class ChipLike(Protocol):
    """The part of ``gpiod.Chip`` used here."""

    def get_info(self) -> ChipInfoLike: ...

    def request_lines(
        self,
        config: LinesConfig,
        consumer: str | None = None,
        event_buffer_size: int | None = None,
        output_values: dict[int | str, Value] | None = None,
    ) -> LineRequestLike: ...

    def close(self) -> None: ...


if TYPE_CHECKING:

    def _real_chip_conforms(chip: gpiod.Chip) -> ChipLike:
        return chip  # mypy checks that libgpiod's Chip satisfies the protocol


def gpiod_module() -> Any:
    try:
        import gpiod  # libgpiod is optional: loaded only when GPIO is used
    except ImportError as exc:
        raise UnsupportedError(
            "GPIO needs the libgpiod v2 Python bindings: pip install 'wrale-fleet[linux]'"
        ) from exc
    return gpiod


def open_gpiod_chip(path: str) -> ChipLike:
    chip: ChipLike = gpiod_module().Chip(path)
    return chip


def line_settings(config: LineConfig, output_value: int = 0) -> LineSettings:
    """The libgpiod settings for ``config``; inputs get realtime-stamped, debounced edges."""
    line = gpiod_module().line
    bias = {
        Pull.NONE: line.Bias.DISABLED,
        Pull.UP: line.Bias.PULL_UP,
        Pull.DOWN: line.Bias.PULL_DOWN,
    }[config.pull]
    settings: LineSettings
    if config.direction is Direction.OUT:
        value = line.Value.ACTIVE if output_value else line.Value.INACTIVE
        settings = gpiod_module().LineSettings(
            direction=line.Direction.OUTPUT, bias=bias, output_value=value
        )
        return settings
    edge = {
        Edge.NONE: line.Edge.NONE,
        Edge.RISING: line.Edge.RISING,
        Edge.FALLING: line.Edge.FALLING,
        Edge.BOTH: line.Edge.BOTH,
    }[config.edge]
    settings = gpiod_module().LineSettings(
        direction=line.Direction.INPUT,
        bias=bias,
        edge_detection=edge,
        debounce_period=timedelta(milliseconds=config.debounce_ms),
        event_clock=line.Clock.REALTIME,
    )
    return settings


def line_value(value: int) -> Value:
    values = gpiod_module().line.Value
    result: Value = values.ACTIVE if value else values.INACTIVE
    return result
