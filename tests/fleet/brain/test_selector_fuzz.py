"""Fuzzing the device selector parser (dynamic groups, selector-targeted commands, the
dashboard's group forms) with a fixed budget: random strings and random JSON are either a
clean selector or an ``InvalidRequestError`` naming the clause, never another exception;
a clean selector stores and serialises, and its Python match agrees with its SQL form."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from tests.conftest import run_sync
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Base, Device, Tenant
from wrale.fleet.brain.services import device_list, selectors
from wrale.shared.errors import InvalidRequestError

BUDGET = settings(max_examples=400, deadline=None, derandomize=True, database=None)
_num = itertools.count(960_000)

HOSTILE_TEXT = st.sampled_from(
    ["\x00", "a\x00", "\ud800", "\x1f", "\x7f", "", "x" * 65, "%", "_", '"', "\\", "é🔥"]
)
TEXT = st.text(max_size=8) | HOSTILE_TEXT
LEAVES = st.none() | st.booleans() | st.integers() | st.floats() | TEXT
JSON = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)
TAGS = st.sampled_from(["cam", "door", "a%b", 'q"t', "x_y", "é", "\\"]) | TEXT
CLAUSES = st.fixed_dictionaries(
    {},
    optional={
        "tags_all": st.lists(TAGS, max_size=4) | JSON,
        "tags_any": st.lists(TAGS, max_size=4) | JSON,
        "status": st.lists(st.sampled_from([*selectors.STATUSES, "gone"]), max_size=3) | JSON,
        "rack_id": st.sampled_from(["0" * 32, "abc", ""]) | JSON,
        "zone_id": JSON,
        "model": st.sampled_from(["pi5", "cm4"]) | JSON,
        "colour": JSON,
    },
)


def clean_selector_holds(clean: dict[str, Any]) -> None:
    assert set(clean) <= set(selectors.SELECTOR_KEYS)
    json.dumps(clean, ensure_ascii=False, allow_nan=False).encode("utf-8")
    for key in selectors.LIST_KEYS:
        if key in clean:
            assert len(clean[key]) <= selectors.MAX_SELECTOR_VALUES
            assert all("\x00" not in v for v in clean[key])


def parse_or_error(raw: Any) -> dict[str, Any] | InvalidRequestError:
    try:
        return selectors.parse_selector(raw)
    except InvalidRequestError as exc:
        return exc


@BUDGET
@given(raw=JSON | CLAUSES | st.dictionaries(TEXT, JSON, max_size=3))
def test_random_json_is_a_selector_or_a_clear_refusal(raw: Any) -> None:
    clean = parse_or_error(raw)
    if isinstance(clean, InvalidRequestError):
        assert clean.message.startswith("selector")
        json.dumps(clean.message, ensure_ascii=False).encode("utf-8")  # it can be sent back
        return
    clean_selector_holds(clean)
    assert selectors.parse_selector(clean) == clean  # parsing is idempotent


@BUDGET
@given(text=TEXT | st.text())
def test_random_strings_are_refused(text: str) -> None:
    for raw in (text, _json_or_text(text)):
        try:
            clean = selectors.parse_selector(raw)
        except InvalidRequestError:
            continue
        clean_selector_holds(clean)


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"tags_all": ["\ud800"]}, "selector.tags_all"),
        ({"tags_any": ["a\x00"]}, "selector.tags_any"),
        ({"tags_all": ["t"] * 51}, "selector.tags_all"),
        ({"model": "pi\x005"}, "selector.model"),
        ({"rack_id": "a\x00"}, "selector.rack_id"),
        ({"rack_id": "x" * 100}, "selector.rack_id"),
        ({"\ud800": 1}, "selector"),
        ([], "selector"),
    ],
)
def test_hostile_clauses_name_the_field(raw: Any, field: str) -> None:
    with pytest.raises(InvalidRequestError) as err:
        selectors.parse_selector(raw)
    assert err.value.details["field"] == field
    json.dumps(err.value.message, ensure_ascii=False).encode("utf-8")


VALID_CLAUSES = st.fixed_dictionaries(
    {},
    optional={
        "tags_all": st.lists(TAGS, max_size=3),
        "tags_any": st.lists(TAGS, max_size=3),
        "status": st.lists(st.sampled_from(selectors.STATUSES), max_size=3),
        "model": st.sampled_from(["pi5", "cm4"]),
    },
)
DEVICE_TAGS = [["cam"], ["cam", "door"], ["a%b"], ['q"t'], ["x_y"], ["é"], ["\\"], []]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A SQLite central database with devices whose tags need escaping in SQL."""
    path = tmp_path_factory.mktemp("selectors") / "central.db"

    async def build() -> str:
        db = Database(f"sqlite+aiosqlite:///{path}")
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        async with db.session() as s:
            t = Tenant(name=f"t-{next(_num)}")
            s.add(t)
            await s.flush()
            for i, tags in enumerate(DEVICE_TAGS):
                status = ("online", "offline")[i % 2]
                s.add(
                    Device(tenant_id=t.id, num=next(_num), name=f"d{i}", tags=tags, status=status)
                )
        await db.dispose()
        return t.id

    return path, run_sync(build())


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(raw=VALID_CLAUSES)
def test_python_match_and_sql_clause_agree(fleet: Any, raw: dict[str, Any]) -> None:
    clean = parse_or_error(raw)
    if isinstance(clean, InvalidRequestError):
        return
    path, tenant_id = fleet

    async def both() -> tuple[set[str], set[str]]:
        db = Database(f"sqlite+aiosqlite:///{path}")
        try:
            async with db.session() as s:
                devices = (
                    await s.scalars(select(Device).where(Device.tenant_id == tenant_id))
                ).all()
                in_python = {d.id for d in devices if selectors.matches(clean, d, None)}
                rows = await s.scalars(
                    select(Device.id).where(
                        Device.tenant_id == tenant_id, device_list.selector_clause(s, clean)
                    )
                )
                return in_python, set(rows)
        finally:
            await db.dispose()

    in_python, in_sql = run_sync(both())
    assert in_python == in_sql, clean
