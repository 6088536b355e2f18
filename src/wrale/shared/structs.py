"""Frozen msgspec documents for the device side (settings, policies, metald's API bodies):
validated on decode and on construction, with errors that name the field.

pydantic stays out of the device process (about 21 MiB of resident memory, measured in
docs/architecture.md); these few helpers give msgspec what the device used pydantic for.
"""

from __future__ import annotations

import math
import re
import types
import typing
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, Final, TypeVar

import msgspec
import msgspec.json

D = TypeVar("D", bound=msgspec.Struct)

_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_MISSING = re.compile(r"^Object (?:missing required|contains unknown) field `(?P<name>[^`]*)`$")
_KEY = re.compile(r"\[(\d+|\.\.\.)\]|\.([^.\[]+)")


class FieldError(ValueError):
    """A check of one field failed (raised in ``__post_init__``; the path is kept)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class Secret:
    """A string that never shows itself: ``str``/``repr`` print stars, not the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"a secret is a string, not {type(value).__name__}")
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    def __str__(self) -> str:
        return "**********" if self._value else ""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __len__(self) -> int:
        return len(self._value)


def _dec_hook(typ: type, value: Any) -> Any:
    if isinstance(value, typ):
        return value
    if typ in (Path, Secret) and isinstance(value, str):
        return typ(value)
    name = "str" if typ is Secret else getattr(typ, "__name__", str(typ))
    raise TypeError(f"Expected `{name}`, got `{type(value).__name__}`")


def _enc_hook(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Secret):
        return str(value)
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


def convert(data: Any, cls: type[D], *, strict: bool = True) -> D:
    """``data`` (builtins) as ``cls``; ``msgspec.ValidationError`` names the first problem.

    ``strict=False`` accepts numbers and booleans written as strings (environment
    variables, query strings); a bool is never a number either way.
    """
    return msgspec.convert(data, cls, strict=strict, dec_hook=_dec_hook)


def to_builtins(obj: Any) -> Any:
    """``obj`` as JSON-ready builtins, exactly as it reads back from JSON: enums as values,
    tuples as lists, paths as strings, secrets masked."""
    return msgspec.json.decode(msgspec.json.encode(obj, enc_hook=_enc_hook))


def problems(exc: msgspec.ValidationError) -> list[dict[str, str]]:
    """The failure as ``[{"field": "a.b.0", "problem": "..."}]`` (``field`` empty: the
    document itself). msgspec stops at the first problem, so there is one entry."""
    match = _AT.match(str(exc))
    message, raw_path = (match["msg"], match["path"] or "") if match else (str(exc), "")
    path = [("*" if m[1] == "..." else m[1]) if m[1] else m[2] for m in _KEY.finditer(raw_path)]
    missing = _MISSING.match(message)
    if missing:
        path.append(missing["name"])
        message = "field required" if "missing" in message else "unknown field"
    cause = exc.__cause__
    if isinstance(cause, FieldError):
        path.append(cause.field)
        message = cause.problem
    return [{"field": ".".join(path), "problem": message}]


class _Check:
    """What ``Doc.__post_init__`` checks of one field besides what its type says."""

    __slots__ = ("coerce", "extra", "ge", "gt", "is_float", "le", "lt", "name")

    def __init__(self, name: str, hint: Any, extra: Callable[[Any], object] | None) -> None:
        self.name = name
        self.extra = extra
        self.is_float = False
        # what a direct call may pass in the plain form JSON has: "sim" for an enum, a str
        # for a path or a secret, a list for a tuple (decoding converts these itself)
        self.coerce: type | None = None
        self.ge: float | None = None
        self.gt: float | None = None
        self.le: float | None = None
        self.lt: float | None = None
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        for arg in typing.get_args(hint) if union else (hint,):
            base = arg
            metas: tuple[Any, ...] = ()
            if typing.get_origin(arg) is typing.Annotated:
                base, *rest = typing.get_args(arg)
                metas = tuple(rest)
            if base is float:
                self.is_float = True
            elif isinstance(base, type) and issubclass(base, Enum | Path | Secret):
                self.coerce = base
            elif typing.get_origin(base) is tuple:
                self.coerce = tuple
            for meta in metas:
                if isinstance(meta, msgspec.Meta):
                    self.ge, self.gt = meta.ge, meta.gt
                    self.le, self.lt = meta.le, meta.lt

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        if self.ge is not None and not value >= self.ge:
            return f"must be >= {self.ge}"
        if self.gt is not None and not value > self.gt:
            return f"must be > {self.gt}"
        if self.le is not None and not value <= self.le:
            return f"must be <= {self.le}"
        if self.lt is not None and not value < self.lt:
            return f"must be < {self.lt}"
        return None


_CHECKS: Final[dict[type, tuple[_Check, ...]]] = {}


def _checks_of(cls: type[Doc]) -> tuple[_Check, ...]:
    found = _CHECKS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls, include_extras=True)
        extras = cls.FIELD_CHECKS
        found = tuple(_Check(n, hints[n], extras.get(n)) for n in cls.__struct_fields__)
        _CHECKS[cls] = found
    return found


class Doc(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Base of the device's documents: immutable, unknown keys refused, and checked when
    built directly too (bounds, finite numbers, ``FIELD_CHECKS``, then ``check``).

    Subclasses put rules across fields in ``check`` (raise ``ValueError``); a rule of one
    field that its type cannot say goes in ``FIELD_CHECKS`` (raise ``ValueError``), so the
    fleet can check that field alone.
    """

    FIELD_CHECKS: ClassVar[dict[str, Callable[[Any], object]]] = {}

    def __post_init__(self) -> None:
        for c in _checks_of(type(self)):
            value = getattr(self, c.name)
            problem = c.problem(value)
            if problem is not None:
                raise FieldError(c.name, problem)
            if c.is_float and type(value) is int:
                msgspec.structs.force_setattr(self, c.name, float(value))
            elif c.coerce is not None and value is not None and not isinstance(value, c.coerce):
                try:
                    value = c.coerce(value)
                except (TypeError, ValueError) as exc:
                    raise FieldError(c.name, str(exc)) from None
                msgspec.structs.force_setattr(self, c.name, value)
            check = c.extra
            if check is not None and value is not None:
                try:
                    check(value)
                except ValueError as exc:
                    raise FieldError(c.name, str(exc)) from None
        self.check()

    def check(self) -> None:
        """Rules across fields; raise ``ValueError`` saying which."""
