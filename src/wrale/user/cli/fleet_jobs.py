"""``wrale jobs …`` (create, list, show with its placements and history, stop) and
``wrale decisions`` (the brain's decision log), over ``/api/v1/jobs`` and
``/api/v1/decisions`` (``docs/jobs.md``)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from wrale.shared.errors import WraleError
from wrale.user.cli import refs
from wrale.user.cli.fleet_common import (
    KEEP,
    Col,
    JsonOpt,
    LimitOpt,
    client,
    device_id,
    group_id,
    kv_table,
    list_table,
    parse_duration,
    resolve,
    say,
    sub_app,
    when,
)
from wrale.user.cli.output import console, print_json

jobs_app = sub_app("Jobs: work the brain places on boards (create, list, show, stop).")
JobArg = Annotated[str, typer.Argument(help="job id, name, or a unique part of the id")]
STRATEGIES = ("physical", "spread")


def _env(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint="--env")
        out[key] = value
    return out


def workload_of(argv: list[str] | None, sim_load: float | None, env: list[str] | None) -> Any:
    """The workload the options describe: a process (``ARGV…``) or a simulated load."""
    if bool(argv) == (sim_load is not None):
        raise typer.BadParameter("give either a command (ARGV…) or --sim-load, not both")
    if sim_load is not None:
        if env:
            raise typer.BadParameter("--env applies to a command, not to --sim-load")
        return {"kind": "sim_load", "cpu_pct": sim_load}
    return {"kind": "process", "argv": list(argv or []), "env": _env(env)}


def _placement_row(p: dict[str, Any], names: dict[str, str]) -> list[Any]:
    device = p.get("device_id")
    return [
        p["id"],
        p.get("replica"),
        names.get(device or "", device),
        p.get("state"),
        p.get("cpu_quota_pct"),
        p.get("exit_code"),
        p.get("reason"),
    ]


def _device_names(c: Any, job: dict[str, Any]) -> dict[str, str]:
    ids = {p["device_id"] for p in job.get("placements", []) if p.get("device_id")}
    names = {}
    for ident in ids:
        try:
            names[ident] = c.get(f"/devices/{ident}")["name"]
        except WraleError:  # a name is a nicety (a board deleted since); the id still shows
            names[ident] = ident
    return names


def _job_row(j: dict[str, Any]) -> list[Any]:
    placements = j.get("placements", [])
    running = sum(1 for p in placements if p.get("state") == "running")
    return [
        j["id"],
        j["name"],
        j["state"],
        f"{running}/{j['replicas']}",
        j["priority"],
        j["strategy"],
        j["workload"].get("kind"),
        when(j.get("created_at")),
    ]


@jobs_app.command()
def create(
    name: Annotated[str, typer.Argument(help="the job's name")],
    argv: Annotated[
        list[str] | None, typer.Argument(help="the command to run, after -- (a process job)")
    ] = None,
    sim_load: Annotated[
        float | None, typer.Option(min=0, max=100, help="CPU percent on a simulated board instead")
    ] = None,
    env: Annotated[list[str] | None, typer.Option(help="KEY=VALUE for the process")] = None,
    replicas: Annotated[int, typer.Option(min=1, help="how many boards run it")] = 1,
    priority: Annotated[int, typer.Option(min=0, max=100)] = 50,
    strategy: Annotated[str, typer.Option(help="physical (default) or spread")] = "physical",
    duration: Annotated[
        str | None, typer.Option(help="e.g. 30m; default: a service (runs until stopped)")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option(help="only boards with every tag")] = None,
    group: Annotated[str | None, typer.Option(help="only boards of this group")] = None,
    rack: Annotated[str | None, typer.Option(help="only boards in this rack")] = None,
    max_per_rack: Annotated[int | None, typer.Option(min=1)] = None,
    cpu_pct: Annotated[float | None, typer.Option(min=0, max=100, help="CPU share hint")] = None,
    watts: Annotated[float | None, typer.Option(min=0, max=1000, help="power hint")] = None,
    allow_battery: Annotated[bool, typer.Option(help="may run on boards on battery")] = False,
    restartable: Annotated[bool, typer.Option(help="the brain may move it")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Create a job, e.g. ``wrale jobs create render --replicas 4 -- /usr/bin/stress-ng -c 1``."""
    if strategy not in STRATEGIES:
        raise typer.BadParameter(f"{strategy!r}: physical or spread", param_hint="--strategy")
    body: dict[str, Any] = {
        "name": name,
        "workload": workload_of(argv, sim_load, env),
        "replicas": replicas,
        "priority": priority,
        "strategy": strategy,
        "restartable": restartable,
        "allow_battery": allow_battery,
    }
    if duration is not None:
        body["duration_s"] = parse_duration(duration)
    hints = {"max_per_rack": max_per_rack, "cpu_pct": cpu_pct, "watts": watts}
    body.update({key: value for key, value in hints.items() if value is not None})
    with client() as c:
        selector: dict[str, Any] = {}
        if tag:
            selector["tags"] = tag
        if group:
            selector["group_id"] = group_id(c, group)
        if rack:
            selector["rack_id"] = resolve(c, "rack", rack)
        if selector:
            body["selector"] = selector
        job = c.post("/jobs", body)
    if as_json:
        print_json(job)
        return
    placed = sum(1 for p in job["placements"] if p.get("device_id"))
    say(f"job {job['id']} ({job['name']}): {placed} of {job['replicas']} replica(s) placed")


