"""``SimBoard``: a simulated Raspberry Pi 5-class board with physics driven by a clock.

It owns the components, integrates their physics in sub-steps up to the clock's time
before every read, and takes orders from tests, demos and ``/v1/sim`` (``SimControls``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from wrale.metal.hw.base import (
    Board,
    Fan,
    Fault,
    FaultKind,
    Gpio,
    Power,
    PowerSource,
    SimControls,
    Storage,
    Tamper,
    TamperWiring,
    ThermalSensors,
    Throttle,
)
from wrale.metal.hw.sim.checks import check_number
from wrale.metal.hw.sim.fan import SimFan
from wrale.metal.hw.sim.fault_params import normalize
from wrale.metal.hw.sim.faults import Effects, FaultBook, effects_of
from wrale.metal.hw.sim.gpio import SimGpio
from wrale.metal.hw.sim.power import SimPower
from wrale.metal.hw.sim.runtime import Noise
from wrale.metal.hw.sim.tamper import VOLTAGE_NORMAL_MIN_V, SimTamper
from wrale.metal.hw.sim.thermal import ACTIVE_COOLER, BARE_BOARD, SimThermal, demand_w
from wrale.metal.hw.sim.throttle import SOFT_TEMP_LIMIT_C, SimThrottle
from wrale.metal.hw.sim.wear import WEAR_KINDS, SimStorage, Wear, WearBook, WearKind, WearState
from wrale.shared.clock import Clock, FakeClock
from wrale.shared.config import GpioLineSettings, SimSettings
from wrale.shared.errors import InvalidRequestError

MAX_STEP_S = 0.5  # while the fan speed (hence the cooling) is changing
THROTTLE_STEP_S = 1.0  # near the soft limit, where the firmware's clock follows the die
SETTLED_STEP_S = 5.0  # otherwise heat and cooling are constant: the exponential is exact
MIN_STEP_S = 1e-6
STOCK_IDLE_AIRFLOW = 75 / 255  # the board starts as if idling under the firmware's fan curve


class SimBoard:
    """A simulated board; satisfies ``Board`` and is its own ``SimControls`` (``board.sim``)."""

    backend = "sim"
    blocking_io = False

    def __init__(
        self,
        settings: SimSettings = SimSettings(),  # noqa: B008 - frozen, shared safely
        *,
        name: str = "board",
        clock: Clock | None = None,
        gpio_lines: Mapping[str, GpioLineSettings] | None = None,
        tamper_wiring: TamperWiring | None = None,
    ) -> None:
        """What is fitted (Active Cooler, an air sensor, a UPS HAT, PWM overlays) is in
        ``settings``, as in ``[sim]`` of metald's settings."""
        self.settings = settings
        self.name = name
        self.model = settings.model
        self.clock: Clock = clock if clock is not None else FakeClock()
        self.shutdown_requests: list[str] = []
        self._lock = threading.RLock()
        self._reading = _Reading(self)
        self._t = self.clock.monotonic()
        self._wall_offset = self.clock.now() - self._t
        self._load_pct = settings.load_pct
        self._job_load_pct = 0.0
        self._ambient_c = settings.ambient_c
        self._faults = FaultBook()
        self._effects = Effects()
        noise = Noise(settings.seed, enabled=settings.noise)
        cooling = ACTIVE_COOLER if settings.active_cooler else BARE_BOARD
        self._thermal = SimThermal(
            self,
            noise,
            cooling=cooling,
            ambient_c=settings.ambient_c,
            heat_w=demand_w(settings.load_pct, 100.0),
            airflow=STOCK_IDLE_AIRFLOW if cooling.has_fan else 0.0,
            ambient_sensor=settings.ambient_sensor,
        )
        self._fan = SimFan(self, noise, fitted=cooling.has_fan)
        self._throttle = SimThrottle(self)
        self._power = SimPower(self, noise, settings, self.shutdown_requests)
        self._wear = WearBook(self._thermal, self._fan, self._power)  # slow faults
        self._tamper = SimTamper(self, tamper_wiring)
        self._gpio = SimGpio(self, self.clock, gpio_lines, pwm_muxed=settings.pwm_muxed)
        # The Board protocol's attributes are settable, hence invariant: expose them typed
        # as the protocols, keep the concrete components for the physics.
        self.thermal: ThermalSensors = self._thermal
        self.fan: Fan = self._fan
        self.throttle: Throttle = self._throttle
        self.power: Power = self._power
        self.storage: Storage = SimStorage(self, self._wear)
        ups_hat = settings.ups_hat
        if ups_hat is not None:  # read through the HAT's own reader, as on a real board
            from wrale.metal.hw.linux.sysfs import HealthLog
            from wrale.metal.hw.sim.ups import attach_ups_hat

            self.power = attach_ups_hat(ups_hat, self, self._power, self._gpio, HealthLog())
        self.tamper: Tamper = self._tamper
        self.gpio: Gpio = self._gpio
        self.sim: SimControls | None = self
        self._refresh()

    # ------------------------------------------------------------------ time and physics

    def advance(self, dt_s: float) -> None:
        """Move the board's ``FakeClock`` on by ``dt_s`` seconds and integrate physics."""
        if not isinstance(self.clock, FakeClock):
            raise TypeError("advance() needs a board on a FakeClock; this one follows its clock")
        if not math.isfinite(dt_s) or dt_s < 0:
            raise ValueError(f"dt_s must be a finite number >= 0, got {dt_s!r}")
        with self._lock:
            self.clock.advance(dt_s)
            self.sync()

    def sync(self) -> None:
        """Integrate physics up to ``clock.monotonic()`` (every read does this first)."""
        with self._lock:
            target = self.clock.monotonic()
            self._wall_offset = self.clock.now() - target
            while self._t < target:
                dt = min(
                    self._max_step_s(),
                    self._faults.next_end - self._t,
                    self._power.seconds_to_battery_event(),
                    self._wear.next_s - self._t,
                )
                remaining = target - self._t
                if dt >= remaining:
                    self._step(remaining, target)
                else:
                    dt = max(dt, MIN_STEP_S)
                    self._step(dt, self._t + dt)

    def _max_step_s(self) -> float:
        if not self._fan.settled():
            return MAX_STEP_S
        if self._thermal.temp_c >= SOFT_TEMP_LIMIT_C - 2.0:
            return THROTTLE_STEP_S
        return SETTLED_STEP_S

    def _step(self, dt: float, t_end: float) -> None:
        self._fan.step(dt)
        self._thermal.step(dt, self._fan.airflow())
        self._power.step(dt)
        self._t = t_end
        if t_end >= self._wear.next_s:
            self._wear.apply(t_end)
        if self._faults.expire(t_end):
            self._apply_effects()
        self._refresh()

    def _apply_effects(self) -> None:
        effects = self._effects = effects_of(self._faults.faults())
        self._fan.failure = effects.fan_failure
        self._thermal.failures = effects.sensors
        self._power.main_lost = effects.main_lost
        self._power.sag_v = effects.sag_v
        self._power.battery_failed = effects.battery_failed

    def _refresh(self) -> None:
        """Recompute what follows from the state now: supply, heat, flags, tamper inputs."""
        effects = self._effects
        demand = demand_w(self.total_load_pct, self._throttle.effective_pct(), effects.extra_heat_w)
        supply = self._power.evaluate(demand, self._t + self._wall_offset)
        self._fan.powered = supply.active is not None
        self._thermal.heat_w = supply.draw_w
        self._thermal.ambient_c = self.ambient_c
        self._throttle.observe(supply.rail_v, self._thermal.temp_c)
        self._tamper.observe(
            case_open=effects.case_open,
            motion=effects.motion,
            voltage_normal=supply.rail_v >= VOLTAGE_NORMAL_MIN_V,
        )

    def reading(self) -> AbstractContextManager[None]:
        return self._reading

    @contextmanager
    def changing(self) -> Iterator[None]:
        with self._lock:
            self.sync()
            try:
                yield
            finally:
                self._refresh()

    # ------------------------------------------------------------------ what tests look at

    @property
    def load_pct(self) -> float:
        """The background load (``set_load``: the simulated fleet's load pattern, tests)."""
        return self._load_pct

    @property
    def job_load_pct(self) -> float:
        """The load of the jobs the agent runs here (``set_job_load``)."""
        return self._job_load_pct

    @property
    def total_load_pct(self) -> float:
        """What the board works at: background and job load, at most 100 %."""
        return min(100.0, self._load_pct + self._job_load_pct)

    @property
    def ambient_c(self) -> float:
        """Ambient temperature in force (a timed ``ambient_change`` fault overrides it)."""
        override = self._effects.ambient_c
        return self._ambient_c if override is None else override

    @property
    def soc_temp_c(self) -> float:
        """The SoC's true temperature, without sensor noise or failures."""
        with self.reading():
            return self._thermal.temp_c

    @property
    def heat_sink_temp_c(self) -> float:
        """The heat sink's (or, on a bare board, the PCB's) true temperature."""
        with self.reading():
            return self._thermal.sink_c

    def close(self) -> None:
        """Nothing to release; the board keeps answering so late readers do not crash."""

    # ------------------------------------------------------------------ SimControls

    def set_ambient(self, celsius: float) -> None:
        value = check_number("ambient_c", celsius, -40.0, 80.0)
        with self.changing():
            self._ambient_c = value

    def set_load(self, percent: float) -> None:
        value = check_number("load_pct", percent, 0.0, 100.0)
        with self.changing():
            self._load_pct = value

    def set_job_load(self, percent: float) -> None:
        value = check_number("job_load_pct", percent, 0.0, 100.0)
        with self.changing():
            self._job_load_pct = value

    def drive_input(self, line: int, value: int | None) -> None:
        """An external signal on a GPIO input (``None`` releases it); see ``SimGpio``."""
        self._gpio.drive_input(line, value)

    def inject_fault(self, fault: Fault) -> None:
        fault = normalize(fault)
        missing = self._missing_for(fault)
        if missing:
            raise InvalidRequestError(
                f"{fault.kind.value}: this simulated board has {missing}", kind=fault.kind.value
            )
        with self.changing():
            if fault.kind.value in WEAR_KINDS:  # a slow fault: from its onset, until cleared
                onset = self._t + fault.params["onset_in_s"]
                wear = Wear(WearKind(fault.kind.value), onset, fault.params["rate_pct_per_day"])
                self._wear.add(wear, self._t)
                return
            if fault.kind is FaultKind.AMBIENT_CHANGE and fault.duration_s is None:
                self._ambient_c = fault.params["celsius"]  # a lasting change, nothing to clear
                return
            if fault.kind is FaultKind.SENSOR_FAILURE and fault.params["mode"] == "stuck":
                fault = self._stuck_here(fault)
            self._faults.add(fault, self._t)
            self._apply_effects()

    def _missing_for(self, fault: Fault) -> str | None:
        """What the board lacks for ``fault`` to mean anything, or ``None``."""
        battery_kinds = (FaultKind.BATTERY_FAILURE, FaultKind.BATTERY_FADE)
        if fault.kind in battery_kinds and not self._power.has(PowerSource.BATTERY):
            return "no battery"
        if (
            fault.kind in (FaultKind.FAN_FAILURE, FaultKind.FAN_WEAR)
            and not self._thermal.cooling.has_fan
        ):
            return "no fan (no cooler fitted)"
        if fault.kind is FaultKind.SENSOR_FAILURE:
            sensor = fault.params["sensor"]
            if sensor not in self._thermal.sensors():
                return (
                    f"no {sensor} sensor (a Raspberry Pi 5 has one cpu-thermal zone; "
                    "an ambient sensor comes with a HAT)"
                )
        return None

    def _stuck_here(self, fault: Fault) -> Fault:
        """A stuck sensor without ``value_c`` keeps reading what it reads now."""
        if "value_c" in fault.params:
            return fault
        sensor = fault.params["sensor"]
        value = self._thermal.sense(sensor)
        if value is None:
            value = self._thermal.true_c(sensor)
        if value is None:  # not reached: faults on absent sensors are refused before
            raise InvalidRequestError(f"this simulated board has no {sensor} sensor")
        return Fault(fault.kind, {**fault.params, "value_c": value}, fault.duration_s)

    def add_wear(self, wear: Wear) -> None:
        """A slow fault (``wear.py``: fan wear, dust, battery fade, eMMC wear) from its onset."""
        with self.changing():
            self._wear.add(wear, self._t)

    def clear_wear(self) -> int:
        with self.changing():
            return self._wear.clear(self._t)

    @property
    def wear(self) -> WearState:
        """The slow faults' effect in force now."""
        with self.reading():
            return self._wear.state

    def clear_faults(self, kind: FaultKind | None = None) -> int:
        if kind is not None:
            try:
                kind = FaultKind(kind)
            except ValueError:
                raise InvalidRequestError(f"unknown fault kind {kind!r}") from None
        with self.changing():
            ended = self._faults.clear(kind)
            ended += self._wear.clear(self._t, None if kind is None else kind.value)
            if ended:
                self._apply_effects()
            return ended

    def active_faults(self) -> list[Fault]:
        with self.reading():
            return self._faults.faults()

    def status(self) -> dict[str, Any]:
        with self.reading():
            supply = self._power.state
            return {
                "name": self.name,
                "model": self.model,
                "sim_time_s": self._t,
                "load_pct": self._load_pct,
                "job_load_pct": self._job_load_pct,
                "total_load_pct": self.total_load_pct,
                "ambient_c": self.ambient_c,
                "soc_temp_c": self._thermal.temp_c,
                "fan_duty_pct": self._fan.duty_pct,
                "fan_rpm": self._fan.rpm,
                "max_freq_pct": self._throttle.max_freq_pct,
                "power_source": supply.active.value if supply.active else None,
                "selected_source": self._power.selected.value,
                "rail_v": supply.rail_v,
                "power_w": supply.draw_w,
                "battery_wh": self._power.energy_wh,
                "battery_capacity_wh": self._power.capacity_wh,
                "battery_pct": self._power.battery_pct(),
                "solar_w": supply.solar_w,
                "shutdown_requests": list(self.shutdown_requests),
                "wear": [
                    {
                        "kind": w.kind.value,
                        "onset_s": w.onset_s,
                        "rate_pct_per_day": w.rate_pct_per_day,
                    }
                    for w in self._wear.wears
                ],
                "faults": [
                    {
                        "kind": f.kind.value,
                        "params": dict(f.params),
                        "duration_s": f.duration_s,
                        "remaining_s": left,
                    }
                    for f, left in self._faults.remaining_s(self._t)
                ],
            }


class _Reading:
    """``SimBoard.reading()``: the board's lock, physics integrated first. A plain context
    manager, made once per board: a sampling step enters it once per source it reads."""

    __slots__ = ("_board",)

    def __init__(self, board: SimBoard) -> None:
        self._board = board

    def __enter__(self) -> None:
        board = self._board
        board._lock.acquire()
        try:
            board.sync()
        except BaseException:
            board._lock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        self._board._lock.release()


def _conforms(board: SimBoard) -> Board:  # mypy checks SimBoard against the Board protocol
    return board
