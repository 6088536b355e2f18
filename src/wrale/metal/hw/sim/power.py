"""Power supplies of the simulated board: main adapter, UPS battery and solar panel.

``evaluate`` works out which source powers the board (the selected one, else main →
battery → solar, like a UPS HAT); ``step`` drains or charges the battery over time.
"""

from __future__ import annotations

import math

import msgspec

from wrale.metal.hw.base import PowerReading, PowerSource, SourceReading
from wrale.metal.hw.sim.runtime import Noise, Runtime
from wrale.metal.hw.sim.solar import solar_output_w
from wrale.shared.config import SimSettings
from wrale.shared.errors import InvalidRequestError, UnsupportedError

MAIN_V = 5.1  # Pi 5 USB-C supply, open circuit
MAIN_SOURCE_OHM = 0.02  # cable and connector: the rail droops a little under load
BATTERY_RAIL_V = 5.05  # UPS HAT boost converter
SOLAR_RAIL_V = 5.0  # panel regulator
DISCHARGE_EFFICIENCY = 0.9
CHARGE_W = 5.0  # into the cell
CELL_EMPTY_V, CELL_FULL_V = 3.0, 4.2  # one Li-ion cell
RIPPLE_SIGMA_V = 0.01
FAILOVER_ORDER = (PowerSource.MAIN, PowerSource.BATTERY, PowerSource.SOLAR)
EMPTY_WH = 1e-9
RESTART_PCT = 5.0  # after running empty the UPS waits for this much charge before restarting


class PowerState(msgspec.Struct, frozen=True):
    """The supply situation between two changes (noise-free)."""

    active: PowerSource | None  # None: nothing can power the board
    rail_v: float
    draw_w: float
    available: frozenset[PowerSource]
    solar_w: float
    battery_flow_w: float  # into the cell (+) or out of it (-)


