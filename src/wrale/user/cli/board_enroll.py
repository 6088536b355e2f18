"""``wrale enroll`` on the board, without the CLI framework: the same flags as the Typer
command (``enroll.py``) plus ``--token-file`` for first-boot enrollment from a TOML file
(``/boot/firmware/wrale-enroll.toml``, handed over by systemd as a credential).

Exit codes say what the first-boot unit should do with the token file: 0 enrolled, 3 the
central server refused it (remove it: it can never work), 1 unreachable (keep it, retry),
2 a usage or configuration error (keep it for the operator to fix).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wrale.shared.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    InvalidRequestError,
    WraleError,
)

DEFAULT_STATE_DIR = Path("./wrale-data/device")
EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3
# Keys a token file may hold, and the type each must have.
FILE_KEYS: dict[str, type | tuple[type, ...]] = {
    "central": str,
    "token": str,
    "name": str,
    "model": str,
    "capabilities": list,
    "ca_file": str,
    "insecure": bool,
    "force": bool,
}


@dataclass(frozen=True)
class EnrollRequest:
    central: str
    token: str
    state_dir: Path
    name: str | None = None
    model: str | None = None
    capabilities: tuple[str, ...] = ()
    ca_file: Path | None = None
    insecure: bool = False
    force: bool = False


def _bool_flag(p: argparse.ArgumentParser, name: str, help_: str) -> None:
    """``--x`` / ``--no-x``, as Typer spells a boolean option."""
    dest = name.replace("-", "_")
    p.add_argument(f"--{name}", dest=dest, action="store_true", default=None, help=help_)
    p.add_argument(f"--no-{name}", dest=dest, action="store_false", help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="wrale enroll",
        description="Enroll this board with a central server and store its credential "
        "(<state-dir>/credentials.json, mode 0600).",
    )
    p.add_argument("--central", help="central server URL, e.g. https://fleet.example")
    p.add_argument("--token", help="enrollment token (wet_…); env WRALE_TOKEN")
    p.add_argument("--name", help="device name (default: given by the server)")
    p.add_argument(
        "--state-dir", type=Path, help=f"where the credential goes ({DEFAULT_STATE_DIR})"
    )
    p.add_argument("--model", help="hardware model")
    p.add_argument("--capability", action="append", help="a capability, e.g. sim (repeatable)")
    p.add_argument("--ca-file", type=Path, help="CA bundle of a private fleet")
    _bool_flag(p, "insecure", "allow plain http:// to another machine (logs a warning)")
    _bool_flag(p, "force", "replace an existing credential")
    p.add_argument(
        "--token-file",
        type=Path,
        help="TOML with central = URL, token = T (and optionally name, model, capabilities, "
        "ca_file, insecure, force); flags given as well take precedence",
    )
    return p


def read_token_file(path: Path) -> dict[str, Any]:
    """The settings of a first-boot token file, each checked for its type."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read token file {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"token file {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(FILE_KEYS))
    if unknown:
        raise ConfigError(f"token file {path}: unknown key(s) {', '.join(unknown)}")
    for key, value in data.items():
        wrong_item = isinstance(value, list) and not all(isinstance(c, str) for c in value)
        if not isinstance(value, FILE_KEYS[key]) or wrong_item:
            raise ConfigError(f"token file {path}: '{key}' has the wrong type")
    return data


def request_from_args(args: argparse.Namespace, environ: dict[str, str]) -> EnrollRequest:
    """Flags over the token file over the environment (``WRALE_TOKEN``)."""
    file: dict[str, Any] = read_token_file(args.token_file) if args.token_file else {}
    central = args.central or file.get("central")
    token = args.token or file.get("token") or environ.get("WRALE_TOKEN")
    if not central or not token:
        raise ConfigError("--central and --token are needed (or a --token-file with both)")
    ca_file = args.ca_file or (Path(file["ca_file"]) if "ca_file" in file else None)
    capabilities = args.capability or file.get("capabilities") or []
    return EnrollRequest(
        central=central,
        token=token,
        state_dir=args.state_dir or DEFAULT_STATE_DIR,
        name=args.name or file.get("name"),
        model=args.model or file.get("model"),
        capabilities=tuple(capabilities),
        ca_file=ca_file,
        insecure=bool(file.get("insecure", False) if args.insecure is None else args.insecure),
        force=bool(file.get("force", False) if args.force is None else args.force),
    )


def run_enroll(req: EnrollRequest) -> int:
    """Enroll and write the credential; messages to stdout / stderr; returns the exit code."""
    from wrale.fleet.edge.credentials import enroll as enroll_device
    from wrale.fleet.edge.settings import CREDENTIALS_FILE

    path = req.state_dir / CREDENTIALS_FILE
    if path.exists() and not req.force:
        print(
            f"wrale enroll: {path} already exists (this board is enrolled); --force replaces it",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        creds = asyncio.run(
            enroll_device(
                req.central,
                req.token,
                name=req.name,
                model=req.model,
                capabilities=list(req.capabilities) or None,
                insecure=req.insecure,
                ca_file=req.ca_file,
            )
        )
        creds.save(path)
    except ConfigError as exc:
        print(f"wrale enroll: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except (AuthError, InvalidRequestError, ConflictError) as exc:
        print(f"wrale enroll: {exc.message}", file=sys.stderr)
        return EXIT_REFUSED
    except WraleError as exc:
        print(f"wrale enroll: {exc.message}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except OSError as exc:
        print(f"wrale enroll: cannot write {path}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"enrolled as {creds.name or creds.device_id} (device {creds.device_id})")
    print(f"credential written to {path} (mode 0600)")
    print(f"next: wrale device run --state-dir {req.state_dir}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    import os

    args = build_parser().parse_args(argv)
    try:
        req = request_from_args(args, dict(os.environ))
    except ConfigError as exc:
        print(f"wrale enroll: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    return run_enroll(req)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
