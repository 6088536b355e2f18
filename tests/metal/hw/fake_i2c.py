"""An I2C bus in memory with chips whose registers behave like the real parts, for the UPS
HAT readers (the ``I2cBus`` interface that ``/dev/i2c-N`` serves on a board).

Shapes: an absent address fails like i2c-dev does (``OSError`` EREMOTEIO, the adapter saw
no ACK). ``FakeMax17048``: Maxim MAX17048/MAX17049 datasheet 19-6171 register map (VCELL
02h, SOC 04h, MODE 06h, VERSION 08h = 0012h, CONFIG 0Ch = 971Ch at power-on, CRATE 16h,
VRESET/ID 18h, STATUS 1Ah; read-only registers ignore writes). ``FakeIna219``: TI INA219
datasheet SBOS448 (power-on CONFIG 399Fh and CALIBRATION 0; CURRENT = SHUNT x CAL / 4096
and POWER = CURRENT x BUS / 5000, so current reads 0 until calibration is written;
calibration bit 0 reads 0; BUS = voltage/4 mV << 3 with CNVR bit 1 and OVF bit 0).
"""

from __future__ import annotations

import errno


def _word(value: int) -> int:
    return value & 0xFFFF


def _signed(value: int) -> int:
    value = max(-0x8000, min(0x7FFF, value))
    return value & 0xFFFF


class FakeChip:
    """A register file; subclasses give registers behaviour."""

    read_only: frozenset[int] = frozenset()

    def __init__(self, registers: dict[int, int]) -> None:
        self.registers = dict(registers)
        self.writes: list[tuple[int, int]] = []

    def read(self, register: int) -> int:
        if register not in self.registers:
            raise OSError(errno.EIO, "Input/output error")  # the chip NAKs the register
        return self.registers[register]

    def write(self, register: int, value: int) -> None:
        self.writes.append((register, value))
        if register not in self.read_only:
            self.registers[register] = _word(value)


class FakeMax17048(FakeChip):
    read_only = frozenset({0x02, 0x04, 0x08, 0x16})

    def __init__(self) -> None:
        super().__init__(
            {
                0x02: 0,
                0x04: 0,
                0x06: 0,
                0x08: 0x0012,
                0x0C: 0x971C,
                0x14: 0x00FF,
                0x16: 0,
                0x18: 0x9600,
                0x1A: 0x0100,
            }
        )

    def set_raw(self, *, vcell: int, soc: int, crate: int = 0) -> None:
        """Words exactly as the chip would hold them (CRATE two's complement)."""
        self.registers[0x02], self.registers[0x04] = vcell, soc
        self.registers[0x16] = _signed(crate)


class FakeIna219(FakeChip):
    read_only = frozenset({0x01, 0x02, 0x03, 0x04})

    def __init__(self, *, shunt_ohm: float = 0.1) -> None:
        super().__init__({0x00: 0x399F, 0x01: 0, 0x02: 0, 0x03: 0, 0x04: 0, 0x05: 0})
        self.shunt_ohm = shunt_ohm
        self.overflow = False

    def set_pack(self, volts: float, amps: float) -> None:
        """The pack at ``volts`` with ``amps`` through the shunt (+ into the pack)."""
        self.registers[0x01] = _signed(round(amps * self.shunt_ohm / 10e-6))
        self.registers[0x02] = (round(volts / 0.004) << 3) | 0x2 | int(self.overflow)

    def read(self, register: int) -> int:
        shunt = (
            self.registers[0x01] - 0x10000
            if self.registers[0x01] & 0x8000
            else self.registers[0x01]
        )
        current = (
            shunt * self.registers[0x05] // 4096
            if shunt >= 0
            else -(-shunt * self.registers[0x05] // 4096)
        )
        if register == 0x04:
            return _signed(current)
        if register == 0x03:
            return _word(abs(current) * (self.registers[0x02] >> 3) // 5000)
        return super().read(register)

    def write(self, register: int, value: int) -> None:
        super().write(register, value & 0xFFFE if register == 0x05 else value)


class FakeI2cBus:
    """Chips by address; ``fail`` makes every transfer fail as a disconnected HAT would."""

    def __init__(self, chips: dict[int, FakeChip] | None = None) -> None:
        self.chips = dict(chips or {})
        self.fail = False
        self.closed = False
        self.transfers = 0

    def read_word(self, address: int, register: int) -> int:
        return self._chip(address).read(register)

    def write_word(self, address: int, register: int, value: int) -> None:
        self._chip(address).write(register, value)

    def close(self) -> None:
        self.closed = True

    def _chip(self, address: int) -> FakeChip:
        self.transfers += 1
        chip = self.chips.get(address)
        if self.fail or chip is None:
            raise OSError(errno.EREMOTEIO, "Remote I/O error")
        return chip
