"""The pure side of the board's jobs (docs/jobs.md): reading the desired ``jobs`` section
into work this board may run, or a refusal with the reason (malformed, or not on the
board's argv allow-list); the environment a job gets; and ``plan(known, desired)``, the
steps that bring running work to the desired placements. No I/O here.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, TypeGuard

import msgspec

Json = dict[str, Any]
State = Literal["starting", "running", "succeeded", "failed", "stopped"]
ACTIVE: Final = frozenset({"starting", "running"})
FINISHED: Final = frozenset({"succeeded", "failed", "stopped"})

MAX_PLACEMENTS: Final = 32  # placements one board runs (the rest are refused)
MAX_ARGV: Final = 256
MAX_ARG_CHARS: Final = 4096
MAX_ENV: Final = 64
MAX_QUOTA_PCT: Final = 100.0 * 1024  # 1024 cores
MAX_DURATION_S: Final = 366 * 86_400.0
REASON_CHARS: Final = 200
# A placement id becomes part of a systemd unit name (wrale-job-<id>.scope).
PLACEMENT_ID: Final = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
ENV_KEY: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Keys that change which code a program loads or runs: with them a central could turn an
# allowed argv into any program, so they are refused (the allow-list is the trust boundary).
UNSAFE_ENV: Final = re.compile(
    r"^(PATH|IFS|ENV|BASH_ENV|SHELLOPTS|BASHOPTS|GCONV_PATH|GLIBC_TUNABLES|HOSTALIASES|"
    r"LOCALDOMAIN|RES_OPTIONS|NLSPATH|CLASSPATH|JAVA_TOOL_OPTIONS|_JAVA_OPTIONS|"
    r"NODE_OPTIONS|NODE_PATH|LD_.*|DYLD_.*|MALLOC_.*|BASH_FUNC_.*|PYTHON.*|PERL.*|RUBY.*|"
    r"LUA_.*|TCL.*|GIT_.*|WRALE_.*)$"
)
BASE_ENV: Final = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}


class ProcessWork(msgspec.Struct, frozen=True):
    """A process: ``argv`` (on the allow-list) and the extra environment it is given."""

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()


class SimLoadWork(msgspec.Struct, frozen=True):
    """Load on a simulated board, in percent of the board."""

    cpu_pct: float


Work = ProcessWork | SimLoadWork


class JobSpec(msgspec.Struct, frozen=True):
    """One placement's desired work, checked."""

    work: Work
    duration_s: float | None = None
    cpu_quota_pct: float | None = None


class Refused(msgspec.Struct, frozen=True):
    """A desired placement this board will not run, and why."""

    reason: str


# ----------------------------------------------------------------------------- steps


class Start(msgspec.Struct, frozen=True):
    placement: str
    spec: JobSpec


class Stop(msgspec.Struct, frozen=True):
    """Removed from desired: stop it (SIGTERM, then SIGKILL after the grace)."""

    placement: str


class SetQuota(msgspec.Struct, frozen=True):
    placement: str
    cpu_quota_pct: float | None


class Forget(msgspec.Struct, frozen=True):
    """Ended (succeeded or failed) and no longer desired: drop it from the report."""

    placement: str


class Fail(msgspec.Struct, frozen=True):
    """Not started: malformed or refused; reported as ``failed`` with the reason."""

    placement: str
    reason: str


Step = Start | Stop | SetQuota | Forget | Fail


class Known(msgspec.Struct, frozen=True):
    """What the runner knows of one placement: its state, and its spec if it has one."""

    state: State
    spec: JobSpec | None = None


# ----------------------------------------------------------------------------- reading


