"""Names and short ids in the ``wrale`` CLI: what a person types (a name, a full id, or a
unique id prefix or suffix) becomes an id by asking the central (``/resolve``); tables show
the shortest id suffix that resolves back and locations as ``Site / Room / Rack U7``."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx

from wrale.shared.errors import WraleError
from wrale.user.cli import session
from wrale.user.cli.client import ApiError, CentralClient

ID_RE = re.compile(r"^[0-9a-f]{32}$")
FALLBACK_LEN = 12  # shown when the central cannot say (an older central, or no right to)


def ref_id(c: CentralClient, kind: str, ref: str) -> str:
    """The id of the one ``kind`` that ``ref`` names: a full id as given, otherwise the
    central's answer; no match or several matches end the command with a clear message."""
    if ID_RE.match(ref):
        return ref
    try:
        found = c.get("/resolve", kind=kind, ref=ref)
    except ApiError as exc:
        if exc.status == 409 and isinstance(exc.details.get("candidates"), list):
            raise WraleError(ambiguity(kind, ref, exc.details["candidates"])) from None
        raise
    return str(found["id"])


def ambiguity(kind: str, ref: str, candidates: list[Any]) -> str:
    """``'1234' matches several devices:`` and one line per candidate: name (short id)."""
    rows = [c for c in candidates if isinstance(c, dict) and isinstance(c.get("id"), str)]
    n = distinguishing_length([c["id"] for c in rows])
    lines = [f"  {c.get('name') or '—'} ({c['id'][-n:]})" for c in rows]
    return "\n".join(
        [
            f"{ref!r} matches several {kind.replace('-', ' ')}s:",
            *lines,
            "give more of the id, or the name",
        ]
    )


def distinguishing_length(ids: list[str], least: int = 4) -> int:
    """The fewest trailing digits that tell ``ids`` apart (at least ``least``)."""
    for n in range(least, 33):
        if len({i[-n:] for i in ids}) == len(ids):
            return n
    return 32


# ----------------------------------------------------------------------------- short ids


class ShortIds:
    """Short ids of the kinds one command shows, each length asked of the central once."""

    def __init__(self, c: CentralClient) -> None:
        self.c = c
        self.lengths: dict[str, int] = {}

    def length(self, kind: str) -> int:
        if kind not in self.lengths:
            try:
                self.lengths[kind] = int(self.c.get("/resolve/short-ids", kind=kind)["length"])
            except ApiError:
                self.lengths[kind] = FALLBACK_LEN
        return self.lengths[kind]

    def of(self, kind: str, id_: str | None) -> str | None:
        """The id's last digits that name it alone among the tenant's ``kind``s."""
        return None if id_ is None else id_[-self.length(kind) :]

    def maker(self, kind: str) -> Callable[[str | None], str | None]:
        return lambda id_: self.of(kind, id_)


def short_ids(c: CentralClient, kind: str) -> Callable[[str | None], str | None]:
    """``short(id)`` for one kind, e.g. ``short = short_ids(c, "device")``; the length is
    asked now, so ``short`` may be used once the client is closed."""
    ids = ShortIds(c)
    ids.length(kind)
    return ids.maker(kind)


# ----------------------------------------------------------------------------- locations


class Locations:
    """Names of sites, rooms, racks and zones, read once, for ``Site / Room / Rack U7``."""

    def __init__(self, c: CentralClient) -> None:
        self.c = c
        self._racks: dict[str, str] | None = None
        self._zones: dict[str, str] = {}

    def loaded(self, needed: bool = True) -> Locations:
        """Read the names now (while the client is open) when ``needed``."""
        if needed:
            self._load()
        return self

    def _load(self) -> dict[str, str]:
        if self._racks is None:
            sites = {s["id"]: s["name"] for s in self.c.iter_all("/sites")}
            rooms = {
                r["id"]: f"{sites.get(r.get('site_id'), '?')} / {r['name']}"
                for r in self.c.iter_all("/rooms")
            }
            self._racks = {
                k["id"]: f"{rooms.get(k.get('room_id'), '? / ?')} / {k['name']}"
                for k in self.c.iter_all("/racks")
            }
            self._zones = {z["id"]: z["name"] for z in self.c.iter_all("/zones")}
        return self._racks

    def rack(self, rack_id: str | None) -> str | None:
        """``Site / Room / Rack`` of a rack id (its short id when it is gone)."""
        if not rack_id:
            return None
        return self._load().get(rack_id, f"rack …{rack_id[-6:]}")

    def zone(self, zone_id: str | None) -> str | None:
        if not zone_id:
            return None
        self._load()
        return self._zones.get(zone_id, f"zone …{zone_id[-6:]}")

    def of(self, loc: dict[str, Any] | None) -> str | None:
        """A device's ``location`` (rack_id, slot_u, zone_id) as ``Site / Room / Rack U7``,
        with ``, zone Name`` when it is also in a zone."""
        loc = loc or {}
        parts = []
        if loc.get("rack_id"):
            slot = f" U{loc['slot_u']}" if loc.get("slot_u") is not None else ""
            parts.append(f"{self.rack(loc['rack_id'])}{slot}")
        if loc.get("zone_id"):
            parts.append(f"zone {self.zone(loc['zone_id'])}")
        return ", ".join(parts) or None


DEVICE_LOOKUPS = 50  # distinct devices looked up one by one; more: the whole list once


def device_names(c: CentralClient, ids: list[str | None]) -> dict[str, str]:
    """Names of the devices ``ids`` (a deleted one is left out: shown by its short id)."""
    wanted = {i for i in ids if i}
    if len(wanted) > DEVICE_LOOKUPS:
        return {d["id"]: d["name"] for d in c.iter_all("/devices") if d["id"] in wanted}
    names: dict[str, str] = {}
    for device_id in sorted(wanted):
        try:
            names[device_id] = c.get(f"/devices/{device_id}")["name"]
        except ApiError as exc:
            if exc.status != 404:
                raise
    return names


# ----------------------------------------------------------------------------- completion

COMPLETION_TIMEOUT_S = 1.5  # a shell waits for this at most, then completes nothing
COMPLETION_MAX = 50
_LISTS = {"device": "/devices", "rack": "/racks", "group": "/groups"}


def names_for(c: CentralClient, kind: str, incomplete: str) -> list[tuple[str, str]]:
    """Names of ``kind`` that start with ``incomplete``, each with its short id as help."""
    params = {"q": incomplete} if kind == "device" and incomplete else {}
    rows = c.iter_all(_LISTS[kind], params, limit=500)
    found = [(r["name"], r["id"]) for r in rows if str(r.get("name", "")).startswith(incomplete)]
    n = distinguishing_length([i for _, i in found]) if found else 4
    return [(name, f"id …{id_[-n:]}") for name, id_ in found[:COMPLETION_MAX]]


def completer(kind: str) -> Callable[[str], list[tuple[str, str]]]:
    """A shell-completion function for ``kind`` names, asking the logged-in central with a
    short timeout; it quietly completes nothing when not logged in or unreachable."""

    def complete(incomplete: str) -> list[tuple[str, str]]:
        try:
            with session.connect() as c:
                c.http.timeout = httpx.Timeout(COMPLETION_TIMEOUT_S)
                return names_for(c, kind, incomplete)
        except Exception:  # a completion must never print a traceback
            return []

    return complete
