"""``/dev/i2c-N`` through the kernel's i2c-dev interface, without a third-party library.

A register read is one ``I2C_RDWR`` transaction (write the register number, repeated
start, read two bytes), as the MAX17048 and INA219 datasheets draw it; nothing else on
the bus can slip between the two halves. Layouts from ``include/uapi/linux/i2c-dev.h``
and ``include/uapi/linux/i2c.h``.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import threading

I2C_RDWR = 0x0707  # i2c-dev.h: combined transfers, one STOP at the end
I2C_M_RD = 0x0001  # i2c.h: this message reads from the chip


class I2cMsg(ctypes.Structure):
    """``struct i2c_msg``: addr, flags, len (all __u16), then ``__u8 *buf``."""

    _fields_ = (
        ("addr", ctypes.c_uint16),
        ("flags", ctypes.c_uint16),
        ("len", ctypes.c_uint16),
        ("buf", ctypes.POINTER(ctypes.c_uint8)),
    )


class I2cRdwrData(ctypes.Structure):
    """``struct i2c_rdwr_ioctl_data``: ``struct i2c_msg *msgs`` and ``__u32 nmsgs``."""

    _fields_ = (("msgs", ctypes.POINTER(I2cMsg)), ("nmsgs", ctypes.c_uint32))


def i2c_dev_path(bus: int) -> str:
    return f"/dev/i2c-{bus}"


class LinuxI2cBus:
    """One open ``/dev/i2c-N``; opened on first use, reopened after a failure."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._lock = threading.Lock()

    def read_word(self, address: int, register: int) -> int:
        out = (ctypes.c_uint8 * 1)(register & 0xFF)
        into = (ctypes.c_uint8 * 2)()
        self._transfer(
            (address, 0, out),
            (address, I2C_M_RD, into),
        )
        return (into[0] << 8) | into[1]

    def write_word(self, address: int, register: int, value: int) -> None:
        out = (ctypes.c_uint8 * 3)(register & 0xFF, (value >> 8) & 0xFF, value & 0xFF)
        self._transfer((address, 0, out))

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _transfer(self, *parts: tuple[int, int, ctypes.Array[ctypes.c_uint8]]) -> None:
        msgs = (I2cMsg * len(parts))()
        for msg, (address, flags, buf) in zip(msgs, parts, strict=True):
            msg.addr = address
            msg.flags = flags
            msg.len = len(buf)
            msg.buf = ctypes.cast(buf, ctypes.POINTER(ctypes.c_uint8))
        request = I2cRdwrData(msgs, len(parts))
        with self._lock:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
            try:
                fcntl.ioctl(self._fd, I2C_RDWR, request)
            except OSError:
                os.close(self._fd)  # a hung-up adapter gets a fresh descriptor next time
                self._fd = None
                raise