def clip(text: str, limit: int = REASON_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _RefusedError(Exception):
    """A desired entry this board refuses (the message is the reason)."""


def _number(v: Any) -> TypeGuard[float]:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _positive(entry: Mapping[str, Any], name: str, hi: float) -> float | None:
    v = entry.get(name)
    if v is None:
        return None
    if not _number(v) or not 0 < v <= hi:
        raise _RefusedError(f"{name} must be null or a number above 0 and at most {hi:g}")
    return float(v)


def allowed(argv: Sequence[str], allow: Sequence[Sequence[str]]) -> bool:
    """Whether ``argv`` starts with one of the prefixes, element by element, exactly."""
    return any(
        0 < len(prefix) <= len(argv) and tuple(argv[: len(prefix)]) == tuple(prefix)
        for prefix in allow
    )


def _text_ok(s: str) -> bool:
    return "\x00" not in s and len(s) <= MAX_ARG_CHARS


def _process(workload: Mapping[str, Any], allow: Sequence[Sequence[str]]) -> ProcessWork:
    argv, env = workload.get("argv"), workload.get("env")
    env = {} if env is None else env
    if (
        not isinstance(argv, list)
        or not 0 < len(argv) <= MAX_ARGV
        or not all(isinstance(a, str) and _text_ok(a) for a in argv)
        or not argv[0]
    ):
        raise _RefusedError(f"workload.argv must be a list of 1 to {MAX_ARGV} strings")
    if not allowed(argv, allow):
        raise _RefusedError(f"argv not allowed by this board: {shlex.join(argv)}")
    if not isinstance(env, Mapping) or len(env) > MAX_ENV:
        raise _RefusedError(f"workload.env must be an object of at most {MAX_ENV} strings")
    pairs: list[tuple[str, str]] = []
    for key, value in sorted(env.items()):
        if not isinstance(key, str) or not ENV_KEY.match(key):
            raise _RefusedError(f"workload.env: {key!r} is not an environment variable name")
        if UNSAFE_ENV.match(key):
            raise _RefusedError(f"workload.env: {key} is not allowed on this board")
        if not isinstance(value, str) or not _text_ok(value):
            raise _RefusedError(f"workload.env.{key} must be a string without NUL")
        pairs.append((key, value))
    return ProcessWork(tuple(argv), tuple(pairs))


def _sim_load(workload: Mapping[str, Any]) -> SimLoadWork:
    pct = workload.get("cpu_pct")
    if not _number(pct) or not 0 <= pct <= 100:
        raise _RefusedError("workload.cpu_pct must be a number from 0 to 100")
    return SimLoadWork(float(pct))


def read_entry(placement: Any, entry: Any, allow: Sequence[Sequence[str]]) -> JobSpec | Refused:
    """One desired placement, checked against the board's allow-list."""
    try:
        if not isinstance(placement, str) or not PLACEMENT_ID.match(placement):
            raise _RefusedError("a placement id is 1 to 100 letters, digits, '_', '-' or '.'")
        if not isinstance(entry, Mapping):
            raise _RefusedError("a placement must be an object")
        workload = entry.get("workload")
        if not isinstance(workload, Mapping):
            raise _RefusedError("workload must be an object")
        kind = workload.get("kind")
        work: Work
        if kind == "process":
            work = _process(workload, allow)
        elif kind == "sim_load":
            work = _sim_load(workload)
        else:
            raise _RefusedError(f"workload.kind must be 'process' or 'sim_load', not {kind!r}")
        duration = _positive(entry, "duration_s", MAX_DURATION_S)
        quota = _positive(entry, "cpu_quota_pct", MAX_QUOTA_PCT)
    except _RefusedError as bad:
        return Refused(clip(str(bad)))
    return JobSpec(work, duration, quota)


def job_env(work: ProcessWork) -> dict[str, str]:
    """The whole environment of a job: a minimal one plus the keys it was given (never
    the agent's own, which holds its secrets)."""
    return {**BASE_ENV, **dict(work.env)}


# ----------------------------------------------------------------------------- planning


def plan(
    known: Mapping[str, Known], desired: Any, allow: Sequence[Sequence[str]]
) -> tuple[list[Step], str | None]:
    """The steps from what runs (``known``) to ``desired`` (the desired ``jobs`` section,
    ``None`` for none), and why the section itself is unusable (``None``: it is usable).

    A placement not known is started (or failed with the reason); an active one gone from
    desired is stopped; an active one whose ``cpu_quota_pct`` changed gets the new quota.
    A finished placement is not started again while it stays desired, except a stopped
    one (it was removed, then desired again); gone from desired, a succeeded or failed
    one is forgotten (a stopped one is dropped once reported). The rest of a running
    placement's entry is fixed at its start.
    """
    problem = None
    if desired is None:
        desired = {}
    elif not isinstance(desired, Mapping):
        problem, desired = "jobs must be an object of placements", {}
    steps: list[Step] = []
    for n, placement in enumerate(sorted(desired, key=str)):
        have = known.get(placement)
        if have is not None and have.state != "stopped":
            if have.state in ACTIVE and have.spec is not None:
                spec = read_entry(placement, desired[placement], allow)
                quota = spec.cpu_quota_pct if isinstance(spec, JobSpec) else None
                if isinstance(spec, JobSpec) and quota != have.spec.cpu_quota_pct:
                    steps.append(SetQuota(placement, quota))
            continue
        if n >= MAX_PLACEMENTS:
            steps.append(Fail(str(placement), f"this board runs at most {MAX_PLACEMENTS} jobs"))
            continue
        spec = read_entry(placement, desired[placement], allow)
        if isinstance(spec, Refused):
            steps.append(Fail(clip(str(placement), 100), spec.reason))
        else:
            steps.append(Start(placement, spec))
    for placement, have in sorted(known.items()):
        if placement in desired:
            continue
        if have.state in ACTIVE:
            steps.append(Stop(placement))
        elif have.state != "stopped":
            steps.append(Forget(placement))
    return steps, problem
