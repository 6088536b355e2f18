"""pydantic twins of the policy documents, for the central server (API schemas, the
dashboard's forms, the brain's field-by-field checks); the device never imports this.

Each twin is made from its msgspec document in ``wrale.shared.policy``: same names, fields,
defaults, bounds, descriptions, field checks and cross-field rules, so the two cannot drift.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Final, Union

import msgspec
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    create_model,
    model_validator,
)

from wrale.shared.policy import CurvePoint, PowerPolicy, SecurityPolicy, ThermalPolicy
from wrale.shared.structs import Doc, to_builtins

_META_KEYS: Final = ("gt", "ge", "lt", "le", "min_length", "max_length", "pattern")
_TWINS: dict[type[Doc], type[BaseModel]] = {}


def _constraints(metas: typing.Iterable[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for meta in metas:
        if isinstance(meta, msgspec.Meta):
            out.update({k: v for k in _META_KEYS if (v := getattr(meta, k)) is not None})
            if meta.description is not None:
                out["description"] = meta.description
    return out


def _annotation(hint: Any) -> Any:
    """``hint`` with each msgspec document replaced by its twin, each Meta by a Field."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        return Annotated[_annotation(args[0]), Field(**_constraints(args[1:]))]
    if origin in (Union, types.UnionType):
        return Union[tuple(_annotation(a) for a in args)]  # noqa: UP007 - built at run time
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return tuple[_annotation(args[0]), ...]  # type: ignore[misc]
    if isinstance(hint, type) and issubclass(hint, Doc):
        return twin(hint)
    return hint


def _with_check(annotation: Any, check: typing.Callable[[Any], object]) -> Any:
    def run(value: Any) -> Any:
        check(value)
        return value

    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (Union, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return Annotated[inner[0], AfterValidator(run)] | None
    return Annotated[annotation, AfterValidator(run)]


def _holds_doc(value: Any) -> bool:
    items = value if isinstance(value, tuple | list) else (value,)
    return any(isinstance(v, Doc) for v in items)


def twin(doc: type[Doc]) -> type[BaseModel]:
    """The pydantic model of ``doc`` (made once)."""
    found = _TWINS.get(doc)
    if found is not None:
        return found
    hints = typing.get_type_hints(doc, include_extras=True)
    fields: dict[str, Any] = {}
    for f in msgspec.structs.fields(doc):
        hint = hints[f.name]
        kw: dict[str, Any] = {}
        if typing.get_origin(hint) is Annotated:
            hint, *metas = typing.get_args(hint)
            kw = _constraints(metas)
        annotation = _annotation(hint)
        check = doc.FIELD_CHECKS.get(f.name)
        if check is not None:
            annotation = _with_check(annotation, check)
        if f.default is not msgspec.NODEFAULT:
            kw["default"] = f.default
            if _holds_doc(f.default):  # e.g. the fan curve: its points as twins
                kw["default"] = TypeAdapter(annotation).validate_python(to_builtins(f.default))
        elif f.default_factory is not msgspec.NODEFAULT:
            kw.update(default_factory=f.default_factory)
        fields[f.name] = (annotation, Field(**kw))

    def rules(self: BaseModel) -> BaseModel:
        doc.check(self)  # type: ignore[arg-type]  # the same attributes, read the same way
        return self

    validators: dict[str, Any] = {"_rules": model_validator(mode="after")(rules)}
    model = create_model(
        doc.__name__,
        __config__=ConfigDict(frozen=True, extra="forbid"),
        __doc__=doc.__doc__,
        __module__=__name__,
        __validators__=validators,
        **fields,
    )
    _TWINS[doc] = model
    return model


CurvePointModel: Final = twin(CurvePoint)
ThermalPolicyModel: Final = twin(ThermalPolicy)
PowerPolicyModel: Final = twin(PowerPolicy)
SecurityPolicyModel: Final = twin(SecurityPolicy)
