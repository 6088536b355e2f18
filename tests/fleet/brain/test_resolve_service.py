"""Resolving what a person types (name, full id, id prefix or suffix) to one object of a
tenant, and the shortest id suffix that resolves back, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device, Tenant
from wrale.fleet.brain.services import resolve as svc
from wrale.fleet.brain.services.principal import ForbiddenError, Principal, Role
from wrale.shared.errors import ConflictError, InvalidRequestError, NotFoundError

_num = itertools.count(900_000)
HEAD = "0661e36d0000"  # a shared time-ordered head, as every id of one fleet has
IDS = {
    "web-1": HEAD + "1111" + "0000000000001234",
    "web-2": HEAD + "2222" + "000000000000abcd",
    "db": HEAD + "3333" + "00000000009f1234",
}


async def tenant(db: Database, role: Role = Role.VIEWER) -> Principal:
    async with db.session() as s:
        t = Tenant(name=f"t-{next(_num)}")
        s.add(t)
        await s.flush()
        return Principal(t.id, role, "user", "u1", "someone")


async def add_device(db: Database, p: Principal, name: str, id_: str | None = None) -> str:
    async with db.session() as s:
        d = Device(tenant_id=p.tenant_id, num=next(_num), name=name)
        if id_:
            d.id = id_
        s.add(d)
        await s.flush()
        return d.id


async def find(db: Database, p: Principal, ref: str, kind: str = "device") -> str:
    async with db.session() as s:
        return (await svc.resolve(s, p, kind, ref)).id


async def fleet(db: Database) -> Principal:
    p = await tenant(db)
    for name, id_ in IDS.items():
        await add_device(db, p, name, id_)
    return p


async def test_exact_id_name_prefix_and_suffix(database: Database) -> None:
    p = await fleet(database)
    for name, id_ in IDS.items():
        assert await find(database, p, id_) == id_
        assert await find(database, p, name) == id_
    assert await find(database, p, HEAD + "2222") == IDS["web-2"]  # a prefix
    assert await find(database, p, "abcd") == IDS["web-2"]  # a suffix
    assert await find(database, p, "ABCD") == IDS["web-2"]  # hex in capitals
    assert await find(database, p, "  f1234 ") == IDS["db"]
    async with database.session() as s:
        r = await svc.resolve(s, p, "device", "abcd")
    assert (r.kind, r.id, r.name) == ("device", IDS["web-2"], "web-2")


async def test_ambiguity_lists_the_candidates(database: Database) -> None:
    p = await fleet(database)
    with pytest.raises(ConflictError) as exc:
        await find(database, p, "1234")  # the tail of web-1 and of db
    cands = exc.value.details["candidates"]
    assert sorted((c["name"], c["id"]) for c in cands) == [
        ("db", IDS["db"]),
        ("web-1", IDS["web-1"]),
    ]
    assert "db (" in exc.value.message
    assert "web-1 (" in exc.value.message
    with pytest.raises(ConflictError) as exc:
        await find(database, p, "0661")  # every id starts so
    assert len(exc.value.details["candidates"]) == 3


async def test_exact_id_and_name_win_over_partial_ids(database: Database) -> None:
    p = await fleet(database)
    named_abcd = await add_device(database, p, "abcd")  # a name that is web-2's tail
    assert await find(database, p, "abcd") == named_abcd
    # a device named after another's full id: the id wins
    await add_device(database, p, IDS["db"])
    assert await find(database, p, IDS["db"]) == IDS["db"]


async def test_not_found_deleted_and_other_tenants(database: Database) -> None:
    p = await fleet(database)
    other = await tenant(database)
    theirs = await add_device(database, other, "web-1", HEAD + "9999" + "00000000000beef0")
    for ref in (theirs, "beef0", HEAD + "9999", "nothing-here", "12345678"):
        with pytest.raises(NotFoundError) as exc:
            await find(database, p, ref)
        assert "no device matches" in exc.value.message
    assert await find(database, other, "web-1") == theirs  # their own name, their device
    async with database.session() as s:
        dev = await s.get(Device, IDS["web-2"])
        assert dev is not None
        await s.delete(dev)
    for ref in ("abcd", "web-2", IDS["web-2"]):
        with pytest.raises(NotFoundError):
            await find(database, p, ref)


@pytest.mark.parametrize(
    "ref", ["%", "_", "%%%%", "____", "0661%", "%1234", "web-%", "zzzz", "' OR 1=1 --", "0661_"]
)
async def test_wildcards_and_injections_match_nothing(database: Database, ref: str) -> None:
    p = await fleet(database)
    with pytest.raises(NotFoundError):
        await find(database, p, ref)


@pytest.mark.parametrize("ref", ["", "   ", "a" * 201, "web\x00-1", "web\n1", "\x7f"])
async def test_refs_that_name_nothing_are_refused(database: Database, ref: str) -> None:
    p = await fleet(database)
    with pytest.raises(InvalidRequestError):
        await find(database, p, ref)


async def test_unknown_kind_and_role_of_the_kind(database: Database) -> None:
    p = await fleet(database)
    with pytest.raises(InvalidRequestError):
        await find(database, p, "web-1", kind="devices; drop table")
    for kind in ("user", "token", "enrollment-token", "channel"):
        with pytest.raises(ForbiddenError):
            await find(database, p, "anything", kind=kind)
        async with database.session() as s:
            with pytest.raises(ForbiddenError):
                await svc.short_length(s, p, kind)


async def test_short_ids_resolve_back(database: Database) -> None:
    p = await fleet(database)
    async with database.session() as s:
        n = await svc.short_length(s, p, "device")
    assert n == 5  # "1234" ends web-1 and db; "01234" and "f1234" do not
    for id_ in IDS.values():
        assert await find(database, p, svc.short(id_, n)) == id_
    named = await add_device(database, p, "f1234")  # a name equal to db's short id
    async with database.session() as s:
        n = await svc.short_length(s, p, "device")
    assert n > 5
    for id_ in [*IDS.values(), named]:
        assert await find(database, p, svc.short(id_, n)) == id_


async def test_short_length_of_an_empty_kind(database: Database) -> None:
    p = await tenant(database)
    async with database.session() as s:
        assert await svc.short_length(s, p, "rollout") == svc.MIN_PARTIAL


def test_shortest_unique_suffix_pure() -> None:
    assert svc.shortest_unique_suffix([]) == 4
    assert svc.shortest_unique_suffix(["a" * 28 + "0001", "a" * 28 + "0002"]) == 4
    assert svc.shortest_unique_suffix(["a" * 27 + "10001", "a" * 27 + "20001"]) == 5
    # one id's tail is another's head: a ref of that tail would be ambiguous
    assert svc.shortest_unique_suffix(["beef" + "0" * 24 + "1234", "1234" + "f" * 28]) == 5
    same = "0" * 32
    assert svc.shortest_unique_suffix([same, same]) == 32


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text("0123456789abcdef", min_size=32, max_size=32), unique=True, max_size=30))
def test_every_short_id_names_one_object(ids: list[str]) -> None:
    """What ``resolve`` would do with a shown suffix, played out in Python: it must find
    only its own object among every id's prefixes and suffixes."""
    n = svc.shortest_unique_suffix(ids)
    for id_ in ids:
        tail = id_[-n:]
        hits = {o for o in ids if o.startswith(tail) or o.endswith(tail)}
        assert hits == {id_}
