"""``wrale enroll-bulk``: enroll hundreds of boards at once with a progress bar, in batches
through ``/enroll/bulk`` (logged in) or one by one through ``/enroll`` (token only), and
write each board's own credential to a file readable by its owner only (0600)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from wrale.shared.errors import WraleError
from wrale.user.cli.client import CentralClient
from wrale.user.cli.fleet_common import JsonOpt, client, say
from wrale.user.cli.output import console, print_json


def device_names(prefix: str, start: int, count: int) -> list[str]:
    """``rack1-01 … rack1-48``: numbers padded to the widest one (at least two digits)."""
    width = max(2, len(str(start + count - 1)))
    return [f"{prefix}{n:0{width}d}" for n in range(start, start + count)]


def write_credentials(path: Path, document: dict[str, Any]) -> None:
    """Write (or replace) the credentials file with mode 0600, atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(document, f, indent=2)
    tmp.chmod(0o600)
    tmp.replace(path)


def _record(e: dict[str, Any]) -> dict[str, Any]:
    return {
        "device_id": e["device_id"],
        "name": (e.get("device") or {}).get("name"),
        "device_secret": e["device_secret"],
        "target_group_id": e.get("target_group_id"),
    }


def _enroll_batch(
    c: CentralClient, token: str, specs: list[dict[str, Any]], bulk: bool
) -> list[dict[str, Any]]:
    if bulk:
        answer = c.post("/enroll/bulk", {"token": token, "devices": specs})
        return [_record(e) for e in answer["items"]]
    return [
        _record(c.request("POST", "/enroll", json={"token": token, **s}, auth=False)) for s in specs
    ]


def enroll_bulk(
    token: Annotated[str, typer.Option(help="enrollment token (needs as many uses as boards)")],
    count: Annotated[int, typer.Option(min=1, max=100_000, help="how many boards")],
    prefix: Annotated[str, typer.Option(help="name prefix, e.g. rack1-")] = "device-",
    start: Annotated[int, typer.Option(min=0, help="first number")] = 1,
    out: Annotated[Path, typer.Option(help="credentials file (written 0600)")] = Path(
        "wrale-credentials.json"
    ),
    batch: Annotated[int, typer.Option(min=1, max=1000, help="boards per request")] = 100,
    model: Annotated[str | None, typer.Option(help="hardware model of the boards")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="tags of the boards (repeatable)")] = None,
    per_device: Annotated[
        bool, typer.Option("--per-device", help="one /enroll call per board, no login needed")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="replace an existing --out file")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Enroll COUNT boards with one token and save each board's own secret to --out.

    Logged in as an operator, boards go in batches through /enroll/bulk (each batch all or
    nothing); with only the token (or --per-device), one by one through /enroll.
    """
    if out.exists() and not force:
        raise WraleError(f"{out} exists: choose another --out or give --force")
    names = device_names(prefix, start, count)
    extra: dict[str, Any] = {k: v for k, v in (("model", model), ("tags", tag)) if v}
    done: list[dict[str, Any]] = []
    with client() as c:
        bulk = c.token is not None and not per_device
        document: dict[str, Any] = {
            "central_url": c.base_url,
            "created_at": time.time(),
            "devices": done,
        }
        progress = Progress(
            TextColumn("[bold]enrolling"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("boards"),
            TimeElapsedColumn(),
            console=console,
            transient=as_json,
        )
        try:
            with progress:
                task = progress.add_task("enroll", total=count)
                for i in range(0, count, batch):
                    specs = [{"name": n, **extra} for n in names[i : i + batch]]
                    done.extend(_enroll_batch(c, token, specs, bulk))
                    write_credentials(out, document)
                    progress.update(task, completed=len(done))
        except WraleError as exc:
            if done:
                write_credentials(out, document)
                raise WraleError(
                    f"{exc.message} — enrolled {len(done)} of {count}; their credentials "
                    f"are in {out}"
                ) from None
            raise
    if as_json:
        print_json({"enrolled": len(done), "out": str(out), "devices": [
            {"device_id": d["device_id"], "name": d["name"]} for d in done
        ]})  # fmt: skip
        return
    say(
        f"enrolled {len(done)} boards ({names[0]} … {names[-1]}); credentials in {out} "
        "(mode 0600: each board needs only its own entry)"
    )
