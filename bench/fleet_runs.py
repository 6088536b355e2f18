"""The fleet benchmark's two runs in ``make bench`` (``bench/fleet_bench.py``):

* **1 Hz, 2,000 boards** (its defaults): the connect storm of the first 1,000, the command
  round trip at 1,000 online with telemetry flowing, ingest at 34,000 points/s offered;
* **5,000 boards at a 10 s report interval**: a fleet sampling policy of 10 s set through
  the API before the boards start (as an operator sets one), the boards' metal cores
  sampling every 10 s too (``wrale sim --metal-sample-s``: at 1 s the simulated fleet
  alone would need ~1.5 cores), the other 4,000 dialing over 120 s. It owns the issue's
  ``fleet.devices_connected`` and ``fleet.central_kib_per_device`` (at 5,000); the 2,000
  run's figures of the same name are ``fleet.2000.*``. The rest of the 5,000 run's figures
  are ``fleet.5000.*``.
"""

from __future__ import annotations

import dataclasses

from common import Figure
from fleet_bench import Options
from fleet_bench import run as run_fleet

AT_5000 = ("fleet.devices_connected", "fleet.central_kib_per_device")


def run_2000() -> list[Figure]:
    out = []
    for f in run_fleet(Options()):
        if f.name in AT_5000:
            f = dataclasses.replace(f, name=f.name.replace("fleet.", "fleet.2000.", 1))
        out.append(f)
    return out


def run_5000() -> list[Figure]:
    opts = Options(
        devices=5000,
        command_devices=1000,
        commands=0,
        sample_s=10.0,
        metal_sample_s=10.0,
        ramp_s=120.0,
        connect_timeout_s=300.0,
        seconds=30.0,
    )
    out = []
    for f in run_fleet(opts):
        if f.name not in AT_5000:
            f = dataclasses.replace(f, name=f.name.replace("fleet.", "fleet.5000.", 1))
        out.append(f)
    return out