@jobs_app.command("list")
def list_jobs(
    state: Annotated[
        str | None, typer.Option(help="pending, running, succeeded, failed, stopped")
    ] = None,
    limit: LimitOpt = 200,
    as_json: JsonOpt = False,
) -> None:
    """Jobs, oldest first."""
    with client() as c:
        items = list(c.iter_all("/jobs", {"state": state}, limit=limit))
        short = refs.short_ids(c, "job")
    if as_json:
        print_json(items)
        return
    console.print(
        list_table(
            f"Jobs ({len(items)})",
            [
                Col("id", 1),
                Col("name", KEEP),
                Col("state", KEEP),
                Col("running", 1),
                Col("priority", 5),
                Col("strategy", 6),
                Col("workload", 4),
                Col("created", 2),
            ],
            (_job_row(j | {"id": short(j["id"])}) for j in items),
        )
    )


@jobs_app.command()
def show(job: JobArg, as_json: JsonOpt = False) -> None:
    """A job with its placements (where each runs, its state and why) and their history."""
    with client() as c:
        job = resolve(c, "job", job)
        j = c.get(f"/jobs/{job}")
        history = c.get(f"/jobs/{job}/transitions")
        names = _device_names(c, j)
    if as_json:
        print_json({**j, "transitions": history})
        return
    placements = j.pop("placements", [])
    console.print(
        kv_table(f"Job {j['id']}", {k: when(v) if k.endswith("_at") else v for k, v in j.items()})
    )
    console.print(
        list_table(
            "Placements",
            ["id", "replica", "board", "state", "quota %", "exit", "reason"],
            (_placement_row(p, names) for p in placements),
        )
    )
    console.print(
        list_table(
            "History",
            ["at", "placement", "board", "from", "to", "by", "reason"],
            (
                [
                    when(t.get("at")),
                    t.get("placement_id"),
                    names.get(t.get("device_id") or "", t.get("device_id")),
                    t.get("from_state"),
                    t.get("to_state"),
                    t.get("actor"),
                    t.get("reason"),
                ]
                for t in history
            ),
        )
    )


@jobs_app.command()
def stop(job: JobArg, as_json: JsonOpt = False) -> None:
    """Stop a job: its boards are told to stop it; replicas not on a board stop at once."""
    with client() as c:
        j = c.delete(f"/jobs/{resolve(c, 'job', job)}")
    if as_json:
        print_json(j)
        return
    say(f"job {j['id']} ({j['name']}): stop asked, state {j['state']}")


def decisions(
    loop: Annotated[str | None, typer.Option(help="placement, capping, balancing …")] = None,
    device: Annotated[str | None, typer.Option(help="decisions about this board")] = None,
    subject: Annotated[str | None, typer.Option(help="a job, placement or rack id")] = None,
    since: Annotated[str | None, typer.Option(help="e.g. 1h: only this recent")] = None,
    limit: LimitOpt = 100,
    as_json: JsonOpt = False,
) -> None:
    """The brain's decision log, newest first: what it decided, about what, and why."""
    with client() as c:
        params: dict[str, Any] = {"loop": loop, "subject": subject}
        if device:
            params["subject"] = device_id(c, device)
        if since:
            params["since"] = time.time() - parse_duration(since)
        items = list(c.iter_all("/decisions", params, limit=limit))
    if as_json:
        print_json(items)
        return
    console.print(
        list_table(
            f"Decisions ({len(items)})",
            ["at", "loop", "action", "summary", "subjects"],
            (
                [
                    when(d.get("at")),
                    d.get("loop"),
                    d.get("action"),
                    d.get("summary"),
                    ", ".join(f"{k}={v}" for k, v in (d.get("subjects") or {}).items()),
                ]
                for d in items
            ),
        )
    )
