"""Waveshare UPS HATs: an INA219 current/voltage monitor on the battery pack, over I2C.

Registers and formulae from the TI INA219 datasheet (SBOS448): bus voltage 02h bits 15..3
at 4 mV (bit 1 CNVR, bit 0 OVF), shunt voltage 01h signed at 10 µV, current 04h signed
at Current_LSB once calibration 05h = trunc(0.04096 / (Current_LSB x R_shunt)) is set.
Pack curve as Waveshare's example: linear from 3.0 V to 4.2 V per cell (2S: 6.0-8.4 V).
"""

from __future__ import annotations

from wrale.metal.hw.linux.sysfs import HealthLog
from wrale.metal.hw.linux.ups.base import I2cBus, UpsReading, signed16
from wrale.shared.board_settings import Ina219Config

CONFIG, SHUNT, BUS, CURRENT, CALIBRATION = 0x00, 0x01, 0x02, 0x04, 0x05
BUS_V_PER_LSB = 0.004
SHUNT_V_PER_LSB = 10e-6
OVF = 0x0001
# 32 V range, PGA /8 (±320 mV), 12-bit x 32 samples on bus and shunt, continuous
# (Waveshare's "32V 2A" setting; the power-on value 399Fh samples only once).
CONFIG_32V_AVG32 = 0x3EEF
BUS_V_MAX = 26.0  # the INA219 measures up to 26 V whatever the range bit says


class Ina219Reader:
    """Programs calibration when the chip lost it (power-on, brown-out), then reads."""

    def __init__(self, config: Ina219Config, bus: I2cBus, health: HealthLog) -> None:
        # the pack curve (cells, empty < full) and the calibration are checked by the config
        self.config = config
        self.name = f"UPS HAT monitor (INA219 at i2c-{config.bus} 0x{config.address:02x})"
        self._bus = bus
        self._health = health

    def read_ups(self) -> UpsReading:
        c = self.config
        try:
            self._calibrate()
            bus_word = self._bus.read_word(c.address, BUS)
            current_word = self._bus.read_word(c.address, CURRENT)
        except OSError as exc:
            self._health.failed(self.name, f"I2C transfer failed: {exc}")
            return UpsReading()
        pack_v = (bus_word >> 3) * BUS_V_PER_LSB
        if pack_v > BUS_V_MAX or pack_v < c.cells * 2.0:
            self._health.failed(self.name, f"implausible bus voltage word {bus_word:#06x}")
            return UpsReading()
        current_a: float | None = signed16(current_word) * c.current_lsb_a
        if bus_word & OVF:
            self._health.failed(f"{self.name} current", "math overflow (OVF): current unknown")
            current_a = None
        else:
            self._health.ok(f"{self.name} current")
        self._health.ok(self.name)
        empty_v, full_v = c.cells * c.empty_cell_v, c.cells * c.full_cell_v
        pct = max(0.0, min(100.0, 100.0 * (pack_v - empty_v) / (full_v - empty_v)))
        return UpsReading(
            battery_pct=round(pct, 2),
            battery_v=round(pack_v, 3),
            current_a=None if current_a is None else round(current_a, 4),
            mains_present=None if current_a is None else current_a >= -c.idle_band_a,
            charging=None if current_a is None else current_a > c.idle_band_a,
        )

    def close(self) -> None:
        self._bus.close()

    def _calibrate(self) -> None:
        c = self.config
        if self._bus.read_word(c.address, CALIBRATION) != c.calibration:
            self._bus.write_word(c.address, CONFIG, CONFIG_32V_AVG32)
            self._bus.write_word(c.address, CALIBRATION, c.calibration)
