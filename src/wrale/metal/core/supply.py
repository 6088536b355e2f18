"""Supply stability over a sliding window: voltage min/max/mean, ripple, current spikes
and power cycles. Deterministic and free of I/O; the engine feeds it one sample a step."""

from __future__ import annotations

from collections import deque

import msgspec

from wrale.metal.core.events import EventType
from wrale.shared.policy import PowerPolicy

MIN_SAMPLES_FOR_RIPPLE = 3
MIN_SAMPLES_FOR_SPIKE = 5


class SupplyStats(msgspec.Struct, frozen=True):
    samples: int
    min_voltage_v: float | None
    max_voltage_v: float | None
    mean_voltage_v: float | None
    ripple_v: float | None
    mean_current_a: float | None
    max_current_a: float | None
    current_spikes: int
    power_cycles: int


class _Sample(msgspec.Struct, frozen=True):
    t: float
    voltage_v: float | None
    current_a: float | None
    spike: bool
    cycle: bool


class SupplyWindow:
    """Keeps ``policy.window_s`` seconds of supply samples and says what changed."""

    def __init__(self, policy: PowerPolicy) -> None:
        self.policy = policy
        self._samples: deque[_Sample] = deque()
        self._main_was_available: bool | None = None
        self._sagging = False
        self._rippling = False

    def add(
        self, t: float, voltage_v: float | None, current_a: float | None, main_available: bool
    ) -> list[EventType]:
        """Add one sample taken at monotonic time ``t``; return the events it starts."""
        events: list[EventType] = []
        currents = [s.current_a for s in self._samples if s.current_a is not None]
        spike = (
            current_a is not None
            and len(currents) >= MIN_SAMPLES_FOR_SPIKE
            and current_a > (sum(currents) / len(currents)) * self.policy.current_spike_ratio
        )
        cycle = self._main_was_available is False and main_available
        self._main_was_available = main_available
        self._samples.append(_Sample(t, voltage_v, current_a, spike, cycle))
        while self._samples and self._samples[0].t < t - self.policy.window_s:
            self._samples.popleft()
        if spike:
            events.append(EventType.CURRENT_SPIKE)
        if cycle:
            events.append(EventType.POWER_CYCLE)
        sagging = voltage_v is not None and 0.0 < voltage_v < self.policy.critical_voltage_v
        if sagging and not self._sagging:
            events.append(EventType.VOLTAGE_SAG)
        self._sagging = sagging
        stats = self.stats()
        rippling = (
            stats.ripple_v is not None
            and stats.samples >= MIN_SAMPLES_FOR_RIPPLE
            and stats.ripple_v > self.policy.ripple_limit_v
        )
        if rippling and not self._rippling:
            events.append(EventType.VOLTAGE_RIPPLE)
        self._rippling = rippling
        return events

    def stats(self) -> SupplyStats:
        volts = [s.voltage_v for s in self._samples if s.voltage_v is not None and s.voltage_v > 0]
        amps = [s.current_a for s in self._samples if s.current_a is not None]
        return SupplyStats(
            samples=len(self._samples),
            min_voltage_v=min(volts) if volts else None,
            max_voltage_v=max(volts) if volts else None,
            mean_voltage_v=round(sum(volts) / len(volts), 4) if volts else None,
            ripple_v=round(max(volts) - min(volts), 4) if volts else None,
            mean_current_a=round(sum(amps) / len(amps), 4) if amps else None,
            max_current_a=max(amps) if amps else None,
            current_spikes=sum(s.spike for s in self._samples),
            power_cycles=sum(s.cycle for s in self._samples),
        )
