"""GPIO of the simulated board: configuration, errors, loopback wiring, edges, debounce, PWM.

Lines come from ``GpioLineSettings`` as an operator would wire them, or from
``configure_line`` at run time.
"""

from __future__ import annotations

import pytest

from wrale.metal.hw.base import Direction, Edge, EdgeEvent, LineConfig, Pull
from wrale.metal.hw.sim import SimBoard
from wrale.metal.hw.sim.gpio import SimGpio
from wrale.shared.clock import FakeClock
from wrale.shared.config import GpioLineSettings, SimSettings
from wrale.shared.errors import (
    ConfigError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    UnsupportedError,
)

START = 1_700_000_000.0
OUT = LineConfig(direction=Direction.OUT)


@pytest.fixture
def wired() -> SimBoard:
    """GPIO 17 (output) wired to GPIO 27 (input, both edges, 50 ms debounce)."""
    lines = {
        "led": GpioLineSettings(line=17, direction="out", loopback_to="sense"),
        "sense": GpioLineSettings(line=27, direction="in", pull="down", edge="both"),
        "button": GpioLineSettings(
            line=5, direction="in", pull="up", edge="falling", debounce_ms=20
        ),
    }
    return SimBoard(SimSettings(seed=1), clock=FakeClock(START), gpio_lines=lines)


def test_lines_from_settings(wired: SimBoard) -> None:
    states = {s.line: s for s in wired.gpio.lines()}
    assert sorted(states) == [5, 17, 27]
    assert states[17].config.direction is Direction.OUT
    assert states[27].config.edge is Edge.BOTH
    assert (states[5].value, states[17].value, states[27].value) == (1, 0, 0)


def test_loopback_write_reaches_the_wired_input(wired: SimBoard) -> None:
    wired.gpio.write_line(17, 1)
    assert wired.gpio.read_line(27) == 1
    wired.gpio.write_line(17, 0)
    assert wired.gpio.read_line(27) == 0


def test_edges_are_reported_after_the_debounce_time(wired: SimBoard) -> None:
    wired.advance(1.0)
    wired.gpio.write_line(17, 1)
    assert wired.gpio.drain_edge_events() == []  # not stable for 50 ms yet
    wired.advance(0.05)
    assert wired.gpio.drain_edge_events() == [EdgeEvent(27, Edge.RISING, START + 1.0)]
    wired.gpio.write_line(17, 0)
    wired.advance(0.1)
    assert wired.gpio.drain_edge_events() == [EdgeEvent(27, Edge.FALLING, START + 1.05)]
    assert wired.gpio.drain_edge_events() == []


def test_glitches_shorter_than_the_debounce_are_ignored(wired: SimBoard) -> None:
    for _ in range(5):
        wired.gpio.write_line(17, 1)
        wired.advance(0.01)
        wired.gpio.write_line(17, 0)
        wired.advance(0.01)
    wired.advance(1.0)
    assert wired.gpio.drain_edge_events() == []


def test_edge_filter_and_external_drive(wired: SimBoard) -> None:
    wired.drive_input(5, 0)  # the button is pressed
    wired.advance(0.02)
    wired.drive_input(5, 1)
    wired.advance(0.02)
    wired.drive_input(5, None)  # released: the pull-up holds it high
    events = wired.gpio.drain_edge_events()
    assert events == [EdgeEvent(5, Edge.FALLING, START)]  # falling edges only
    assert wired.gpio.read_line(5) == 1


def test_events_of_several_lines_come_oldest_first(wired: SimBoard) -> None:
    wired.gpio.write_line(17, 1)
    wired.advance(0.01)
    wired.drive_input(5, 0)
    wired.advance(1)
    assert [(e.line, e.kind) for e in wired.gpio.drain_edge_events()] == [
        (27, Edge.RISING),
        (5, Edge.FALLING),
    ]


def test_zero_debounce_reports_at_once(sim_board: SimBoard) -> None:
    sim_board.gpio.configure_line(22, LineConfig(edge=Edge.RISING, debounce_ms=0))
    sim_board.drive_input(22, 1)
    assert [e.kind for e in sim_board.gpio.drain_edge_events()] == [Edge.RISING]


def test_pulls(sim_board: SimBoard) -> None:
    sim_board.gpio.configure_line(2, LineConfig(pull=Pull.UP))
    sim_board.gpio.configure_line(3, LineConfig(pull=Pull.DOWN))
    sim_board.gpio.configure_line(4, LineConfig(pull=Pull.NONE))
    assert [sim_board.gpio.read_line(n) for n in (2, 3, 4)] == [1, 0, 0]


