"""Twin documents: merge, flatten, diff by dotted path."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from wrale.fleet.sync.twin import REMOVED, diff, flatten, get_path, merge, same, set_path, unmet

keys = st.sampled_from(["a", "b", "c", "thermal", "fan"])
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(-5, 5, allow_nan=False),
    st.text(max_size=3),
    st.lists(st.integers(0, 3), max_size=3),
)
docs = st.recursive(
    st.dictionaries(keys, leaves, max_size=4),
    lambda children: st.dictionaries(keys, st.one_of(leaves, children), max_size=4),
    max_leaves=12,
)


def apply(doc: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    for path, value in sorted(changes.items(), key=lambda kv: kv[1] is not REMOVED):
        doc = set_path(doc, path, value)
    return doc


@given(docs, docs)
def test_applying_the_diff_gives_the_new_document(old: dict[str, Any], new: dict[str, Any]) -> None:
    changes = diff(old, new)
    assert same(flatten(apply(old, changes)), flatten(new))


@given(docs)
def test_a_document_has_no_diff_with_itself(doc: dict[str, Any]) -> None:
    assert diff(doc, doc) == {}
    assert unmet(doc, doc) == {}


@given(docs, docs)
def test_after_merging_nothing_desired_is_unmet(base: dict[str, Any], over: dict[str, Any]) -> None:
    assert unmet(merge(base, over), over) == {}


def test_merge_is_deep_and_leaves_inputs_alone() -> None:
    base = {"thermal": {"a": 1, "b": 2}, "fan": {"override_pct": 40}}
    over = {"thermal": {"b": 3}, "fan": {"override_pct": None}}
    assert merge(base, over) == {"thermal": {"a": 1, "b": 3}, "fan": {"override_pct": None}}
    assert base["thermal"] == {"a": 1, "b": 2}


def test_diff_names_dotted_paths_and_removals() -> None:
    old = {"thermal": {"cpu_warning_c": 70, "curve": [1, 2]}, "gone": 1}
    new = {"thermal": {"cpu_warning_c": 72, "curve": [1, 2]}, "config": {}}
    assert diff(old, new) == {"thermal.cpu_warning_c": 72, "gone": REMOVED}
    assert flatten({"config": {}}) == {}


def test_json_equality_tells_booleans_from_numbers() -> None:
    assert same(1, 1.0)
    assert not same(True, 1)
    assert not same({"v": 0}, {"v": False})
    assert same([{"a": 1}], ({"a": 1.0},))
    assert not same([1], {"0": 1})


def test_unmet_ignores_what_only_current_has() -> None:
    current = {"thermal": {"a": 1, "b": 2}}
    assert unmet(current, {"thermal": {"a": 1}}) == {}
    assert unmet(current, {"thermal": {"a": 5}}) == {"thermal.a": 5}


def test_paths_read_and_write() -> None:
    doc = {"a": {"b": {"c": 1}}}
    assert get_path(doc, "a.b.c") == 1
    assert get_path(doc, "a.x", "none") == "none"
    assert set_path(doc, "a.b.d", 2) == {"a": {"b": {"c": 1, "d": 2}}}
    assert set_path(doc, "a.b.c", REMOVED) == {"a": {"b": {}}}
    assert set_path({}, "x.y", 3) == {"x": {"y": 3}}
