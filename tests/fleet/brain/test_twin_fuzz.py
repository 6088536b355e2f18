"""Fuzzing the twin's write path with a fixed budget: any merge patch a client can send is
either applied (an object that validates, stores on both databases and serialises back as
JSON) or refused with ``InvalidRequestError`` — never another exception. Text a database
cannot store or JSON cannot carry (NUL, lone surrogates) is refused before it is stored."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device, Tenant
from wrale.fleet.brain.services import twin
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.shared.errors import InvalidRequestError

_num = itertools.count(950_000)
HOSTILE_TEXT = st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfff", "", "\x7f", "é", "🔥"])
TEXT = st.text(max_size=6) | HOSTILE_TEXT
KEYS = (
    st.sampled_from(
        ["override_pct", "duration_s", "armed", "level", "profile", "cpu_warning_c", "17"]
    )
    | TEXT
)
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | TEXT
    | st.sampled_from(["low", "high", "cool", 50, 0.5, 1])
)
JSON = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=20,
)
SECTION_NAMES = st.sampled_from(twin.SECTIONS) | TEXT
PATCHES = st.dictionaries(SECTION_NAMES, JSON, max_size=4) | JSON


def storable(doc: Any) -> None:
    """What a database stores and the API sends back: strict JSON in UTF-8, no NUL."""
    text = json.dumps(doc, allow_nan=False)
    assert "\\u0000" not in text
    text.encode("utf-8")
    json.dumps(doc, ensure_ascii=False, allow_nan=False).encode("utf-8")


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(
    overrides=st.just({}) | st.fixed_dictionaries({"fan": st.just({"override_pct": 40})}),
    patch=PATCHES,
)
def test_apply_patch_is_total(overrides: dict[str, Any], patch: Any) -> None:
    try:
        result, touched = twin.apply_patch(overrides, patch)
    except InvalidRequestError as exc:
        json.dumps(exc.message).encode("utf-8")  # the refusal itself can be sent back
        return
    assert isinstance(result, dict)
    assert touched <= set(twin.SECTIONS)
    storable(result)


@pytest.mark.parametrize(
    ("patch", "where"),
    [
        ({"config": {"k": "a\x00b"}}, "desired.config.k: text must not contain NUL"),
        ({"config": {"k\x00": 1}}, "desired.config: keys: text must not contain NUL"),
        ({"config": {"k": "\ud800"}}, "desired.config.k: text must be valid Unicode"),
        ({"config": {"\udfff": 1}}, "desired.config: keys: text must be valid Unicode"),
        ({"config": {"k": ["ok", {"v": "\ud800"}]}}, "desired.config.k.1.v: text must be"),
        ({"\ud800": {}}, "desired.'\\ud800': unknown section"),
    ],
)
async def test_text_no_database_or_json_can_carry_is_refused(
    database: Database, patch: dict[str, Any], where: str
) -> None:
    async with database.session() as s:
        t = Tenant(name=f"t-{next(_num)}")
        s.add(t)
        await s.flush()
        d = Device(tenant_id=t.id, num=next(_num), name="d", tags=[], status="online")
        s.add(d)
        await s.flush()
        admin = Principal(t.id, Role.ADMIN, "user", "u1", "alice")
        tenant_id, device_id = t.id, d.id
        with pytest.raises(InvalidRequestError) as err:
            await twin.patch_twin(s, admin, device_id, 1, patch)
        assert err.value.message.startswith(where), err.value.message
    async with database.session() as s:  # nothing stored, and the twin still reads back
        got = await twin.get_twin(s, tenant_id, device_id)
        assert got.overrides == {}
        storable(twin.twin_view(got)["desired"]["doc"])
