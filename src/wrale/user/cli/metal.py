"""``wrale metal …``: for a hardware operator standing at the board, over metald's API."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from wrale.metal.core.client import HttpMetalClient
from wrale.shared.errors import WraleError
from wrale.user.cli import output
from wrale.user.cli.output import console, err_console, fmt, kv_table, list_table, print_json

T = TypeVar("T")

metal_app = typer.Typer(
    help="Talk to this board's metald.", no_args_is_help=True, cls=output.FormatsGroup
)
sim_app = typer.Typer(
    help="Drive a simulated board (sim backend only).", no_args_is_help=True,
    cls=output.FormatsGroup,
)  # fmt: skip
metal_app.add_typer(sim_app, name="sim")

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


@metal_app.callback()
def _connect(
    ctx: typer.Context,
    url: Annotated[str, typer.Option(envvar="WRALE_METAL_URL", help="metald address")] = (
        "http://127.0.0.1:8431"
    ),
    api_key: Annotated[
        str, typer.Option(envvar="WRALE_METAL_API_KEY", help="metald API key")
    ] = "wrale-dev-key",
) -> None:
    ctx.obj = {"url": url, "api_key": api_key}


def _call(ctx: typer.Context, fn: Callable[[HttpMetalClient], Awaitable[T]]) -> T:
    async def go() -> T:
        async with HttpMetalClient(ctx.obj["url"], ctx.obj["api_key"]) as client:
            return await fn(client)

    try:
        return asyncio.run(go())
    except WraleError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None


def _show_thermal(t: dict[str, Any]) -> None:
    console.print(
        kv_table(
            "Thermal",
            {
                "CPU °C": t.get("cpu_temp_c"),
                "GPU °C": t.get("gpu_temp_c"),
                "ambient °C": t.get("ambient_temp_c"),
                "status": t.get("status"),
                "fan %": t.get("fan_percent"),
                "fan RPM": t.get("fan_rpm"),
                "fan floor %": t.get("fan_floor_percent"),
                "profile": t.get("profile"),
                "override": t.get("override"),
                "throttled": t.get("throttled"),
                "max freq %": t.get("max_freq_pct"),
                "warnings": t.get("warnings"),
            },
        )
    )


@metal_app.command()
def status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Thermal, power and security state of the board."""
    state = _call(ctx, lambda c: c.state())
    if as_json:
        print_json(state)
        return
    _show_thermal(state["thermal"])
    p = state["power"]
    console.print(
        kv_table(
            "Power",
            {
                "source": p.get("source"),
                "voltage V": p.get("voltage_v"),
                "power W": p.get("power_w"),
                "battery %": p.get("battery_pct"),
                "charging": p.get("charging"),
                "available": p.get("available"),
                "battery action": p.get("battery_action"),
            },
        )
    )
    s = state["security"]
    console.print(
        kv_table(
            "Security",
            {
                "armed": s.get("armed"),
                "level": s.get("level"),
                "lockdown": s.get("lockdown"),
                "case open": s.get("case_open"),
                "motion": s.get("motion_detected"),
                "voltage normal": s.get("voltage_normal"),
            },
        )
    )
    console.print(f"updated {time.strftime('%H:%M:%S', time.localtime(state['updated_at']))}")


@metal_app.command()
def fan(
    ctx: typer.Context,
    percent: Annotated[str, typer.Argument(help="0-100, or 'auto' to end an override")],
    duration: Annotated[float, typer.Option(help="seconds the override lasts")] = 300.0,
    as_json: JsonOpt = False,
) -> None:
    """Override the fan speed for a while (never below the safety floor)."""
    if percent == "auto":
        thermal = _call(ctx, lambda c: c.clear_fan())
    else:
        try:
            value = float(percent)
        except ValueError:
            err_console.print("[red]error:[/red] PERCENT must be a number or 'auto'")
            raise typer.Exit(2) from None
        thermal = _call(ctx, lambda c: c.set_fan(value, duration))
    print_json(thermal) if as_json else _show_thermal(thermal)


@metal_app.command()
def arm(
    ctx: typer.Context,
    level: Annotated[str | None, typer.Option(help="low, medium or high")] = None,
) -> None:
    """Arm tamper detection (HIGH locks actuators down on a tamper)."""
    console.print(kv_table("Security", _call(ctx, lambda c: c.arm(level))))


@metal_app.command()
def disarm(ctx: typer.Context) -> None:
    """Disarm tamper detection and lift a lockdown."""
    console.print(kv_table("Security", _call(ctx, lambda c: c.disarm())))


