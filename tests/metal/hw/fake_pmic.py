"""The Raspberry Pi 5's PMIC as ``vcgencmd pmic_read_adc`` prints it, for the power path.

Shape: Raspberry Pi OS Bookworm's ``vcgencmd`` on a Pi 5 (DA9091 PMIC, firmware 2024-2025),
as printed on the board and quoted in public monitoring tools and forum posts: twelve
current channels ``<RAIL>_A current(N)=<value>A`` then twelve voltage channels
``<RAIL>_V volt(N)=<value>V``, right-aligned names, eight decimals; ``EXT5V_V volt(24)`` is
the USB-C input. A firmware without the command answers ``error=1 error_msg="..."``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence

PI5_PMIC_READ_ADC = """\
 3V7_WL_SW_A current(0)=0.09466522A
   3V3_SYS_A current(1)=0.08197812A
   1V8_SYS_A current(2)=0.15029320A
  DDR_VDD2_A current(3)=0.00390372A
  DDR_VDDQ_A current(4)=0.00000000A
   1V1_SYS_A current(5)=0.20299340A
    0V8_SW_A current(6)=0.30546610A
  VDD_CORE_A current(7)=1.11625000A
   3V3_DAC_A current(17)=0.00000000A
   3V3_ADC_A current(18)=0.00018315A
   0V8_AON_A current(16)=0.00274725A
      HDMI_A current(22)=0.01660560A
 3V7_WL_SW_V volt(8)=3.62925200V
   3V3_SYS_V volt(9)=3.31652900V
   1V8_SYS_V volt(10)=1.79877700V
  DDR_VDD2_V volt(11)=1.10146400V
  DDR_VDDQ_V volt(12)=0.60622650V
   1V1_SYS_V volt(13)=1.10402800V
    0V8_SW_V volt(14)=0.79853400V
  VDD_CORE_V volt(15)=0.74944980V
   3V3_DAC_V volt(20)=3.31043600V
   3V3_ADC_V volt(21)=3.31684600V
   0V8_AON_V volt(19)=0.79794790V
      HDMI_V volt(23)=5.10138000V
     EXT5V_V volt(24)=5.08530000V
      BATT_V volt(25)=0.00000000V
"""
NOT_REGISTERED = 'error=1 error_msg="Command not registered"\n'


def pmic_text(ext5v_v: float) -> str:
    """The Pi 5's answer with the USB-C input at ``ext5v_v``."""
    return PI5_PMIC_READ_ADC.replace("5.08530000V", f"{ext5v_v:.8f}V")


class FakePmic:
    """Answers ``pmic_read_adc`` with ``ext5v_v`` (``None``: a firmware without the command,
    which prints the error and exits 0); other commands go to ``fallback``."""

    def __init__(self, fallback: Callable[[Sequence[str]], str] | None = None) -> None:
        self.ext5v_v: float | None = 5.0853
        self.fail = False  # the tool itself fails (exit status 255)
        self.calls = 0
        self._fallback = fallback

    def run(self, argv: Sequence[str]) -> str:
        if list(argv[1:2]) == ["pmic_read_adc"]:
            self.calls += 1
            if self.fail:
                raise subprocess.CalledProcessError(255, list(argv), "")
            return NOT_REGISTERED if self.ext5v_v is None else pmic_text(self.ext5v_v)
        if self._fallback is None:
            raise subprocess.CalledProcessError(255, list(argv), NOT_REGISTERED)
        return self._fallback(argv)
