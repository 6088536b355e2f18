"""``wrale rollouts …``: staged rollouts of a policy, a config template version or a
command, in waves gated on what the boards did (create, list, show with each wave's gate
values, pause, resume, approve, abort), over ``/api/v1/rollouts`` (``docs/rollouts.md``)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from wrale.user.cli import refs
from wrale.user.cli.fleet_common import (
    KEEP,
    Col,
    JsonOpt,
    LimitOpt,
    client,
    kv_table,
    list_table,
    parse_duration,
    resolve,
    say,
    sub_app,
    when,
)
from wrale.user.cli.output import console, print_json

rollouts_app = sub_app("Staged rollouts in waves with physical health gates.")
RolloutArg = Annotated[str, typer.Argument(help="rollout id, name, or a unique part of the id")]


def _json(text: str | None, option: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as e:
        raise typer.BadParameter(f"not JSON: {e}", param_hint=option) from e


def change_of(
    policy_kind: str | None,
    values: str | None,
    template: str | None,
    version: int | None,
    variables: str | None,
    command: str | None,
    args: str | None,
    disruptive: bool = False,
) -> dict[str, Any]:
    """The change the options describe: exactly one of a policy, a template, a command
    (``disruptive``: it waits for each board's maintenance window)."""
    out = _change_of(policy_kind, values, template, version, variables, command, args)
    return {**out, "disruptive": True} if disruptive else out


def _change_of(
    policy_kind: str | None,
    values: str | None,
    template: str | None,
    version: int | None,
    variables: str | None,
    command: str | None,
    args: str | None,
) -> dict[str, Any]:
    given = [x for x in (policy_kind, template, command) if x is not None]
    if len(given) != 1:
        raise typer.BadParameter("give exactly one of --policy-kind, --template or --command")
    if policy_kind is not None:
        if values is None:
            raise typer.BadParameter("a policy rollout needs --values JSON", param_hint="--values")
        return {"kind": "policy", "policy_kind": policy_kind, "values": _json(values, "--values")}
    if template is not None:
        out: dict[str, Any] = {"kind": "template", "template_id": template}
        if version is not None:
            out["version"] = version
        if variables is not None:
            out["variables"] = _json(variables, "--variables")
        return out
    return {"kind": "command", "op": command, "args": _json(args, "--args") or {}}


def rate_of(text: str) -> dict[str, Any]:
    """``BASE,FACTOR,AFTER[,MAX]`` as a rate (the central checks the bounds)."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (3, 4):
        raise typer.BadParameter("BASE,FACTOR,AFTER[,MAX], e.g. 2,2.0,10,50", param_hint="--rate")
    try:
        out: dict[str, Any] = {
            "base_per_minute": int(parts[0]),
            "increment_factor": float(parts[1]),
            "after_succeeded": int(parts[2]),
        }
        if len(parts) == 4:
            out["max_per_minute"] = int(parts[3])
    except ValueError as e:
        raise typer.BadParameter(f"not a number: {e}", param_hint="--rate") from e
    return out


@rollouts_app.command()
def create(
    name: Annotated[str, typer.Argument(help="the rollout's name")],
    policy_kind: Annotated[
        str | None, typer.Option(help="roll out a policy: thermal, power, security, sampling")
    ] = None,
    values: Annotated[str | None, typer.Option(help="the policy's values (JSON)")] = None,
    template: Annotated[str | None, typer.Option(help="roll out a config template (id)")] = None,
    version: Annotated[int | None, typer.Option(min=1, help="its version (default latest)")] = None,
    variables: Annotated[str | None, typer.Option(help="the template's variables (JSON)")] = None,
    command: Annotated[str | None, typer.Option(help="roll out a command (its op)")] = None,
    args: Annotated[str | None, typer.Option(help="the command's arguments (JSON)")] = None,
    disruptive: Annotated[
        bool, typer.Option(help="the change waits for each board's maintenance window")
    ] = False,
    tag: Annotated[list[str] | None, typer.Option(help="only boards with every tag")] = None,
    site: Annotated[str | None, typer.Option(help="only boards of this site")] = None,
    rack: Annotated[str | None, typer.Option(help="only boards in this rack")] = None,
    selector: Annotated[str | None, typer.Option(help="a full selector (JSON)")] = None,
    waves: Annotated[
        str, typer.Option(help='e.g. [{"count": 2}, {"percent": 50}, {"percent": 100}]')
    ] = '[{"percent": 100}]',
    rate: Annotated[
        str | None,
        typer.Option(
            help="exponential rate instead of --waves: BASE/min,xFACTOR,afterN[,maxM] "
            "e.g. 2,2.0,10,50"
        ),
    ] = None,
    one_per_rack_first: Annotated[
        bool, typer.Option(help="first wave: one board per rack")
    ] = False,
    max_per_rack: Annotated[
        int | None, typer.Option(min=1, help="boards per rack per wave")
    ] = None,
    max_per_feed: Annotated[
        int | None, typer.Option(min=1, help="boards per power feed per wave")
    ] = None,
    observe: Annotated[str, typer.Option(help="observation per wave, e.g. 5m")] = "60s",
    max_temp_rise: Annotated[
        float | None, typer.Option(min=0, help="°C above baseline, weather cancelled")
    ] = None,
    max_failure_pct: Annotated[float | None, typer.Option(min=0, max=100)] = None,
    max_power_rise: Annotated[float | None, typer.Option(min=0, help="W above baseline")] = None,
    max_fan_anomalies: Annotated[
        int | None, typer.Option(min=0, help="boards with a fan anomaly (default 0)")
    ] = None,
    max_alerts: Annotated[int | None, typer.Option(min=0, help="alerts raised")] = None,
    on_gate_failure: Annotated[str, typer.Option(help="abort (roll back) or pause")] = "abort",
    require_approval: Annotated[bool, typer.Option(help="wait for approve between waves")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a rollout, e.g. ``wrale rollouts create fans --policy-kind thermal --values
    '{"hysteresis_c": 3}' --site dc --waves '[{"count": 2}, {"percent": 100}]'``."""
    if on_gate_failure not in ("abort", "pause"):
        raise typer.BadParameter("abort or pause", param_hint="--on-gate-failure")
    change = change_of(policy_kind, values, template, version, variables, command, args, disruptive)
    if rate is not None and waves != '[{"percent": 100}]':
        raise typer.BadParameter("give --waves or --rate, not both", param_hint="--rate")
    how: dict[str, Any] = (
        {"rate": rate_of(rate)} if rate is not None else {"steps": _json(waves, "--waves")}
    )
    gates: dict[str, Any] = {"observe_s": parse_duration(observe)}
    limits = {
        "max_temp_rise_c": max_temp_rise,
        "max_failure_pct": max_failure_pct,
        "max_power_rise_w": max_power_rise,
        "max_fan_anomalies": max_fan_anomalies,
        "max_alerts": max_alerts,
    }
    gates.update({k: v for k, v in limits.items() if v is not None})
    with client() as c:
        sel: dict[str, Any] = _json(selector, "--selector") or {}
        if tag:
            sel["tags_all"] = tag
        if site:
            sel["site_id"] = resolve(c, "site", site)
        if rack:
            sel["rack_id"] = resolve(c, "rack", rack)
        body = {
            "name": name,
            "change": change,
            "selector": sel,
            "waves": {
                **how,
                "one_per_rack_first": one_per_rack_first,
                "max_per_rack": max_per_rack,
                "max_per_feed": max_per_feed,
            },
            "gates": gates,
            "on_gate_failure": on_gate_failure,
            "require_approval": require_approval,
        }
        r = c.post("/rollouts", body)
    if as_json:
        print_json(r)
        return
    sizes = ", ".join(str(len(w["devices"])) for w in r.get("waves") or [])
    say(f"rollout {r['id']} ({r['name']}): {r['state']}, waves of {sizes} board(s)")


@rollouts_app.command("list")
def list_rollouts(
    state: Annotated[
        str | None,
        typer.Option(help="running, waiting_approval, paused, succeeded, aborted, rolled_back"),
    ] = None,
    limit: LimitOpt = 200,
    as_json: JsonOpt = False,
) -> None:
    """Rollouts, newest first."""
    with client() as c:
        items = list(c.iter_all("/rollouts", {"state": state}, limit=limit))
        short = refs.short_ids(c, "rollout")
    if as_json:
        print_json(items)
        return
    console.print(
        list_table(
            f"Rollouts ({len(items)})",
            [
                Col("id", 1),
                Col("name", KEEP),
                Col("state", KEEP),
                Col("change", 1),
                Col("wave", 2),
                Col("created", 4),
            ],
            (
                [
                    short(r["id"]),
                    r["name"],
                    r["state"],
                    r["change"].get("kind"),
                    r["current_wave"] + 1,
                    when(r.get("created_at")),
                ]
                for r in items
            ),
        )
    )


def _gate_row(w: dict[str, Any]) -> list[Any]:
    g = w.get("gate") or {}
    verdict = "" if "passed" not in g else ("passed" if g["passed"] else "failed")
    return [
        w["index"] + 1,
        w["state"],
        len(w["devices"]),
        verdict,
        g.get("failure_pct"),
        g.get("offline"),
        g.get("temp_rise_c"),
        g.get("weather_rise_c"),
        g.get("power_rise_w"),
        g.get("new_throttling"),
        g.get("fan_anomalies"),
        g.get("alerts"),
        "; ".join(g.get("reasons") or []),
    ]


@rollouts_app.command()
def show(rollout: RolloutArg, as_json: JsonOpt = False) -> None:
    """A rollout with its waves: their boards, states and measured gate values."""
    with client() as c:
        r = c.get(f"/rollouts/{resolve(c, 'rollout', rollout)}")
    if as_json:
        print_json(r)
        return
    waves = r.pop("waves", None) or []
    console.print(
        kv_table(
            f"Rollout {r['id']}", {k: when(v) if k.endswith("_at") else v for k, v in r.items()}
        )
    )
    console.print(
        list_table(
            "Waves",
            ["wave", "state", "boards", "gate", "fail %", "offline", "temp +°C", "weather",
             "power +W", "throttling", "fans", "alerts", "reasons"],
            (_gate_row(w) for w in waves),
        )
    )  # fmt: skip


def _action(name: str, doc: str) -> None:
    def run(rollout: RolloutArg, as_json: JsonOpt = False) -> None:
        with client() as c:
            r = c.post(f"/rollouts/{resolve(c, 'rollout', rollout)}/{name}", None)
        if as_json:
            print_json(r)
            return
        say(f"rollout {r['id']} ({r['name']}): {r['state']}")

    run.__doc__ = doc
    rollouts_app.command(name)(run)


_action("pause", "Pause: no wave starts; paused time does not count in the observation.")
_action("resume", "Resume; a wave that failed its gate retries only its failed boards.")
_action("approve", "Let the next wave start (a rollout that requires approval).")
_action("abort", "Abort: the boards already changed are rolled back; the others never get it.")
