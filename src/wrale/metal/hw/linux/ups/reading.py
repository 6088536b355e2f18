"""A UPS HAT's reading and the board's 5 V rail turned into the board's ``PowerReading``.

Pure: no I/O, shared by the Linux board and the simulated one so both report alike.
"""

from __future__ import annotations

from wrale.metal.hw.base import PowerReading, PowerSource, SourceReading
from wrale.metal.hw.linux.ups.base import UpsReading


def power_from_ups(ups: UpsReading, rail_v: float | None) -> PowerReading:
    """Main while the HAT's input is up (or cannot tell), else the battery if it can supply.

    ``rail_v`` is the board's own 5 V input (on a Pi 5 the PMIC's EXT5V_V), whichever
    source feeds it. On battery, ``current_a``/``power_w`` are the pack's discharge (the
    sysfs battery path reports the same); on mains the HAT measures no board draw.
    """
    mains = ups.mains_present is not False
    battery_up = ups.battery_known and (ups.battery_pct is None or ups.battery_pct > 0)
    source = PowerSource.MAIN if mains or not battery_up else PowerSource.BATTERY
    discharge_a = (
        abs(ups.current_a)
        if source is PowerSource.BATTERY and ups.current_a is not None and ups.current_a < 0
        else None
    )
    discharge_w = (
        None if discharge_a is None or ups.battery_v is None else ups.battery_v * discharge_a
    )
    return PowerReading(
        source=source,
        voltage_v=rail_v,
        current_a=discharge_a,
        power_w=discharge_w,
        battery_pct=ups.battery_pct,
        battery_charging=bool(ups.charging),
        battery_healthy=ups.battery_known,
        sources=(
            SourceReading(PowerSource.MAIN, mains, rail_v if mains else None),
            SourceReading(PowerSource.BATTERY, battery_up, ups.battery_v, discharge_w),
        ),
    )
