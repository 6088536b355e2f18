"""``vcgencmd pmic_read_adc`` parsed as a Pi 5 prints it (shape: ``fake_pmic``)."""

from __future__ import annotations

import pytest

from tests.metal.hw.fake_pmic import NOT_REGISTERED, PI5_PMIC_READ_ADC, FakePmic
from wrale.metal.hw.linux.sysfs import HealthLog
from wrale.metal.hw.linux.vcgencmd import Vcgencmd, parse_pmic_adc
from wrale.shared.clock import FakeClock


def test_every_channel_of_a_pi5_answer() -> None:
    channels = parse_pmic_adc(PI5_PMIC_READ_ADC)
    assert len(channels) == 26
    assert channels["EXT5V_V"] == pytest.approx(5.0853)
    assert channels["VDD_CORE_A"] == pytest.approx(1.11625)
    assert channels["3V7_WL_SW_A"] == pytest.approx(0.09466522)
    assert channels["BATT_V"] == 0.0


def test_one_channel_asked_by_name() -> None:
    assert parse_pmic_adc("     EXT5V_V volt(24)=5.13488000V\n") == {"EXT5V_V": 5.13488}


def test_error_answers_and_garbage_give_no_channels() -> None:
    assert parse_pmic_adc(NOT_REGISTERED) == {}
    assert parse_pmic_adc("EXT5V_V volt(24)=lots\n") == {}


def test_answers_are_cached_for_the_interval() -> None:
    clock = FakeClock()
    pmic = FakePmic()
    vc = Vcgencmd(clock, HealthLog(), run=pmic.run, min_interval_s=5.0)
    assert vc.pmic_adc() == parse_pmic_adc(PI5_PMIC_READ_ADC)
    pmic.ext5v_v = 4.7
    clock.advance(4.9)
    assert (vc.pmic_adc() or {})["EXT5V_V"] == pytest.approx(5.0853)
    clock.advance(0.2)
    assert (vc.pmic_adc() or {})["EXT5V_V"] == pytest.approx(4.7)
    assert pmic.calls == 2
