"""LinuxBoard wiring: model, detection, attributes, named GPIO lines, default GPIO, close()."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.metal.hw.fakechip import FakeChip
from tests.metal.hw.fakesys import PI5_MODEL, FakeSys
from wrale.metal.hw.base import Direction, LineConfig
from wrale.metal.hw.linux import LinuxBoard, detect_linux_hardware
from wrale.metal.hw.linux.board import default_model_path
from wrale.shared.config import GpioLineSettings
from wrale.shared.errors import HardwareError


@pytest.fixture
def fake(tmp_path: Path) -> FakeSys:
    return FakeSys(tmp_path)


def test_attributes(fake: FakeSys) -> None:
    board = LinuxBoard(fake.paths(), name="rack1-u07", gpio=fake.gpio(FakeChip()))
    assert board.name == "rack1-u07"
    assert board.model == PI5_MODEL  # NUL stripped
    assert board.backend == "linux"
    assert board.blocking_io is True
    assert board.sim is None


def test_model_path_is_injectable_with_a_fallback(fake: FakeSys, tmp_path: Path) -> None:
    custom = tmp_path / "model"
    custom.write_text("Compute Module 5 Rev 1.0\n")
    assert fake.board().model == PI5_MODEL
    assert LinuxBoard(fake.paths(), model_path=custom).model == "Compute Module 5 Rev 1.0"
    assert LinuxBoard(fake.paths(), model_path=tmp_path / "none").model == "Linux board"
    assert default_model_path(Path("/sys")) == Path("/proc/device-tree/model")
    assert default_model_path(fake.sys) == fake.base / "proc/device-tree/model"


def test_detect_linux_hardware(fake: FakeSys, tmp_path: Path) -> None:
    assert detect_linux_hardware(fake.sys)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not detect_linux_hardware(empty)


def test_named_lines_are_configured_at_start(fake: FakeSys) -> None:
    chip = FakeChip()
    lines = {
        "relay": GpioLineSettings(line=23, direction="out"),
        "door": GpioLineSettings(line=24, pull="up", edge="falling", debounce_ms=30),
    }
    board = fake.board(chip=chip, gpio_lines=lines)
    assert board.gpio_lines == {"relay": 23, "door": 24}
    states = {s.line: s for s in board.gpio.lines()}
    assert states[23].config.direction is Direction.OUT
    assert states[24].config.debounce_ms == 30
    assert states[24].value == 1


def test_a_named_line_that_fails_is_logged_not_fatal(
    fake: FakeSys, caplog: pytest.LogCaptureFixture
) -> None:
    lines = {"relay": GpioLineSettings(line=23, direction="out")}
    fake.board(chip=FakeChip(busy=[23]), gpio_lines=lines)
    assert any("'relay'" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


def test_default_gpio_opens_the_chip_only_when_used(fake: FakeSys) -> None:
    board = LinuxBoard(fake.paths(gpio_chip=str(fake.base / "dev/gpiochip0")))
    assert board.thermal.read_thermal().cpu_temp_c is not None
    with pytest.raises(HardwareError, match="gpiochip0"):
        board.gpio.configure_line(17, LineConfig())
    board.close()


def test_default_gpio_without_a_chip_leaves_tamper_unavailable(fake: FakeSys) -> None:
    paths = fake.paths(gpio_chip=str(fake.base / "dev/gpiochip0"), case_switch_line=5)
    assert LinuxBoard(paths).tamper.read_tamper().case_open is None


def test_close_is_idempotent_and_releases_lines(fake: FakeSys) -> None:
    chip = FakeChip()
    board = fake.board(chip=chip, case_switch_line=5)
    request = chip.requests[5]
    board.close()
    board.close()
    assert request.released
    assert chip.closed
