"""Linux GPIO: libgpiod requests per line (on a fake chip), errors, edges, sysfs hardware PWM."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from gpiod.line import Bias, Clock, Direction, Edge, Value

from tests.metal.hw.fakechip import FakeChip
from tests.metal.hw.fakegpio import FakePinctrl
from tests.metal.hw.fakesys import FakeSys
from wrale.metal.hw.base import Direction as Dir
from wrale.metal.hw.base import Edge as EdgeKind
from wrale.metal.hw.base import LineConfig, Pull
from wrale.metal.hw.linux import PI5_PWM_CHANNELS, GpiodGpio, SysfsPwm
from wrale.metal.hw.linux.gpiod_api import line_settings
from wrale.metal.hw.linux.pinmux import PinmuxReader
from wrale.shared.errors import (
    ActuatorError,
    ConflictError,
    HardwareError,
    InvalidRequestError,
    NotFoundError,
    UnsupportedError,
)

BUTTON = LineConfig(direction=Dir.IN, pull=Pull.UP, edge=EdgeKind.BOTH, debounce_ms=20)
LED = LineConfig(direction=Dir.OUT)


@pytest.fixture
def fake(tmp_path: Path) -> FakeSys:
    return FakeSys(tmp_path)


@pytest.fixture
def chip() -> FakeChip:
    return FakeChip()


@pytest.fixture
def gpio(fake: FakeSys, chip: FakeChip) -> GpiodGpio:
    return fake.gpio(chip)


def test_line_settings_translate_the_config() -> None:
    s = line_settings(BUTTON)
    assert s.direction is Direction.INPUT
    assert s.bias is Bias.PULL_UP
    assert s.edge_detection is Edge.BOTH
    assert s.debounce_period == timedelta(milliseconds=20)
    assert s.event_clock is Clock.REALTIME  # edge timestamps are wall-clock seconds
    out = line_settings(LineConfig(direction=Dir.OUT, pull=Pull.DOWN), output_value=1)
    assert out.direction is Direction.OUTPUT
    assert out.bias is Bias.PULL_DOWN
    assert out.output_value is Value.ACTIVE
    assert line_settings(LineConfig()).bias is Bias.DISABLED


def test_chip_opened_lazily_and_one_request_per_line(gpio: GpiodGpio, chip: FakeChip) -> None:
    assert chip.opened == []
    gpio.configure_line(17, BUTTON)
    gpio.configure_line(27, LED)
    assert chip.opened == ["/dev/gpiochip0"]
    assert chip.requests[17] is not chip.requests[27]
    assert chip.consumers == ["wrale-metald", "wrale-metald"]


def test_read_input_and_drive_output(gpio: GpiodGpio, chip: FakeChip) -> None:
    gpio.configure_line(17, BUTTON)
    assert gpio.read_line(17) == 1  # pulled up
    chip.drive(17, 0)
    assert gpio.read_line(17) == 0
    gpio.configure_line(27, LED)
    assert gpio.read_line(27) == 0
    gpio.write_line(27, 1)
    assert chip.level(27) == 1
    assert gpio.read_line(27) == 1


def test_reconfigure_keeps_the_request_and_the_output_level(
    gpio: GpiodGpio, chip: FakeChip
) -> None:
    gpio.configure_line(27, LED)
    request = chip.requests[27]
    gpio.write_line(27, 1)
    gpio.configure_line(27, LineConfig(direction=Dir.OUT, pull=Pull.UP))
    assert chip.requests[27] is request
    assert chip.level(27) == 1
    gpio.configure_line(27, BUTTON)
    assert chip.settings(27).direction is Direction.INPUT
    with pytest.raises(ConflictError, match="input"):
        gpio.write_line(27, 0)


def test_errors(gpio: GpiodGpio) -> None:
    with pytest.raises(NotFoundError):
        gpio.configure_line(54, BUTTON)  # RP1 has lines 0-53
    with pytest.raises(NotFoundError):
        gpio.read_line(5)  # not configured
    with pytest.raises(NotFoundError):
        gpio.write_line(5, 1)
    gpio.configure_line(17, BUTTON)
    with pytest.raises(ConflictError):
        gpio.write_line(17, 1)
    gpio.configure_line(27, LED)
    with pytest.raises(InvalidRequestError):
        gpio.write_line(27, 2)
    with pytest.raises(InvalidRequestError, match="edge"):
        gpio.configure_line(22, LineConfig(direction=Dir.OUT, edge=EdgeKind.RISING))


def test_a_line_held_by_another_program_is_a_conflict(fake: FakeSys) -> None:
    gpio = fake.gpio(FakeChip(busy=[4]))
    with pytest.raises(ConflictError, match="in use"):
        gpio.configure_line(4, BUTTON)


def test_a_missing_chip_is_a_hardware_error() -> None:
    def missing(path: str) -> FakeChip:
        raise FileNotFoundError(2, "No such file or directory", path)

    gpio = GpiodGpio("/dev/gpiochip9", open_chip=missing)
    with pytest.raises(HardwareError, match="gpiochip9"):
        gpio.configure_line(17, BUTTON)


def test_edges_are_drained_oldest_first(gpio: GpiodGpio, chip: FakeChip) -> None:
    gpio.configure_line(17, BUTTON)
    gpio.configure_line(22, LineConfig(direction=Dir.IN, edge=EdgeKind.RISING))
    chip.drive(17, 0)
    chip.drive(22, 1)
    chip.drive(22, 0)  # falling: not watched on 22
    chip.drive(17, 1)
    events = gpio.drain_edge_events()
    assert [(e.line, e.kind) for e in events] == [
        (17, EdgeKind.FALLING),
        (22, EdgeKind.RISING),
        (17, EdgeKind.RISING),
    ]
    assert all(e.at > 1.6e9 for e in events)  # seconds since the epoch
    assert gpio.drain_edge_events() == []


def test_lines_lists_configured_and_pwm_lines(gpio: GpiodGpio, fake: FakeSys) -> None:
    fake.export_pwm(3)
    gpio.configure_line(17, BUTTON)
    gpio.set_pwm(19, 1000, 25)
    states = {s.line: s for s in gpio.lines()}
    assert states[17].config == BUTTON
    assert states[17].value == 1
    assert states[19].pwm_frequency_hz == 1000
    assert states[19].pwm_duty_pct == 25


def test_hardware_pwm_writes_period_duty_and_enable(gpio: GpiodGpio, fake: FakeSys) -> None:
    channel = fake.export_pwm(2)  # BCM 18 -> channel 2 of RP1 PWM0
    gpio.set_pwm(18, 25_000, 40)
    assert (channel / "period").read_text() == "40000"
    assert (channel / "duty_cycle").read_text() == "16000"
    assert (channel / "enable").read_text() == "1"
    gpio.set_pwm(18, 100_000, 50)  # a shorter period than the old duty: duty goes first
    assert (channel / "period").read_text() == "10000"
    assert (channel / "duty_cycle").read_text() == "5000"


def test_pwm_exports_the_channel(fake: FakeSys) -> None:
    muxed = FakePinctrl.pwm_2chan(pins=(12, 13))
    pwm = SysfsPwm(
        fake.sys,
        mux=PinmuxReader(run=muxed.run, debugfs=fake.base / "debugfs"),
        sleep=lambda s: None,
    )
    assert fake.pwm_chip is not None
    with pytest.raises(ActuatorError, match=r"did not create .*pwm1"):
        pwm.set(13, 1000, 50)  # the fake kernel does not create the directory by itself
    assert (fake.pwm_chip / "export").read_text() == "1"


def udev_pwm(fake: FakeSys, writable_after: int | None) -> tuple[SysfsPwm, list[float]]:
    """A PWM whose kernel creates the channel on export and whose udev hands its files to
    our group after ``writable_after`` polls (``None``: never: the rule is missing)."""
    slept: list[float] = []
    checks: list[Path] = []

    def sleep(seconds: float) -> None:
        if not slept:
            fake.export_pwm(1)  # the kernel: the directory is there, root's files
        slept.append(seconds)

    def writable(path: Path) -> bool:
        checks.append(path)
        return writable_after is not None and len(slept) >= writable_after

    muxed = FakePinctrl.pwm_2chan(pins=(12, 13))
    mux = PinmuxReader(run=muxed.run, debugfs=fake.base / "debugfs")
    return SysfsPwm(fake.sys, mux=mux, sleep=sleep, writable=writable), slept


def test_a_new_channel_is_driven_once_udev_gives_it_to_our_group(fake: FakeSys) -> None:
    pwm, slept = udev_pwm(fake, writable_after=3)
    pwm.set(13, 1000, 50)
    assert len(slept) == 3
    assert fake.pwm_chip is not None
    assert (fake.pwm_chip / "pwm1/enable").read_text() == "1"


def test_a_channel_udev_never_hands_over_names_the_rule(fake: FakeSys) -> None:
    pwm, slept = udev_pwm(fake, writable_after=None)
    with pytest.raises(ActuatorError, match=r"60-wrale\.rules") as caught:
        pwm.set(13, 1000, 50)
    assert "pwm1/period is not writable" in caught.value.message
    assert sum(slept) == pytest.approx(1.0)  # waited a second, not forever


def test_pwm_refuses_other_lines_and_bad_values(gpio: GpiodGpio, fake: FakeSys) -> None:
    fake.export_pwm(2)
    assert set(PI5_PWM_CHANNELS) == {12, 13, 18, 19}
    with pytest.raises(UnsupportedError, match="12, 13, 18, 19"):
        gpio.set_pwm(17, 1000, 50)
    with pytest.raises(InvalidRequestError):
        gpio.set_pwm(18, 0, 50)
    with pytest.raises(InvalidRequestError):
        gpio.set_pwm(18, 1000, 101)


def test_pwm_without_the_overlay_is_unsupported(tmp_path: Path) -> None:
    fake = FakeSys(tmp_path, pwm_overlay=False)
    with pytest.raises(UnsupportedError, match="pwm-2chan"):
        fake.gpio(FakeChip()).set_pwm(18, 1000, 50)


def test_pwm_line_back_to_gpio_stops_the_channel(gpio: GpiodGpio, fake: FakeSys) -> None:
    channel = fake.export_pwm(2)
    gpio.set_pwm(18, 1000, 50)
    with pytest.raises(ConflictError, match="PWM"):
        gpio.write_line(18, 1)
    gpio.configure_line(18, LED)
    assert (channel / "enable").read_text() == "0"
    gpio.write_line(18, 1)


def test_close_releases_every_line_and_is_idempotent(gpio: GpiodGpio, chip: FakeChip) -> None:
    gpio.configure_line(17, BUTTON)
    request = chip.requests[17]
    gpio.close()
    gpio.close()
    assert request.released
    assert chip.closed
    with pytest.raises(HardwareError, match="closed"):
        gpio.read_line(17)
