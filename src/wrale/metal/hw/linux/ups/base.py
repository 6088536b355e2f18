"""The one interface every UPS HAT reader provides, and the I2C bus the chip readers share.

A reader never raises out of ``read_ups``: what it cannot read is ``None`` in the reading
(logged once through ``HealthLog``). Register words are as the chips' datasheets number
them: 16 bits, most significant byte first on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class UpsReading:
    """One look at a UPS HAT; ``None`` where the HAT cannot tell or the read failed.

    ``current_a`` is the battery's current, positive while it charges; ``mains_present``
    says whether the HAT's input supply is up; ``charging`` whether the cell takes charge.
    """

    battery_pct: float | None = None
    battery_v: float | None = None
    current_a: float | None = None
    mains_present: bool | None = None
    charging: bool | None = None

    @property
    def battery_known(self) -> bool:
        """Whether anything about the cell could be read."""
        return self.battery_pct is not None or self.battery_v is not None


class UpsReader(Protocol):
    """Reads one UPS HAT. Blocking (I2C, a socket): the core calls it from a thread."""

    name: str

    def read_ups(self) -> UpsReading: ...

    def close(self) -> None: ...


class I2cBus(Protocol):
    """Register access on one I2C bus; any transfer failure raises ``OSError``."""

    def read_word(self, address: int, register: int) -> int:
        """The 16-bit register ``register`` of the chip at ``address`` (MSB first)."""
        ...

    def write_word(self, address: int, register: int, value: int) -> None: ...

    def close(self) -> None: ...


def signed16(word: int) -> int:
    """A register word read as two's complement."""
    return word - 0x10000 if word & 0x8000 else word
