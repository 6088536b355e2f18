"""What a command may be and to which board: each operation's arguments (validated with
the same names as the devices' protocol), its deadline, and the device states, tamper
lockdown and simulator-only operations that refuse it. Pure; ``commands`` stores and
delivers."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from wrale.fleet.brain.models import Device
from wrale.fleet.brain.services.twin import check_json
from wrale.fleet.sync.protocol import COMMAND_OPS
from wrale.shared.errors import InvalidRequestError
from wrale.shared.policy import SecurityLevel

HELD = ("maintenance", "decommissioned")
DEFAULT_TIMEOUT_S = 300.0
MAX_TIMEOUT_S = 7 * 86_400.0
# The simulator's fault kinds (metal.hw.base.FaultKind; the brain may not import metal).
SIM_FAULTS = (
    "fan_failure",
    "heat_spike",
    "ambient_change",
    "main_power_loss",
    "voltage_sag",
    "battery_failure",
    "case_open",
    "motion",
    "sensor_failure",
    "fan_wear",  # slow faults: params rate_pct_per_day, onset_in_s; until cleared
    "dust",
    "battery_fade",
    "emmc_wear",
)


# ----------------------------------------------------------------------------- arguments


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoArgs(_Args):
    pass


class SetFanArgs(_Args):
    percent: float = Field(ge=0, le=100)
    duration_s: float = Field(default=300.0, ge=1, le=86_400)


class SetThrottleArgs(_Args):
    """Caps CPU frequency (it can only lower it); null clears the cap."""

    max_freq_pct: float | None = Field(default=None, ge=40, le=100)


class RunDiagArgs(_Args):
    tests: list[str] | None = Field(default=None, max_length=50)

    @field_validator("tests")
    @classmethod
    def _names(cls, v: list[str] | None) -> list[str] | None:
        for name in v or []:
            if not 0 < len(name) <= 64:
                raise ValueError("test names are 1-64 characters")
        return v


class ArmArgs(_Args):
    level: SecurityLevel | None = None


class DelayArgs(_Args):
    delay_s: float = Field(default=0.0, ge=0, le=3600)


class SafeModeArgs(_Args):
    on: bool


class SimFaultArgs(_Args):
    fault: str
    duration_s: float | None = Field(default=None, gt=0, le=86_400)
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("fault")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in SIM_FAULTS:
            raise ValueError(f"use one of {', '.join(SIM_FAULTS)}")
        return v


class SimClearArgs(_Args):
    fault: str | None = None

    @field_validator("fault")
    @classmethod
    def _known(cls, v: str | None) -> str | None:
        if v is not None and v not in SIM_FAULTS:
            raise ValueError(f"use one of {', '.join(SIM_FAULTS)}")
        return v


class SimLoadArgs(_Args):
    percent: float = Field(ge=0, le=100)


class SimAmbientArgs(_Args):
    celsius: float = Field(ge=-40, le=80)


OPS: dict[str, type[_Args]] = {
    "set_fan": SetFanArgs,
    "clear_fan": NoArgs,
    "set_throttle": SetThrottleArgs,
    "run_diag": RunDiagArgs,
    "arm": ArmArgs,
    "disarm": NoArgs,
    "reboot": DelayArgs,
    "shutdown": DelayArgs,
    "safe_mode": SafeModeArgs,
    "sim_fault": SimFaultArgs,
    "sim_clear": SimClearArgs,
    "sim_load": SimLoadArgs,
    "sim_ambient": SimAmbientArgs,
}
if set(OPS) != set(COMMAND_OPS):  # one vocabulary with the devices (fleet.sync.protocol)
    raise RuntimeError(f"command arguments out of step with the protocol: {sorted(OPS)}")
SIM_OPS = frozenset(op for op in OPS if op.startswith("sim_"))
ADMIN_OPS = frozenset({"disarm"})
LOCKDOWN_OPS = frozenset({"disarm", "safe_mode", "run_diag", "reboot", "shutdown"})


def check_args(op: str, args: Any) -> dict[str, Any]:
    """The normalised arguments of ``op``; ``InvalidRequestError`` names what is wrong."""
    model = OPS.get(op)
    if model is None:
        raise InvalidRequestError(f"op: use one of {', '.join(OPS)}", field="op")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise InvalidRequestError("args: must be an object", field="args")
    check_json(args, "args")
    try:
        parsed = model.model_validate(args)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(["args", *(str(p) for p in err.get("loc", ()))])
        raise InvalidRequestError(f"{where}: {err['msg']}", field=where) from None
    out = parsed.model_dump(mode="json", exclude_none=True)
    if op == "set_throttle":
        out["max_freq_pct"] = out.get("max_freq_pct")  # null (clear) is explicit
    return out


def resolve_deadline(deadline: float | None, timeout_s: float | None, now: float) -> float:
    """An absolute deadline: ``deadline`` as given, or ``now + timeout_s`` (default 300 s);
    in the future and at most 7 days ahead."""
    if deadline is not None and timeout_s is not None:
        raise InvalidRequestError("give deadline or timeout_s, not both", field="deadline")
    if timeout_s is not None:
        if not (math.isfinite(timeout_s) and 0 < timeout_s <= MAX_TIMEOUT_S):
            raise InvalidRequestError(
                f"timeout_s: between 0 and {MAX_TIMEOUT_S:g} seconds", field="timeout_s"
            )
        return now + timeout_s
    if deadline is None:
        return now + DEFAULT_TIMEOUT_S
    if not math.isfinite(deadline) or deadline <= now:
        raise InvalidRequestError(
            "deadline: must be in the future (unix seconds)", field="deadline"
        )
    if deadline > now + MAX_TIMEOUT_S:
        raise InvalidRequestError("deadline: at most 7 days ahead", field="deadline")
    return deadline


def is_sim(device: Device, reported: dict[str, Any]) -> bool:
    hardware = reported.get("hardware")
    backend = hardware.get("backend") if isinstance(hardware, dict) else None
    return backend == "sim" or any(str(c).lower() == "sim" for c in device.capabilities or [])


def in_lockdown(reported: dict[str, Any]) -> bool:
    tamper = reported.get("tamper")
    return isinstance(tamper, dict) and tamper.get("lockdown") is True


def refusal(op: str, device: Device, reported: dict[str, Any]) -> tuple[str, str] | None:
    """Why ``device`` cannot take ``op`` now, as (kind, reason), or None. Pure."""
    if device.status == "quarantined":  # nothing waits for a board that may be compromised
        return "held", f"device {device.name!r} is quarantined; an admin must release it first"
    if device.status in HELD:
        return "held", f"device {device.name!r} is {device.status}; an operator must end that first"
    if op in SIM_OPS and not is_sim(device, reported):
        return "sim", (
            f"{op} is for simulated boards; device {device.name!r} has no 'sim' capability "
            "and does not report the sim backend"
        )
    if in_lockdown(reported) and op not in LOCKDOWN_OPS:
        return "lockdown", (
            f"device {device.name!r} is in tamper lockdown: only "
            f"{', '.join(sorted(LOCKDOWN_OPS))} are accepted"
        )
    return None
