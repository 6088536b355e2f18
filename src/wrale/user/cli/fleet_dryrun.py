"""``wrale dry-run job|stop-job|rack-budget … --minutes N`` and ``wrale dry-run show ID``:
ask the central for a dry-run of a change on the digital copy of the fleet
(``/api/v1/dry-runs``, ``docs/dry-run.md``), wait for its result and print the fleet's and
each rack's figures without and with the change."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from wrale.user.cli.client import CentralClient
from wrale.user.cli.fleet_common import (
    JsonOpt,
    client,
    fail,
    group_id,
    list_table,
    resolve,
    say,
    sub_app,
)
from wrale.user.cli.fleet_jobs import STRATEGIES, workload_of
from wrale.user.cli.output import console, print_json

dry_run_app = sub_app(
    "Dry-run a change on a digital copy of the fleet: the next minutes with and without it."
)
MinutesOpt = Annotated[int, typer.Option(min=1, max=60, help="simulated minutes (1-60)")]
WaitOpt = Annotated[
    bool, typer.Option(help="wait for the result (--no-wait: print the dry-run's id)")
]
TimeoutOpt = Annotated[float, typer.Option(min=1, help="seconds to wait for the result")]
POLL_S = 0.5
FIGURES = (
    ("peak_temp_c", "peak temperature (°C)", ".1f"),
    ("throttled_board_s", "throttled (board-s)", ".0f"),
    ("budget_violation_s", "over budget (rack-s)", ".0f"),
    ("work_done", "work (CPU-s)", ".0f"),
    ("moves", "moves", ".0f"),
    ("battery_job_s", "on battery (replica-s)", ".0f"),
)


def _num(value: Any, fmt: str, sign: bool = False) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value:{'+' if sign else ''}{fmt}}"


def show_result(d: dict[str, Any]) -> None:
    """The fleet's figures and each rack's, without and with the change."""
    if d["state"] != "done":
        say(f"dry-run {d['id']}: {d['state']}" + (f": {d['error']}" if d.get("error") else ""))
        return
    result = d["result"]
    fleet = result["fleet"]
    say(f"dry-run {d['id']}: {d['change'].get('kind')}")
    console.print(
        list_table(
            f"{result['boards_modelled']} boards, next {d['minutes']} min",
            ["figure", "without", "with", "difference"],
            (
                [
                    label,
                    _num(fleet["without"][k], fmt),
                    _num(fleet["with"][k], fmt),
                    _num(fleet["difference"][k], fmt, sign=True),
                ]
                for k, label, fmt in FIGURES
            ),
        )
    )
    console.print(
        list_table(
            "Racks (without → with)",
            ["rack", "budget W", "mean draw W", "peak °C", "throttled board-s", "work CPU-s"],
            (
                [
                    r.get("name") or r["rack"],
                    f"{_num(r['budget_w']['without'], '.0f')} → "
                    f"{_num(r['budget_w']['with'], '.0f')}",
                    f"{r['without']['mean_draw_w']:.1f} → {r['with']['mean_draw_w']:.1f}",
                    f"{r['without']['peak_temp_c']:.1f} → {r['with']['peak_temp_c']:.1f}",
                    f"{r['without']['throttled_board_s']:.0f} → "
                    f"{r['with']['throttled_board_s']:.0f}",
                    f"{r['without']['work_done']:.0f} → {r['with']['work_done']:.0f}",
                ]
                for r in result["racks"]
            ),
        )
    )
    if result.get("boards_left_out_count"):
        say(f"{result['boards_left_out_count']} board(s) left out (offline or no fresh reading)")
    say(result["summary"])


def _wait(c: CentralClient, dry_run_id: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        d: dict[str, Any] = c.get(f"/dry-runs/{dry_run_id}")
        if d["state"] in ("done", "failed"):
            return d
        if time.monotonic() >= deadline:
            raise fail(
                f"dry-run {dry_run_id} is still {d['state']} after {timeout_s:g} s; "
                f"see it later with: wrale dry-run show {dry_run_id}"
            )
        time.sleep(POLL_S)


def _submit(
    change: dict[str, Any], minutes: int, wait: bool, timeout_s: float, as_json: bool
) -> None:
    with client() as c:
        queued = c.post("/dry-runs", {"change": change, "minutes": minutes})
        if not wait:
            if as_json:
                print_json(queued)
            else:
                say(
                    f"dry-run {queued['id']} queued; see it with: wrale dry-run show {queued['id']}"
                )
            return
        d = _wait(c, queued["id"], timeout_s)
    if as_json:
        print_json(d)
        return
    show_result(d)
    if d["state"] == "failed":
        raise typer.Exit(1)


@dry_run_app.command()
def job(
    name: Annotated[str, typer.Argument(help="the job's name")],
    argv: Annotated[
        list[str] | None, typer.Argument(help="the command it would run, after --")
    ] = None,
    sim_load: Annotated[
        float | None, typer.Option(min=0, max=100, help="CPU percent on a simulated board")
    ] = None,
    replicas: Annotated[int, typer.Option(min=1, help="how many boards run it")] = 1,
    priority: Annotated[int, typer.Option(min=0, max=100)] = 50,
    strategy: Annotated[str, typer.Option(help="physical (default) or spread")] = "physical",
    tag: Annotated[list[str] | None, typer.Option(help="only boards with every tag")] = None,
    group: Annotated[str | None, typer.Option(help="only boards of this group")] = None,
    rack: Annotated[str | None, typer.Option(help="only boards in this rack")] = None,
    max_per_rack: Annotated[int | None, typer.Option(min=1)] = None,
    cpu_pct: Annotated[float | None, typer.Option(min=0, max=100, help="CPU share hint")] = None,
    watts: Annotated[float | None, typer.Option(min=0, max=1000, help="power hint")] = None,
    allow_battery: Annotated[bool, typer.Option(help="may run on boards on battery")] = False,
    minutes: MinutesOpt = 10,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = 600.0,
    as_json: JsonOpt = False,
) -> None:
    """What placing a new job would do, e.g. ``wrale dry-run job heat --sim-load 50
    --replicas 4 --minutes 15``."""
    if strategy not in STRATEGIES:
        raise typer.BadParameter(f"{strategy!r}: physical or spread", param_hint="--strategy")
    change: dict[str, Any] = {
        "kind": "job",
        "name": name,
        "workload": workload_of(argv, sim_load, None),
        "replicas": replicas,
        "priority": priority,
        "strategy": strategy,
        "allow_battery": allow_battery,
    }
    hints = {"max_per_rack": max_per_rack, "cpu_pct": cpu_pct, "watts": watts}
    change.update({key: value for key, value in hints.items() if value is not None})
    if tag or group or rack:
        with client() as c:
            selector: dict[str, Any] = {"tags": tag} if tag else {}
            if group:
                selector["group_id"] = group_id(c, group)
            if rack:
                selector["rack_id"] = resolve(c, "rack", rack)
        change["selector"] = selector
    _submit(change, minutes, wait, timeout, as_json)


@dry_run_app.command("stop-job")
def stop_job(
    job: Annotated[str, typer.Argument(help="the job (id, name, or a unique part of the id)")],
    minutes: MinutesOpt = 10,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = 600.0,
    as_json: JsonOpt = False,
) -> None:
    """What stopping a job would do."""
    with client() as c:
        job_id = resolve(c, "job", job)
    _submit({"kind": "stop_job", "job": job_id}, minutes, wait, timeout, as_json)


@dry_run_app.command("rack-budget")
def rack_budget(
    rack: Annotated[str, typer.Argument(help="the rack (name or id)")],
    watts: Annotated[float, typer.Argument(min=1, max=1_000_000, help="its new budget (W)")],
    minutes: MinutesOpt = 10,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = 600.0,
    as_json: JsonOpt = False,
) -> None:
    """What a new power budget for a rack would do."""
    with client() as c:
        rack_id = resolve(c, "rack", rack)
    change = {"kind": "rack_budget", "rack": rack_id, "watts": watts}
    _submit(change, minutes, wait, timeout, as_json)


@dry_run_app.command()
def show(
    dry_run_id: Annotated[str, typer.Argument(help="the dry-run's id or a unique part of it")],
    as_json: JsonOpt = False,
) -> None:
    """A dry-run: its state, and once done its figures without and with the change."""
    with client() as c:
        d = c.get(f"/dry-runs/{resolve(c, 'dry-run', dry_run_id)}")
    if as_json:
        print_json(d)
        return
    show_result(d)