class SimPower:
    def __init__(
        self, rt: Runtime, noise: Noise, settings: SimSettings, shutdown_requests: list[str]
    ) -> None:
        self._rt = rt
        self._noise = noise
        self._shutdown_requests = shutdown_requests
        self.capacity_wh = settings.battery_wh
        self.design_wh = settings.battery_wh  # ``capacity_wh`` falls below it as it fades
        self.energy_wh = settings.battery_wh * settings.battery_pct / 100.0
        self.solar_peak_w = settings.solar_peak_w
        self.selected = PowerSource.MAIN
        self.main_lost = False
        self.sag_v: float | None = None
        self.battery_failed = False
        self.cut_off = self.energy_wh <= 0  # ran empty: unavailable until RESTART_PCT
        self.state = PowerState(PowerSource.MAIN, MAIN_V, 0.0, frozenset(), 0.0, 0.0)

    def has(self, source: PowerSource) -> bool:
        if source is PowerSource.BATTERY:
            return self.capacity_wh > 0
        if source is PowerSource.SOLAR:
            return self.solar_peak_w > 0
        return True

    def evaluate(self, demand_w: float, wall_s: float) -> PowerState:
        """Recompute (and keep) the supply situation for a board wanting ``demand_w``."""
        solar_w = solar_output_w(self.solar_peak_w, wall_s)
        available = set()
        if not self.main_lost:
            available.add(PowerSource.MAIN)
        if self.has(PowerSource.BATTERY) and not self.battery_failed and not self.cut_off:
            available.add(PowerSource.BATTERY)
        if solar_w > 0 and solar_w >= demand_w:
            available.add(PowerSource.SOLAR)
        active = self.selected if self.selected in available else None
        if active is None:
            active = next((s for s in FAILOVER_ORDER if s in available), None)
        draw_w = demand_w if active is not None else 0.0
        self.state = PowerState(
            active=active,
            rail_v=self._rail_v(active, draw_w),
            draw_w=draw_w,
            available=frozenset(available),
            solar_w=solar_w,
            battery_flow_w=self._battery_flow_w(active, draw_w, solar_w),
        )
        return self.state

    def _rail_v(self, active: PowerSource | None, draw_w: float) -> float:
        if active is PowerSource.MAIN:
            return (
                self.sag_v
                if self.sag_v is not None
                else MAIN_V - MAIN_SOURCE_OHM * (draw_w / MAIN_V)
            )
        if active is PowerSource.BATTERY:
            return BATTERY_RAIL_V
        return SOLAR_RAIL_V if active is PowerSource.SOLAR else 0.0

    def _battery_flow_w(self, active: PowerSource | None, draw_w: float, solar_w: float) -> float:
        if not self.has(PowerSource.BATTERY) or self.battery_failed:
            return 0.0
        out_w = draw_w / DISCHARGE_EFFICIENCY if active is PowerSource.BATTERY else 0.0
        in_w = 0.0
        if self.energy_wh < self.capacity_wh:
            if not self.main_lost and active is not PowerSource.BATTERY:
                in_w = CHARGE_W
            else:  # the panel charges the cell with what the board does not use
                spare_w = solar_w - (draw_w if active is PowerSource.SOLAR else 0.0)
                in_w = min(CHARGE_W, max(0.0, spare_w))
        return in_w - out_w

    def step(self, dt_s: float) -> None:
        flow = self.state.battery_flow_w
        if flow:
            energy = self.energy_wh + flow * dt_s / 3600.0
            self.energy_wh = min(self.capacity_wh, energy if energy > EMPTY_WH else 0.0)
            if self.energy_wh == 0.0:
                self.cut_off = True
            elif self.cut_off and self.energy_wh >= self._restart_wh():
                self.cut_off = False

    def _restart_wh(self) -> float:
        return self.capacity_wh * RESTART_PCT / 100.0 - EMPTY_WH

    def seconds_to_battery_event(self) -> float:
        """Time until the battery runs empty, restarts or is full at the present flow."""
        flow = self.state.battery_flow_w
        if flow < 0:
            return self.energy_wh / -flow * 3600.0
        if flow > 0:
            goal = self._restart_wh() if self.cut_off else self.capacity_wh
            return max(0.0, goal - self.energy_wh) / flow * 3600.0
        return math.inf

    def battery_pct(self) -> float | None:
        if not self.has(PowerSource.BATTERY) or self.battery_failed:
            return None
        return 100.0 * self.energy_wh / self.capacity_wh

    def health_pct(self) -> float | None:
        """The state of health a gauge reports: full over design capacity, in %."""
        if not self.has(PowerSource.BATTERY) or self.battery_failed or self.design_wh <= 0:
            return None
        return round(100.0 * self.capacity_wh / self.design_wh, 2)

    def read_power(self) -> PowerReading:
        with self._rt.reading():
            s = self.state
            volts = s.rail_v + self._noise.gauss(RIPPLE_SIGMA_V) if s.rail_v > 0 else 0.0
            return PowerReading(
                source=s.active or self.selected,
                voltage_v=volts,
                current_a=s.draw_w / volts if volts > 0 else 0.0,
                power_w=s.draw_w,
                battery_pct=self.battery_pct(),
                battery_charging=s.battery_flow_w > 0,
                battery_healthy=not self.battery_failed,
                battery_health_pct=self.health_pct(),
                sources=tuple(self._source(src) for src in FAILOVER_ORDER if self.has(src)),
            )

    def _source(self, source: PowerSource) -> SourceReading:
        s = self.state
        available = source in s.available
        if source is PowerSource.MAIN:
            open_v = self.sag_v if self.sag_v is not None else MAIN_V
            volts = s.rail_v if s.active is source else (open_v if available else 0.0)
            return SourceReading(source, available, volts, s.draw_w if s.active is source else 0.0)
        if source is PowerSource.BATTERY:
            pct = self.battery_pct()
            span_v = CELL_FULL_V - CELL_EMPTY_V
            cell_v = None if pct is None else CELL_EMPTY_V + span_v * pct / 100.0
            return SourceReading(source, available, cell_v, max(0.0, -s.battery_flow_w))
        return SourceReading(source, available, SOLAR_RAIL_V if s.solar_w > 0 else 0.0, s.solar_w)

    def select_source(self, source: PowerSource) -> None:
        try:
            source = PowerSource(source)
        except ValueError:
            raise InvalidRequestError(f"unknown power source {source!r}") from None
        if not self.has(source):
            raise UnsupportedError(f"this simulated board has no {source.value} supply")
        with self._rt.changing():
            self.selected = source

    def request_shutdown(self, reason: str) -> None:
        with self._rt.reading():
            self._shutdown_requests.append(str(reason))
