"""metald's settings file reaches the board: what is fitted to a simulated Pi 5, the UPS HAT,
the tamper inputs' wiring, the GPIO chip and the firmware's throttle file, from TOML or the
environment through ``create_board``; and the example config in docs/ loads as shipped and
with each of its UPS HAT sections uncommented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.metal.hw.fake_pisugar import FakePiSugarServer
from tests.metal.hw.fakesys import FakeSys
from wrale.metal.hw.base import (
    CaseContact,
    Direction,
    LineConfig,
    MotionActive,
    TamperInput,
)
from wrale.metal.hw.linux import LinuxBoard
from wrale.metal.hw.registry import create_board
from wrale.metal.hw.sim import SimBoard
from wrale.metal.hw.sim.tamper import SimTamper
from wrale.metal.hw.sim.ups import SimUpsPower
from wrale.shared.board_settings import Ina219Config, Max17048Config, PiSugarConfig
from wrale.shared.clock import FakeClock
from wrale.shared.config import MetalSettings, load_settings
from wrale.shared.errors import ConfigError, UnsupportedError

EXAMPLE = Path(__file__).parents[3] / "docs/examples/metald.toml"


def settings_from(tmp_path: Path, toml: str, **environ: str) -> MetalSettings:
    path = tmp_path / "metald.toml"
    path.write_text(toml, encoding="utf-8")
    return load_settings(MetalSettings, config_file=path, environ=environ)


def test_what_is_fitted_to_a_simulated_board_comes_from_the_file(tmp_path: Path) -> None:
    settings = settings_from(
        tmp_path,
        """
backend = "sim"
[sim]
seed = 3
active_cooler = false
ambient_sensor = true
pwm_muxed = [12, 13]
[sim.ups_hat]
kind = "ina219"
address = 0x43
cells = 1
[tamper_wiring]
case_contact = "no"
motion_active = "low"
""",
    )
    board = create_board(settings, FakeClock())
    assert isinstance(board, SimBoard)
    assert board.fan.read_fan().rpm == 0  # a bare board: no fan turning
    assert board.thermal.read_thermal().ambient_temp_c is not None  # the HAT's air sensor
    assert isinstance(board.power, SimUpsPower)
    assert board.power.read_power().battery_pct is not None  # read through the INA219
    board.gpio.configure_line(12, LineConfig(direction=Direction.OUT))
    board.gpio.configure_line(18, LineConfig(direction=Direction.OUT))
    board.gpio.set_pwm(12, 1000.0, 50.0)  # muxed by the (simulated) overlay
    with pytest.raises(UnsupportedError, match="dtoverlay"):
        board.gpio.set_pwm(18, 1000.0, 50.0)
    tamper = board.tamper
    assert isinstance(tamper, SimTamper)
    # lid on: a normally-open contact is open (pulled up, 1); no one there: an active-low
    # PIR holds its line high (1)
    assert tamper.line_level(TamperInput.CASE) == 1
    assert tamper.line_level(TamperInput.MOTION) == 1
    assert tamper.wiring.case_contact is CaseContact.NO
    assert tamper.wiring.motion_active is MotionActive.LOW


def test_defaults_are_a_pi5_with_the_active_cooler_and_nothing_else(tmp_path: Path) -> None:
    board = create_board(settings_from(tmp_path, 'backend = "sim"\n'), FakeClock())
    assert isinstance(board, SimBoard)
    assert not isinstance(board.power, SimUpsPower)
    reading = board.thermal.read_thermal()
    assert reading.ambient_temp_c is None
    assert reading.gpu_temp_c is None
    assert isinstance(board.tamper, SimTamper)
    assert board.tamper.wiring.case_contact is CaseContact.NC
    assert board.tamper.wiring.motion_active is MotionActive.HIGH


def test_a_linux_board_gets_its_ups_hat_wiring_and_throttle_file(tmp_path: Path) -> None:
    fake = FakeSys(tmp_path / "root")
    server = FakePiSugarServer(tmp_path / "ps.sock")
    try:
        settings = settings_from(
            tmp_path,
            f"""
