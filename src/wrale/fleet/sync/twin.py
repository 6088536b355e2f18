"""Twin documents: RFC 7386 merge patch, deep merge, flattening to dotted paths, and diffs
between two documents.

Pure: no I/O. Documents are JSON objects; a nested object is walked key by key, anything
else (numbers, strings, lists, null) is a leaf compared as a whole. ``True`` is never equal
to ``1`` here, unlike in Python, because JSON tells them apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from wrale.shared.errors import InvalidRequestError

Json = dict[str, Any]
MAX_PATCH_DEPTH: Final = 32
"""Nesting a merge patch (or the document it applies to) may have: deeper is refused."""
MAX_PATCH_VALUES: Final = 100_000
"""JSON values (objects, lists and leaves) a merge patch or its document may hold."""


class _Removed:
    def __repr__(self) -> str:
        return "REMOVED"


REMOVED: Final = _Removed()
"""Value of a path in ``diff`` that the new document no longer has."""


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> Json:
    """``over`` on top of ``base``: objects merge key by key, anything else (``null``
    included) replaces. Neither input is changed."""
    out: Json = dict(base)
    for key, value in over.items():
        old = out.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            out[key] = merge(old, value)
        else:
            out[key] = value
    return out


def check_bounds(value: Any, what: str) -> None:
    """``InvalidRequestError`` when ``value`` nests deeper than ``MAX_PATCH_DEPTH`` or holds
    more than ``MAX_PATCH_VALUES`` values. Iterative, so no input can exhaust the stack."""
    todo: list[tuple[Any, int]] = [(value, 0)]
    count = 0
    while todo:
        node, depth = todo.pop()
        count += 1
        if count > MAX_PATCH_VALUES:
            raise InvalidRequestError(
                f"{what}: more than {MAX_PATCH_VALUES} values", limit=MAX_PATCH_VALUES
            )
        if depth > MAX_PATCH_DEPTH:
            raise InvalidRequestError(
                f"{what}: nested more than {MAX_PATCH_DEPTH} levels", limit=MAX_PATCH_DEPTH
            )
        if isinstance(node, Mapping):
            todo.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list | tuple):
            todo.extend((v, depth + 1) for v in node)


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value


def _merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, Mapping):
        return _copy(patch)
    out: Json = _copy(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge_patch(out.get(key), value)
    return out


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge key by key, ``null`` deletes a key,
    anything else (lists included) replaces. Returns a new value; inputs are not changed.
    ``InvalidRequestError`` when either input is beyond the bounds of ``check_bounds``."""
    check_bounds(patch, "patch")
    check_bounds(target, "document")
    return _merge_patch(target, patch)


def flatten(doc: Mapping[str, Any], prefix: str = "") -> Json:
    """Leaves of ``doc`` by dotted path. An empty object has none: for a twin, ``{}``
    and no object at all say the same thing."""
    out: Json = {}
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def same(a: Any, b: Any) -> bool:
    """JSON equality: ``1 == 1.0`` but ``True != 1``; lists and objects compared deeply."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping | list | tuple) or isinstance(b, Mapping | list | tuple):
        return False
    return bool(a == b)


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> Json:
    """Paths whose value differs: the new value, or ``REMOVED`` when ``new`` lacks it."""
    a, b = flatten(old), flatten(new)
    out: Json = {p: v for p, v in b.items() if p not in a or not same(a[p], v)}
    out.update({p: REMOVED for p in a if p not in b})
    return out


def unmet(current: Mapping[str, Any], desired: Mapping[str, Any]) -> Json:
    """Paths of ``desired`` that ``current`` does not have at that value (paths that only
    ``current`` has are not asked for, so they are not unmet)."""
    have = flatten(current)
    return {p: v for p, v in flatten(desired).items() if p not in have or not same(have[p], v)}


def get_path(doc: Mapping[str, Any], path: str, default: Any = None) -> Any:
    """The value at a dotted path, or ``default``."""
    node: Any = doc
    for key in path.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return default
        node = node[key]
    return node


def set_path(doc: Mapping[str, Any], path: str, value: Any) -> Json:
    """A copy of ``doc`` with ``value`` at a dotted path (``REMOVED`` deletes it); objects
    on the way are created as needed."""
    head, _, rest = path.partition(".")
    out: Json = dict(doc)
    if not rest:
        if value is REMOVED:
            out.pop(head, None)
        else:
            out[head] = value
        return out
    child = out.get(head)
    out[head] = set_path(child if isinstance(child, Mapping) else {}, rest, value)
    return out
