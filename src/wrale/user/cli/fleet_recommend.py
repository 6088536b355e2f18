"""``wrale recommend`` (the brain's open recommendations, highest score first), ``wrale
recommend accept ID`` (performs its action, or acknowledges it) and ``wrale recommend
dismiss ID [--reason]``, over ``/api/v1/recommendations`` (``docs/jobs.md``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from wrale.user.cli import refs
from wrale.user.cli.fleet_common import (
    FleetGroup,
    JsonOpt,
    LimitOpt,
    client,
    list_table,
    resolve,
    say,
    when,
)
from wrale.user.cli.output import console, print_json

recommend_app = typer.Typer(
    help="Recommendations: what the brain suggests fixing (list, accept, dismiss).",
    cls=FleetGroup,
)
RecArg = Annotated[str, typer.Argument(help="recommendation id or a unique part of it")]
STATES = ("open", "accepted", "dismissed", "expired", "all")


def _action(r: dict[str, Any]) -> str:
    action = r.get("action")
    if not isinstance(action, dict):
        return "acknowledge"
    if action.get("kind") == "stop_jobs":
        return f"stop {len(action.get('job_ids') or [])} job(s)"
    return str(action.get("kind"))


def _row(r: dict[str, Any]) -> list[Any]:
    return [
        r["id"],
        r.get("severity"),
        round(float(r.get("score") or 0.0)),
        r.get("kind"),
        r.get("title"),
        _action(r),
        r.get("state"),
        when(r.get("updated_at")),
    ]


@recommend_app.callback(invoke_without_command=True)
def recommend(
    ctx: typer.Context,
    state: Annotated[
        str, typer.Option(help="open (default), accepted, dismissed, expired, all")
    ] = "open",
    limit: LimitOpt = 200,
    as_json: JsonOpt = False,
) -> None:
    """The brain's recommendations, highest score first (open ones unless ``--state``)."""
    if ctx.invoked_subcommand is not None:
        return
    if state not in STATES:
        raise typer.BadParameter(f"{state!r}: one of {', '.join(STATES)}", param_hint="--state")
    params = {"state": None if state == "all" else state}
    with client() as c:
        items = list(c.iter_all("/recommendations", params, limit=limit))
        short = refs.short_ids(c, "recommendation")
    items.sort(key=lambda r: (-float(r.get("score") or 0.0), r["id"]))
    if as_json:
        print_json(items)
        return
    console.print(
        list_table(
            f"Recommendations ({len(items)})",
            ["id", "severity", "score", "kind", "title", "on accept", "state", "updated"],
            (_row(r | {"id": short(r["id"])}) for r in items),
        )
    )


@recommend_app.command()
def accept(rec: RecArg, as_json: JsonOpt = False) -> None:
    """Accept one: its action is performed (e.g. stop the jobs it names); one without an
    automatic action is acknowledged."""
    with client() as c:
        r = c.post(f"/recommendations/{resolve(c, 'recommendation', rec)}/accept")
    if as_json:
        print_json(r)
        return
    say(f"recommendation {r['id']} accepted: {r.get('result')}")


@recommend_app.command()
def dismiss(
    rec: RecArg,
    reason: Annotated[str | None, typer.Option(help="why (kept with it)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Dismiss one; it is not raised again for a day unless it gets markedly worse."""
    body = {"reason": reason} if reason is not None else {}
    with client() as c:
        r = c.post(f"/recommendations/{resolve(c, 'recommendation', rec)}/dismiss", body)
    if as_json:
        print_json(r)
        return
    say(f"recommendation {r['id']} dismissed")
