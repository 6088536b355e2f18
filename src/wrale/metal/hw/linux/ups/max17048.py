"""Geekworm X120x-style UPS HATs: a MAX17048 fuel gauge on I2C plus a mains-present GPIO.

Registers from the Maxim MAX17048/MAX17049 datasheet (19-6171): VCELL 02h at 78.125 µV
per LSB, SOC 04h at 1/256 % per LSB, VERSION 08h reads 001xh, CRATE 16h signed at
0.208 %/h per LSB (+ charging). Pins from Geekworm's X1200 wiki ("X1200 Hardware"):
GPIO6 high = power supply OK, low = failed; GPIO16 is charge control (left alone here).
"""

from __future__ import annotations

from collections.abc import Callable

from wrale.metal.hw.linux.sysfs import HealthLog
from wrale.metal.hw.linux.ups.base import I2cBus, UpsReading, signed16
from wrale.shared.board_settings import Max17048Config

VCELL, SOC, VERSION, CRATE = 0x02, 0x04, 0x08, 0x16
VCELL_V_PER_LSB = 78.125e-6
SOC_PCT_PER_LSB = 1 / 256
CRATE_PCT_H_PER_LSB = 0.208
VERSION_MASK, VERSION_FAMILY = 0xFFF0, 0x0010
CELL_V_RANGE = (2.0, 5.0)  # outside this a 1S Li-ion reading is garbage
SOC_MAX_PCT = 110.0  # the gauge may overshoot 100 % a little before it relearns full
CHARGING_MIN_PCT_H = 0.5  # CRATE noise around zero is not charging


class Max17048Reader:
    """Reads the gauge and the mains line; never raises (failures read ``None``, logged once)."""

    def __init__(
        self,
        config: Max17048Config,
        bus: I2cBus,
        health: HealthLog,
        *,
        mains_level: Callable[[], int | None] | None = None,
    ) -> None:
        self.config = config
        self.name = f"UPS HAT fuel gauge (MAX17048 at i2c-{config.bus} 0x{config.address:02x})"
        self._bus = bus
        self._health = health
        self._mains_level = mains_level
        self._verified = False

    def read_ups(self) -> UpsReading:
        words = self._read_words()
        mains = self._mains()
        if words is None:
            return UpsReading(mains_present=mains)
        vcell, soc, crate = words
        cell_v = vcell * VCELL_V_PER_LSB
        pct = soc * SOC_PCT_PER_LSB
        rate_pct_h = signed16(crate) * CRATE_PCT_H_PER_LSB
        if not CELL_V_RANGE[0] <= cell_v <= CELL_V_RANGE[1] or pct > SOC_MAX_PCT:
            self._health.failed(self.name, f"implausible VCELL {vcell:#06x} / SOC {soc:#06x}")
            return UpsReading(mains_present=mains)
        self._health.ok(self.name)
        if mains is None and self._mains_level is None:
            mains = rate_pct_h > -CHARGING_MIN_PCT_H  # no mains line: not discharging
        return UpsReading(
            battery_pct=min(100.0, pct),
            battery_v=round(cell_v, 5),
            current_a=None,  # the gauge has no current sense
            mains_present=mains,
            charging=bool(mains) and rate_pct_h >= CHARGING_MIN_PCT_H,
        )

    def close(self) -> None:
        self._bus.close()

    def _read_words(self) -> tuple[int, int, int] | None:
        address = self.config.address
        try:
            if not self._verified:
                version = self._bus.read_word(address, VERSION)
                if version & VERSION_MASK != VERSION_FAMILY:
                    self._health.failed(
                        self.name, f"VERSION reads {version:#06x}, not a MAX17048 (001xh)"
                    )
                    return None
                self._verified = True
            return (
                self._bus.read_word(address, VCELL),
                self._bus.read_word(address, SOC),
                self._bus.read_word(address, CRATE),
            )
        except OSError as exc:
            self._verified = False  # the HAT may have been swapped: check it again
            self._health.failed(self.name, f"I2C read failed: {exc}")
            return None

    def _mains(self) -> bool | None:
        if self._mains_level is None:
            return None
        level = self._mains_level()
        if level is None:
            return None
        return bool(level) is self.config.mains_active_high
