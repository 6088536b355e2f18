"""Supply stability over a sliding window: voltage min/max/mean, ripple, current spikes
and power cycles. Deterministic and free of I/O; the engine feeds it one sample a step."""

from __future__ import annotations

import math
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
    k: int  # the sample's number (which the min/max queues refer to)
    t: float
    voltage_v: float | None
    current_a: float | None
    spike: bool
    cycle: bool


class _Sum:
    """A running sum and count, made exact again now and then (no drift over days)."""

    def __init__(self) -> None:
        self.total = 0.0
        self.n = 0

    def mean(self) -> float:
        return self.total / self.n


class _Extreme:
    """The window's max (``sign`` 1) or min (-1) in O(1) amortised: a monotonic queue of
    (sample number, value)."""

    def __init__(self, sign: float) -> None:
        self.sign = sign
        self._q: deque[tuple[int, float]] = deque()

    def push(self, k: int, v: float) -> None:
        key = self.sign * v
        while self._q and self.sign * self._q[-1][1] <= key:
            self._q.pop()
        self._q.append((k, v))

    def drop(self, k: int) -> None:
        if self._q and self._q[0][0] == k:
            self._q.popleft()

    def value(self) -> float | None:
        return self._q[0][1] if self._q else None


class SupplyWindow:
    """Keeps ``policy.window_s`` seconds of supply samples and says what changed. The
    figures are running sums and monotonic queues, so a step costs the same whatever the
    window's length (metald samples every second on every board)."""

    def __init__(self, policy: PowerPolicy) -> None:
        self.policy = policy
        self._samples: deque[_Sample] = deque()
        self._main_was_available: bool | None = None
        self._sagging = False
        self._rippling = False
        self._k = 0
        self._volts, self._amps = _Sum(), _Sum()
        self._vmin, self._vmax, self._amax = _Extreme(-1.0), _Extreme(1.0), _Extreme(1.0)
        self._spikes = self._cycles = self._dropped = 0
        self._stats: SupplyStats | None = None

    def add(
        self, t: float, voltage_v: float | None, current_a: float | None, main_available: bool
    ) -> list[EventType]:
        """Add one sample taken at monotonic time ``t``; return the events it starts."""
        events: list[EventType] = []
        amps = self._amps
        spike = (
            current_a is not None
            and amps.n >= MIN_SAMPLES_FOR_SPIKE
            and current_a > amps.mean() * self.policy.current_spike_ratio
        )
        cycle = self._main_was_available is False and main_available
        self._main_was_available = main_available
        self._push(_Sample(self._k, t, voltage_v, current_a, spike, cycle))
        self._k += 1
        while self._samples and self._samples[0].t < t - self.policy.window_s:
            self._pop()
        if self._dropped >= max(len(self._samples), 64):
            self._resum()
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

    def _push(self, s: _Sample) -> None:
        self._samples.append(s)
        self._stats = None
        if s.voltage_v is not None and s.voltage_v > 0:
            self._volts.total += s.voltage_v
            self._volts.n += 1
            self._vmin.push(s.k, s.voltage_v)
            self._vmax.push(s.k, s.voltage_v)
        if s.current_a is not None:
            self._amps.total += s.current_a
            self._amps.n += 1
            self._amax.push(s.k, s.current_a)
        self._spikes += s.spike
        self._cycles += s.cycle

    def _pop(self) -> None:
        s = self._samples.popleft()
        self._dropped += 1
        if s.voltage_v is not None and s.voltage_v > 0:
            self._volts.total -= s.voltage_v
            self._volts.n -= 1
            self._vmin.drop(s.k)
            self._vmax.drop(s.k)
        if s.current_a is not None:
            self._amps.total -= s.current_a
            self._amps.n -= 1
            self._amax.drop(s.k)
        self._spikes -= s.spike
        self._cycles -= s.cycle

    def _resum(self) -> None:
        """The sums again from the samples (amortised O(1): after a window's worth of pops)."""
        self._dropped = 0
        volts = [s.voltage_v for s in self._samples if s.voltage_v is not None and s.voltage_v > 0]
        amps = [s.current_a for s in self._samples if s.current_a is not None]
        self._volts.total, self._amps.total = math.fsum(volts), math.fsum(amps)

    def stats(self) -> SupplyStats:
        if self._stats is not None:
            return self._stats
        v, a = self._volts, self._amps
        vmin, vmax = self._vmin.value(), self._vmax.value()
        self._stats = SupplyStats(
            samples=len(self._samples),
            min_voltage_v=vmin,
            max_voltage_v=vmax,
            mean_voltage_v=round(v.mean(), 4) if v.n else None,
            ripple_v=round(vmax - vmin, 4) if vmax is not None and vmin is not None else None,
            mean_current_a=round(a.mean(), 4) if a.n else None,
            max_current_a=self._amax.value(),
            current_spikes=self._spikes,
            power_cycles=self._cycles,
        )
        return self._stats
