"""Hardware PWM only on pins muxed for it: ``pinctrl get`` first, debugfs ``pinmux-pins`` next,
and an error that says which ``config.txt`` line is missing (fixtures: ``fakegpio.py``)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.metal.hw.fakechip import FakeChip
from tests.metal.hw.fakegpio import FakePinctrl
from tests.metal.hw.fakesys import FakeSys
from wrale.metal.hw.base import Direction, LineConfig
from wrale.metal.hw.linux import GpiodGpio, SysfsPwm
from wrale.metal.hw.linux.pinmux import PinmuxReader, parse_pinctrl_get, parse_pinmux_pins
from wrale.metal.hw.pwm_pins import PI5_PWM_PINS
from wrale.shared.errors import UnsupportedError

LED = LineConfig(direction=Direction.OUT)
PAIR_12_13 = "dtoverlay=pwm-2chan,pin=12,func=4,pin2=13,func2=4"


def gpio_on(fake: FakeSys, pinctrl: FakePinctrl, debugfs: Path | None = None) -> GpiodGpio:
    chip = FakeChip(pinctrl=pinctrl)
    mux = PinmuxReader(run=pinctrl.run, debugfs=debugfs or fake.base / "no-debugfs")
    pwm = SysfsPwm(fake.sys, mux=mux)
    return GpiodGpio("/dev/gpiochip0", pwm=pwm, open_chip=chip.open)


def test_pinctrl_get_lines_parse() -> None:
    muxed = parse_pinctrl_get("18: a3    pd | lo // GPIO18 = PWM0_CHAN2\n", 18)
    assert muxed is not None
    assert (muxed.function, muxed.signal, muxed.gpio) == ("a3", "PWM0_CHAN2", False)
    assert muxed.drives(PI5_PWM_PINS[18])
    assert not muxed.drives(PI5_PWM_PINS[19])
    idle = parse_pinctrl_get("12: no    pd | -- // GPIO12 = none", 12)
    assert idle is not None
    assert not idle.drives(PI5_PWM_PINS[12])
    output = parse_pinctrl_get("17: op dl pd | lo // GPIO17 = output", 17)
    assert output is not None
    assert output.gpio
    assert parse_pinctrl_get("18: a3    pd | lo // GPIO18 = PWM0_CHAN2", 19) is None
    for garbage in ("", "No GPIO chips found", "\x00\xff 18:", "18:"):
        assert parse_pinctrl_get(garbage, 18) is None


def test_pinmux_pins_lines_parse() -> None:
    text = FakePinctrl({18: "a3", 17: "ip"}).pinmux_pins()
    muxed = parse_pinmux_pins(text, 18)
    assert muxed is not None
    assert muxed.drives(PI5_PWM_PINS[18])
    taken = parse_pinmux_pins(text, 17)
    assert taken is not None
    assert taken.gpio
    idle = parse_pinmux_pins(text, 12)
    assert idle is not None
    assert (idle.function, idle.drives(PI5_PWM_PINS[12])) == ("none", False)
    assert parse_pinmux_pins("garbage\n", 18) is None


def test_pinctrl_is_asked_first(tmp_path: Path) -> None:
    pinctrl = FakePinctrl.pwm_2chan()
    FakePinctrl().write_debugfs(tmp_path)  # debugfs disagrees: pinctrl reads the registers
    reading = PinmuxReader(run=pinctrl.run, debugfs=tmp_path).read(18)
    assert reading is not None
    assert (reading.source, reading.signal) == ("pinctrl get", "PWM0_CHAN2")
    assert pinctrl.calls == [["pinctrl", "get", "18"]]


@pytest.mark.parametrize("pinctrl", [FakePinctrl(installed=False), FakePinctrl(readable=False)])
def test_debugfs_when_pinctrl_cannot_answer(tmp_path: Path, pinctrl: FakePinctrl) -> None:
    written = FakePinctrl.pwm_2chan().write_debugfs(tmp_path)
    reading = PinmuxReader(run=pinctrl.run, debugfs=tmp_path).read(19)
    assert reading is not None
    assert (reading.source, reading.signal) == (str(written), "pwm0")


def test_no_source_reads_none_and_says_why(tmp_path: Path) -> None:
    reader = PinmuxReader(run=FakePinctrl(installed=False).run, debugfs=tmp_path / "absent")
    assert reader.read(18) is None
    assert any("pinctrl get 18" in f for f in reader.last_failures)
    assert any("absent" in f for f in reader.last_failures)


def test_a_muxed_pin_drives_its_channel(tmp_path: Path) -> None:
    fake = FakeSys(tmp_path)
    channel = fake.export_pwm(2)
    gpio_on(fake, FakePinctrl.pwm_2chan()).set_pwm(18, 25_000, 40)
    assert (channel / "enable").read_text() == "1"


def test_12_and_13_muxed_by_the_pin_func_parameters(tmp_path: Path) -> None:
    fake = FakeSys(tmp_path)
    channel = fake.export_pwm(1)
    gpio_on(fake, FakePinctrl.pwm_2chan(pins=(12, 13))).set_pwm(13, 1000, 50)
    assert (channel / "enable").read_text() == "1"


@pytest.mark.parametrize(
    ("line", "channel", "overlay"),
    [(12, 0, PAIR_12_13), (13, 1, PAIR_12_13), (18, 2, "dtoverlay=pwm-2chan")],
)
def test_an_unmuxed_pin_is_refused_naming_the_config_txt_line(
    tmp_path: Path, line: int, channel: int, overlay: str
) -> None:
    fake = FakeSys(tmp_path)
    directory = fake.export_pwm(channel)
    pinctrl = FakePinctrl.pwm_2chan() if line != 18 else FakePinctrl()
    with pytest.raises(UnsupportedError) as err:
        gpio_on(fake, pinctrl).set_pwm(line, 1000, 50)
    message = err.value.message
    assert f"`{overlay}`" in message
    assert "/boot/firmware/config.txt" in message
    assert "software PWM" in message
    assert (directory / "enable").read_text() == "0\n"  # nothing was driven


def test_a_pin_used_as_gpio_since_boot_is_refused_and_kept(tmp_path: Path) -> None:
    fake = FakeSys(tmp_path)
    fake.export_pwm(2)
    pinctrl = FakePinctrl.pwm_2chan()
    gpio = gpio_on(fake, pinctrl)
    gpio.configure_line(18, LED)  # pinctrl-rp1 switches the pin to GPIO and keeps it there
    assert pinctrl.fsel[18] == "op"
    with pytest.raises(UnsupportedError, match=r"pinctrl set 18 a3") as err:
        gpio.set_pwm(18, 1000, 50)
    assert "`dtoverlay=pwm-2chan`" in err.value.message
    gpio.write_line(18, 1)  # still ours, still an output


def test_an_unverifiable_mux_warns_once_and_drives(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="wrale.metal.hw.linux")
    fake = FakeSys(tmp_path)
    channel = fake.export_pwm(2)
    gpio = gpio_on(fake, FakePinctrl(installed=False))
    gpio.set_pwm(18, 1000, 50)
    gpio.set_pwm(18, 2000, 50)
    assert (channel / "enable").read_text() == "1"
    warnings = [r.getMessage() for r in caplog.records if "GPIO 18" in r.getMessage()]
    assert len(warnings) == 1
    assert "dtoverlay=pwm-2chan" in warnings[0]


def test_debugfs_is_read_from_the_rp1_controller_only(tmp_path: Path) -> None:
    fake = FakeSys(tmp_path)
    channel = fake.export_pwm(3)
    debugfs = tmp_path / "debugfs"
    FakePinctrl.pwm_2chan().write_debugfs(debugfs)
    other = debugfs / "107d508500.gpio-pinctrl-bcm2712"  # sorts first, says "unclaimed"
    other.mkdir()
    (other / "pinmux-pins").write_text(FakePinctrl().pinmux_pins())
    gpio = gpio_on(fake, FakePinctrl(readable=False), debugfs)
    gpio.set_pwm(19, 1000, 50)
    assert (channel / "enable").read_text() == "1"