backend = "linux"
data_dir = "{tmp_path / "data"}"
[linux]
sysfs_root = "{fake.sys}"
read_get_throttled_file = true
[tamper_wiring]
case_contact = "no"
""",
            WRALE_METAL_LINUX__UPS=f'{{"kind": "pisugar", "socket_path": "{server.path}"}}',
        )
        assert settings.linux.gpio_chip == "auto"  # chip by label: gpiochip0 or 4 alike
        board = create_board(settings, FakeClock())
        assert isinstance(board, LinuxBoard)
        assert board.power.read_power().battery_pct == pytest.approx(87.5)
        assert server.requests  # asked pisugar-server, not a power_supply entry
        fake.set_throttled(0x4)
        fake.firmware.word = 0  # only the sysfs file says so
        assert board.throttle.read_throttle().throttled_now
        wiring = board.tamper.wiring  # type: ignore[attr-defined]
        assert wiring.case_contact is CaseContact.NO
        board.close()
    finally:
        server.close()


@pytest.mark.parametrize(
    ("toml", "setting", "problem"),
    [
        (
            '[linux]\npower_supplies = { battery = "BAT0" }\n[linux.ups]\nkind = "pisugar"\n',
            "linux.ups",
            "not both",
        ),
        ('[sim]\nbattery_wh = 0\n[sim.ups_hat]\nkind = "max17048"\n', "sim.ups_hat", "battery"),
        ("[sim]\npwm_muxed = [5]\n", "sim.pwm_muxed", "12, 13, 18, 19"),
        ('[linux.ups]\nkind = "bq27441"\n', "linux.ups.kind", "bq27441"),
        ('[linux.ups]\nkind = "max17048"\naddress = 0x80\n', "linux.ups.address", "<= 119"),
        ('[linux.ups]\nkind = "max17048"\nmains_line = 16\n', "linux.ups.charge_control_line", ""),
        ('[tamper_wiring]\ncase_contact = "closed"\n', "tamper_wiring.case_contact", "closed"),
        ('[linux]\ngpio_chip = ""\n', "linux.gpio_chip", "length"),
    ],
)
def test_a_wrong_board_setting_is_refused_by_name(
    tmp_path: Path, toml: str, setting: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from(tmp_path, toml)
    message = str(caught.value)
    assert f"setting '{setting}'" in message
    assert problem in message


def ups_sections(text: str) -> list[str]:
    """The example's commented ``[linux.ups]`` sections, each uncommented."""
    blocks = re.findall(r"^# \[linux\.ups\]\n(?:^# [a-z_]+ = .*\n)+", text, flags=re.M)
    return [re.sub(r"^# ", "", block, flags=re.M) for block in blocks]


def test_the_example_config_loads_as_shipped_and_with_each_ups_hat(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    shipped = settings_from(tmp_path, text)
    assert shipped.listen == "127.0.0.1:8431"
    assert shipped.linux.ups is None
    sections = ups_sections(text)
    kinds = []
    for section in sections:
        # a UPS HAT section goes after [linux] (the file's last table is [gpio.relay])
        ups = settings_from(tmp_path, text.replace("[gpio.relay]", section + "\n[gpio.relay]"))
        kinds.append(type(ups.linux.ups))
    assert kinds == [Max17048Config, Ina219Config, PiSugarConfig]


def test_yes_no_words_reach_booleans_inside_a_ups_hat_section(tmp_path: Path) -> None:
    settings = settings_from(
        tmp_path,
        "",
        WRALE_METAL_LINUX__UPS__KIND="max17048",
        WRALE_METAL_LINUX__UPS__MAINS_ACTIVE_HIGH="no",
        WRALE_METAL_SIM__ACTIVE_COOLER="off",
    )
    assert settings.linux.ups == Max17048Config(mains_active_high=False)
    assert settings.sim.active_cooler is False


def test_the_packaged_metald_toml_loads_with_its_examples_uncommented(tmp_path: Path) -> None:
    text = (EXAMPLE.parents[2] / "packaging/etc/metald.toml").read_text(encoding="utf-8")
    assert settings_from(tmp_path, text).backend == "linux"
    uncommented = re.sub(r"^# (\[|[a-z_]+ = )", r"\1", text, flags=re.M)
    settings = settings_from(tmp_path, uncommented)
    assert settings.listen == "127.0.0.1:8431"
    assert settings.tamper_wiring.case_contact == "nc"