def test_an_input_wired_to_a_line_turned_input_floats_to_its_pull(wired: SimBoard) -> None:
    wired.gpio.write_line(17, 1)
    wired.gpio.configure_line(17, LineConfig(direction=Direction.IN))
    assert wired.gpio.read_line(27) == 0  # pull-down
    wired.gpio.configure_line(17, OUT)
    wired.gpio.write_line(17, 1)
    assert wired.gpio.read_line(27) == 1


def test_errors(wired: SimBoard) -> None:
    with pytest.raises(NotFoundError):
        wired.gpio.read_line(6)
    with pytest.raises(NotFoundError):
        wired.gpio.write_line(6, 1)
    with pytest.raises(NotFoundError):
        wired.gpio.configure_line(28, OUT)
    with pytest.raises(ConflictError):
        wired.gpio.write_line(27, 1)
    with pytest.raises(ConflictError):
        wired.drive_input(17, 1)
    with pytest.raises(InvalidRequestError):
        wired.gpio.write_line(17, 2)
    with pytest.raises(InvalidRequestError):
        wired.gpio.write_line(17, 0.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="edge detection"):
        wired.gpio.configure_line(6, LineConfig(direction=Direction.OUT, edge=Edge.RISING))
    with pytest.raises(InvalidRequestError):
        wired.gpio.configure_line(6, LineConfig(debounce_ms=-1))


def test_hardware_pwm_on_the_pwm_pins_only(sim_board: SimBoard) -> None:
    sim_board.gpio.configure_line(18, OUT)
    sim_board.gpio.set_pwm(18, 25_000, 40)
    (state,) = sim_board.gpio.lines()
    assert (state.pwm_frequency_hz, state.pwm_duty_pct) == (25_000.0, 40.0)
    sim_board.gpio.write_line(18, 1)  # a plain write ends the PWM
    (state,) = sim_board.gpio.lines()
    assert state.pwm_frequency_hz is None
    assert state.value == 1
    sim_board.gpio.configure_line(17, OUT)
    with pytest.raises(UnsupportedError):
        sim_board.gpio.set_pwm(17, 1000, 50)
    with pytest.raises(NotFoundError):
        sim_board.gpio.set_pwm(19, 1000, 50)
    sim_board.gpio.configure_line(19, LineConfig())
    with pytest.raises(ConflictError):
        sim_board.gpio.set_pwm(19, 1000, 50)


def test_pwm_only_on_the_pins_the_overlay_muxed(sim_board: SimBoard) -> None:
    """A Pi 5 booted with ``dtoverlay=pwm-2chan`` (the sim's default) has PWM on 18/19 only."""
    sim_board.gpio.configure_line(12, OUT)
    with pytest.raises(UnsupportedError) as err:
        sim_board.gpio.set_pwm(12, 1000, 50)
    assert "`dtoverlay=pwm-2chan,pin=12,func=4,pin2=13,func2=4`" in err.value.message
    assert "/boot/firmware/config.txt" in err.value.message


def test_pwm_on_12_and_13_when_booted_with_their_overlay() -> None:
    sim = SimBoard(clock=FakeClock())
    gpio = SimGpio(sim, sim.clock, pwm_muxed=(12, 13))
    gpio.configure_line(13, OUT)
    gpio.set_pwm(13, 1000, 50)
    gpio.configure_line(18, OUT)
    with pytest.raises(UnsupportedError, match="`dtoverlay=pwm-2chan`"):
        gpio.set_pwm(18, 1000, 50)


@pytest.mark.parametrize(("freq", "duty"), [(0.5, 50), (60e6, 50), (1000, -1), (1000, 101)])
def test_pwm_ranges(sim_board: SimBoard, freq: float, duty: float) -> None:
    sim_board.gpio.configure_line(19, OUT)
    with pytest.raises(InvalidRequestError):
        sim_board.gpio.set_pwm(19, freq, duty)


def test_pwm_limits_are_accepted(sim_board: SimBoard) -> None:
    sim_board.gpio.configure_line(19, OUT)
    sim_board.gpio.set_pwm(19, 1, 0)
    sim_board.gpio.set_pwm(19, 50e6, 100)


@pytest.mark.parametrize(
    "lines",
    [
        {"a": GpioLineSettings(line=30)},
        {"a": GpioLineSettings(line=4), "b": GpioLineSettings(line=4)},
        {"a": GpioLineSettings(line=4, loopback_to="nowhere")},
        {"a": GpioLineSettings(line=4, loopback_to="a")},
        {"a": GpioLineSettings(line=4, direction="out", edge="rising")},
    ],
)
def test_bad_gpio_settings_stop_the_board(lines: dict[str, GpioLineSettings]) -> None:
    with pytest.raises(ConfigError, match="gpio line 'a'"):
        SimBoard(SimSettings(seed=1), gpio_lines=lines)
