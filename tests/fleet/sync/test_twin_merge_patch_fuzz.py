"""Fuzzing the RFC 7386 JSON merge patch (``fleet.sync.twin.merge_patch``) with a fixed
budget: for any JSON object patch against any JSON document the result is an object that
obeys the RFC (null deletes, objects merge recursively, everything else replaces), inputs
are never changed, and no input — however deep or large — raises anything but the
project's own ``InvalidRequestError``."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wrale.fleet.sync.twin import MAX_PATCH_DEPTH, MAX_PATCH_VALUES, merge_patch
from wrale.shared.errors import InvalidRequestError

BUDGET = settings(max_examples=200, deadline=None, derandomize=True, database=None)

KEYS = st.sampled_from(["a", "b", "c", "armed", ""]) | st.text(max_size=4)
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)
JSON = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=25,
)
OBJECTS = st.dictionaries(KEYS, JSON, max_size=5)


def nested(depth: int, leaf: Any = 1, *, as_list: bool = False) -> Any:
    """``depth`` levels of objects (or lists) around ``leaf``, built without recursion."""
    value = leaf
    for _ in range(depth):
        value = [value] if as_list else {"a": value}
    return value


def check_rfc(target: Any, patch: dict[str, Any], result: Any) -> None:
    """RFC 7386 section 2, checked key by key against an independent reading of it."""
    assert isinstance(result, dict)
    base = target if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            assert key not in result
        elif isinstance(value, dict):
            check_rfc(base.get(key), value, result[key])
        else:
            assert result[key] == value
            assert result[key] is not value or not isinstance(value, list)  # a copy
    for key, value in base.items():
        if key not in patch:
            assert result[key] == value


@BUDGET
@given(target=JSON, patch=OBJECTS)
def test_any_object_patch_obeys_rfc_7386(target: Any, patch: dict[str, Any]) -> None:
    before_target, before_patch = copy.deepcopy(target), copy.deepcopy(patch)
    result = merge_patch(target, patch)
    check_rfc(target, patch, result)
    assert target == before_target  # inputs unchanged
    assert patch == before_patch
    assert merge_patch(result, patch) == result  # applying it twice changes nothing
    json.dumps(result)  # still a JSON document


@BUDGET
@given(target=JSON, patch=JSON)
def test_any_value_as_patch_replaces_or_merges(target: Any, patch: Any) -> None:
    result = merge_patch(target, patch)
    if isinstance(patch, dict):
        check_rfc(target, patch, result)
    else:
        assert result == patch


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    depth=st.integers(min_value=0, max_value=5000),
    as_list=st.booleans(),
    in_target=st.booleans(),
)
def test_depth_is_bounded_and_never_exhausts_the_stack(
    depth: int, as_list: bool, in_target: bool
) -> None:
    deep = nested(depth, as_list=as_list)
    target, patch = (deep, {"a": 1}) if in_target else ({}, {"x": deep})
    if depth + (0 if in_target else 1) > MAX_PATCH_DEPTH:
        with pytest.raises(InvalidRequestError, match="nested more than"):
            merge_patch(target, patch)
    else:
        assert isinstance(merge_patch(target, patch), dict)


def test_deep_and_large_inputs_are_refused_with_the_projects_error() -> None:
    for hostile in (nested(100_000), nested(100_000, as_list=True)):
        with pytest.raises(InvalidRequestError, match="nested more than"):
            merge_patch({}, {"x": hostile})
        with pytest.raises(InvalidRequestError, match="nested more than"):
            merge_patch(hostile, {"x": 1})
    wide = {"x": list(range(MAX_PATCH_VALUES + 1))}
    with pytest.raises(InvalidRequestError, match="more than"):
        merge_patch({}, wide)
    with pytest.raises(InvalidRequestError, match="more than"):
        merge_patch(wide, {"y": 1})
    at_limit = nested(MAX_PATCH_DEPTH - 1)
    assert merge_patch({}, {"x": at_limit}) == {"x": at_limit}
