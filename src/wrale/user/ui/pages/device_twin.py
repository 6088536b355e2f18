"""The device page's twin table: one row per desired value (and per placement of the
``jobs`` section), with what the board reports and whether it is in sync, pending or
rejected."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from wrale.fleet.brain.models.twin import DeviceTwin
from wrale.fleet.brain.services import twin as twin_svc


def show(value: Any) -> str:
    """A desired or reported value as the twin table shows it."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(", ", ": "), default=str)


def _leaves(doc: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in doc.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.extend(_leaves(value, path))
        else:
            out.append((path, value))
    return out


def _lookup(doc: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    here: Any = doc
    for part in path.split("."):
        if not isinstance(here, dict) or part not in here:
            return False, None
        here = here[part]
    return True, here


def _covers(path: str, where: str) -> bool:
    """A rejected ``where`` concerns ``path`` (the same, a parent or a child of it)."""
    return where == path or path.startswith(f"{where}.") or where.startswith(f"{path}.")


def _reason(path: str, rejected: Mapping[str, str]) -> str | None:
    return next((str(why) for where, why in rejected.items() if _covers(path, where)), None)


def job_rows(t: DeviceTwin) -> list[dict[str, Any]]:
    """One row per placement the board is asked to run (the ``jobs`` section has other
    shapes each way): the job and its workload asked for, the state the board reports."""
    rows: list[dict[str, Any]] = []
    asked = (t.desired or {}).get("jobs")
    told = (t.reported or {}).get("jobs")
    told = told if isinstance(told, dict) else {}
    for pid, want in (asked if isinstance(asked, dict) else {}).items():
        want = want if isinstance(want, dict) else {}
        have = told.get(pid)
        have = have if isinstance(have, dict) else None
        workload = want.get("workload")
        workload = workload if isinstance(workload, dict) else {}
        why = _reason(f"jobs.{pid}", t.rejected or {})
        state = have.get("state") if have else None
        rows.append(
            {
                "path": f"jobs.{pid}",
                "section": "jobs",
                "desired": f"{want.get('name', '?')} ({workload.get('kind', '?')})",
                "reported": str(state) if state else "not reported",
                "state": "rejected" if why else ("in-sync" if have else "pending"),
                "reason": why or (have.get("reason") if have else None),
            }
        )
    return rows


def twin_rows(t: DeviceTwin) -> list[dict[str, Any]]:
    """One row per desired leaf (and per rejected path the desired document lacks):
    desired and reported values, and whether it is in sync, pending or rejected."""
    rows: list[dict[str, Any]] = job_rows(t)
    for path, want in _leaves({k: v for k, v in (t.desired or {}).items() if k != "jobs"}):
        present, have = _lookup(t.reported or {}, path)
        why = _reason(path, t.rejected or {})
        if why is not None:
            state = "rejected"
        elif present and twin_svc.same_json(want, have):
            state = "in-sync"
        else:
            state = "pending"
        rows.append(
            {
                "path": path,
                "section": path.split(".", 1)[0],
                "desired": show(want),
                "reported": show(have) if present else "not reported",
                "state": state,
                "reason": why,
            }
        )
    for path, why in (t.rejected or {}).items():
        if not any(_covers(r["path"], path) for r in rows):
            present, have = _lookup(t.reported or {}, path)
            rows.append(
                {
                    "path": path,
                    "section": path.split(".", 1)[0],
                    "desired": "—",
                    "reported": show(have) if present else "not reported",
                    "state": "rejected",
                    "reason": str(why),
                }
            )
    return rows


def twin_state(t: DeviceTwin) -> str:
    if t.rejected:
        return "rejected"
    return "in-sync" if twin_svc.in_sync(t) else "pending"
