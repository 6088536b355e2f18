"""The Linux backend: sysfs thermal/hwmon/cpufreq/power_supply and libgpiod v2.

Only ``wrale.metal.hw.registry`` (and tests) import this package.
"""

from wrale.metal.hw.linux.board import LinuxBoard, detect_linux_hardware
from wrale.metal.hw.linux.gpio import GpiodGpio
from wrale.metal.hw.linux.pwm import PI5_PWM_CHANNELS, SysfsPwm

__all__ = ["PI5_PWM_CHANNELS", "GpiodGpio", "LinuxBoard", "SysfsPwm", "detect_linux_hardware"]
