"""A command's arguments as form fields of the devices page's bulk bar (``arg_<name>``),
and their parsing (the brain checks the values again)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wrale.fleet.brain.services import commands
from wrale.shared.errors import InvalidRequestError
from wrale.shared.policy import SecurityLevel


@dataclass(frozen=True, slots=True)
class ArgField:
    """One argument of a command as a form field (``arg_<name>``)."""

    name: str
    label: str
    kind: str = "number"  # number | choice
    low: float | None = None
    high: float | None = None
    step: str = "any"
    options: tuple[str, ...] = ()
    required: bool = False


OP_ARGS: dict[str, tuple[ArgField, ...]] = {
    "set_fan": (
        ArgField("percent", "Fan speed (%)", low=0, high=100, required=True),
        ArgField("duration_s", "For (seconds)", low=1, high=86_400),
    ),
    "set_throttle": (
        ArgField("max_freq_pct", "CPU frequency cap (%; empty clears)", low=40, high=100),
    ),
    "reboot": (ArgField("delay_s", "Delay (seconds)", low=0, high=3600),),
    "shutdown": (ArgField("delay_s", "Delay (seconds)", low=0, high=3600),),
    "safe_mode": (ArgField("on", "Safe mode", "choice", options=("on", "off"), required=True),),
    "arm": (ArgField("level", "Tamper level", "choice", options=tuple(SecurityLevel)),),
    "sim_fault": (
        ArgField("fault", "Fault", "choice", options=commands.SIM_FAULTS, required=True),
        ArgField("duration_s", "For (seconds)", low=1, high=86_400),
    ),
    "sim_clear": (ArgField("fault", "Fault (empty: all)", "choice", options=commands.SIM_FAULTS),),
    "sim_load": (ArgField("percent", "Load (%)", low=0, high=100, required=True),),
    "sim_ambient": (ArgField("celsius", "Ambient (°C)", low=-40, high=80, required=True),),
}


def op_args(op: str, form: Mapping[str, Any]) -> dict[str, Any]:
    """The command's arguments from the form's ``arg_*`` fields (checked by the brain)."""
    out: dict[str, Any] = {}
    for f in OP_ARGS.get(op, ()):
        raw = str(form.get(f"arg_{f.name}") or "").strip()
        if not raw:
            if f.required:
                raise InvalidRequestError(f"{f.label}: required", field=f"arg_{f.name}")
            continue
        if f.kind == "choice":
            if raw not in f.options:
                raise InvalidRequestError(
                    f"{f.label}: use one of {', '.join(f.options)}", field=f"arg_{f.name}"
                )
            out[f.name] = (raw == "on") if f.name == "on" else raw
            continue
        try:
            number = float(raw)
        except ValueError:
            raise InvalidRequestError(f"{f.label}: a number", field=f"arg_{f.name}") from None
        if not math.isfinite(number):
            raise InvalidRequestError(f"{f.label}: a number", field=f"arg_{f.name}")
        out[f.name] = number
    return out
