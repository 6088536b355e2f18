"""What a job asks for (``docs/jobs.md``), checked strictly: the workload (a bounded argv
and environment, or a simulated load), replicas, priority, strategy, constraints and
resource hints. Pure: any input is a ``JobSpec`` or an ``InvalidRequestError`` naming the
field, never another exception. The API uses these models as its request body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from wrale.shared.errors import InvalidRequestError

MAX_ARGV = 64
MAX_ARG_CHARS = 4096
MAX_ENV = 64
MAX_REPLICAS = 1000
MAX_DURATION_S = 366 * 86_400.0
# resource hints when the job gives none: a process is taken to keep one core of a
# four-core board busy; a board draws about 5 W more at full load than idle (a Pi 5)
DEFAULT_PROCESS_CPU_PCT = 25.0
WATTS_PER_CPU_PCT = 0.05

PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
ID = r"^[0-9a-f]{32}$"
SELECTOR_ID = r"^[A-Za-z0-9_-]{1,64}$"


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


Arg = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_ARG_CHARS), AfterValidator(_no_nul)
]
EnvName = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", min_length=1, max_length=128)
]
EnvValue = Annotated[str, StringConstraints(max_length=MAX_ARG_CHARS), AfterValidator(_no_nul)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=PRINTABLE)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=PRINTABLE)]
Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]


class _Strict(BaseModel):
    """Unknown fields are refused and nothing is coerced ("3" is not a number)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ProcessWorkload(_Strict):
    """A process the board's agent runs (if its allow-list has a prefix of ``argv``)."""

    kind: Literal["process"]
    argv: Annotated[list[Arg], Field(min_length=1, max_length=MAX_ARGV)] = Field(
        description=f"1-{MAX_ARGV} arguments of 1-{MAX_ARG_CHARS} characters, no NUL"
    )
    env: Annotated[dict[EnvName, EnvValue], Field(max_length=MAX_ENV)] = Field(
        default_factory=dict,
        description=f"at most {MAX_ENV} variables, names [A-Za-z_][A-Za-z0-9_]*",
    )


class SimLoadWorkload(_Strict):
    """A CPU load on a simulated board (demo, tests, benchmarks)."""

    kind: Literal["sim_load"]
    cpu_pct: Percent


Workload = Annotated[ProcessWorkload | SimLoadWorkload, Field(discriminator="kind")]


class JobSelector(_Strict):
    """Which boards may run it: every clause given must hold (as device selectors
    elsewhere), plus ``group_id`` (the group's devices and its subgroups')."""

    tags: Annotated[list[Tag], Field(max_length=50)] | None = Field(
        default=None, description="all of these tags (same as tags_all)"
    )
    tags_all: Annotated[list[Tag], Field(max_length=50)] | None = None
    tags_any: Annotated[list[Tag], Field(max_length=50)] | None = None
    site_id: Annotated[str, StringConstraints(pattern=SELECTOR_ID)] | None = None
    room_id: Annotated[str, StringConstraints(pattern=SELECTOR_ID)] | None = None
    rack_id: Annotated[str, StringConstraints(pattern=SELECTOR_ID)] | None = None
    zone_id: Annotated[str, StringConstraints(pattern=SELECTOR_ID)] | None = None
    model: Name | None = None
    group_id: Annotated[str, StringConstraints(pattern=ID)] | None = None


class JobSpec(_Strict):
    """A job as created: ``POST /api/v1/jobs``."""

    name: Name
    workload: Workload
    replicas: Annotated[int, Field(ge=1, le=MAX_REPLICAS)]
    priority: Annotated[int, Field(ge=0, le=100)] = 50
    strategy: Literal["physical", "spread"] = Field(
        default="physical",
        description="physical: by thermal and power headroom; spread: round-robin baseline",
    )
    duration_s: Annotated[float, Field(gt=0, le=MAX_DURATION_S, allow_inf_nan=False)] | None = (
        Field(default=None, description="null: a service (runs until stopped)")
    )
    selector: JobSelector | None = None
    restartable: bool = Field(default=True, description="the brain may move it")
    max_per_rack: Annotated[int, Field(ge=1, le=MAX_REPLICAS)] | None = None
    cpu_pct: Percent | None = Field(
        default=None, description="share of one board's CPU (default: from the workload)"
    )
    watts: Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)] | None = Field(
        default=None, description="expected draw (default: from cpu_pct)"
    )
    allow_battery: bool = Field(default=False, description="may run on a board on battery")


def _first_error(exc: ValidationError) -> InvalidRequestError:
    err = exc.errors()[0]
    where = ".".join(str(p)[:64] for p in err.get("loc", ()))[:200]
    message = str(err.get("msg", "invalid"))
    return InvalidRequestError(f"{where}: {message}" if where else message, field=where)


def parse(body: Any) -> JobSpec:
    """A ``JobSpec`` from a JSON object (or a spec already made); ``InvalidRequestError``
    names the first wrong field."""
    if isinstance(body, JobSpec):
        return body
    if not isinstance(body, Mapping):
        raise InvalidRequestError("a job is a JSON object", field="")
    try:
        text = json.dumps(dict(body), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(f"not a JSON document: {exc}", field="") from None
    try:
        return JobSpec.model_validate_json(text)
    except ValidationError as exc:
        raise _first_error(exc) from None


def selector_of(spec: JobSpec) -> dict[str, Any]:
    """The spec's selector as stored: ``tags`` folded into ``tags_all``, no empty clauses."""
    if spec.selector is None:
        return {}
    clean = spec.selector.model_dump(exclude_none=True)
    tags = clean.pop("tags", None)
    if tags:
        clean["tags_all"] = sorted({*clean.get("tags_all", []), *tags})
    return {k: v for k, v in clean.items() if v not in ([], "")}


def hints(spec: JobSpec) -> tuple[float, float]:
    """``(cpu_pct, watts)``: given, or derived from the workload."""
    if spec.cpu_pct is not None:
        cpu = spec.cpu_pct
    elif isinstance(spec.workload, SimLoadWorkload):
        cpu = spec.workload.cpu_pct
    else:
        cpu = DEFAULT_PROCESS_CPU_PCT
    watts = spec.watts if spec.watts is not None else round(cpu * WATTS_PER_CPU_PCT, 3)
    return cpu, watts