@metal_app.command()
def diag(
    ctx: typer.Context,
    tests: Annotated[list[str] | None, typer.Argument(help="test names; all when omitted")] = None,
    history: Annotated[bool, typer.Option(help="show past results instead")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run diagnostics (or show their history)."""
    if history:
        results = _call(ctx, lambda c: c.diag_history())
    else:
        results = _call(ctx, lambda c: c.run_diag(tests or None))
    if as_json:
        print_json(results)
        return
    colour = {"PASS": "green", "WARNING": "yellow", "FAIL": "red", "SKIPPED": "dim"}
    console.print(
        list_table(
            "Diagnostics",
            ["test", "type", "status", "reading", "expected", "message"],
            (
                [
                    r.get("name"),
                    r.get("type"),
                    f"[{colour.get(r.get('status', ''), 'white')}]{r.get('status')}[/]",
                    r.get("reading"),
                    r.get("expected"),
                    r.get("message"),
                ]
                for r in results
            ),
        )
    )
    if any(r.get("status") == "FAIL" for r in results):
        raise typer.Exit(1)


@metal_app.command()
def events(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep streaming")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Recent events of the board; ``--follow`` streams new ones."""

    def show(e: dict[str, Any]) -> None:
        if as_json:
            print_json(e)
            return
        at = time.strftime("%H:%M:%S", time.localtime(e["at"]))
        sev = {"critical": "red", "warning": "yellow"}.get(e["severity"], "white")
        console.print(f"{at} [{sev}]{e['severity']:<8}[/] {e['type']:<20} {e['message']}")

    for e in _call(ctx, lambda c: c.events(limit=limit)):
        show(e)
    if follow:

        async def stream(c: HttpMetalClient) -> None:
            async for e in c.stream_events():
                show(e)

        with contextlib.suppress(KeyboardInterrupt):
            _call(ctx, stream)


@metal_app.command()
def gpio(
    ctx: typer.Context,
    line: Annotated[str | None, typer.Argument(help="line name")] = None,
    set_value: Annotated[int | None, typer.Option("--set", min=0, max=1)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show GPIO lines, or drive one with ``--set 0|1``."""
    if line is not None and set_value is not None:
        data: Any = _call(ctx, lambda c: c.gpio_write(line, set_value))
    else:
        data = _call(ctx, lambda c: c.gpio())
        if line is not None:
            data = data.get(line, {})
    if as_json:
        print_json(data)
    else:
        console.print(fmt(data))


# ----------------------------------------------------------------------------- sim


@sim_app.command("status")
def sim_status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Physics state of the simulated board and its active faults."""
    data = _call(ctx, lambda c: c.sim_status())
    print_json(data) if as_json else console.print(kv_table("Simulator", data))


@sim_app.command()
def ambient(ctx: typer.Context, celsius: float) -> None:
    """Set the room temperature around the simulated board."""
    _call(ctx, lambda c: c.sim_set_ambient(celsius))
    console.print(f"ambient set to {celsius:g} °C")


@sim_app.command()
def load(ctx: typer.Context, percent: float) -> None:
    """Set the simulated CPU load (0-100 %)."""
    _call(ctx, lambda c: c.sim_set_load(percent))
    console.print(f"load set to {percent:g} %")


@sim_app.command("job-load")
def job_load(
    ctx: typer.Context,
    percent: Annotated[float, typer.Argument(min=0, max=100, help="0-100 %")],
) -> None:
    """Set the simulated board's job load (what the agent's sim_load jobs add on top of
    its load; 0 takes it off). The agent sets it itself while it runs such jobs."""
    _call(ctx, lambda c: c.sim_set_job_load(percent))
    console.print(f"job load set to {percent:g} %")


@sim_app.command()
def fault(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="e.g. fan_failure, main_power_loss, case_open")],
    params: Annotated[list[str] | None, typer.Argument(help="key=value parameters")] = None,
    duration: Annotated[
        float | None, typer.Option(help="seconds; until cleared if omitted")
    ] = None,
) -> None:
    """Inject a fault into the simulated board."""
    kv: dict[str, Any] = {}
    for item in params or []:
        key, sep, raw = item.partition("=")
        if not sep:
            err_console.print(f"[red]error:[/red] parameter {item!r} is not key=value")
            raise typer.Exit(2)
        try:
            kv[key] = float(raw)
        except ValueError:
            kv[key] = raw
    _call(ctx, lambda c: c.sim_inject_fault(kind, duration_s=duration, **kv))
    console.print(f"fault {kind} injected")


@sim_app.command()
def clear(
    ctx: typer.Context, kind: Annotated[str | None, typer.Argument(help="fault kind")] = None
) -> None:
    """Clear injected faults (all, or one kind)."""
    result = _call(ctx, lambda c: c.sim_clear_faults(kind))
    console.print(f"cleared {fmt(result.get('cleared'))} fault(s)")
