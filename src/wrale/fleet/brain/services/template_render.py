"""The config template language, pure: a schema of typed variables (checked, with
defaults, bounds and choices), the placeholders a body holds, and rendering a body with
given values. Errors are ``InvalidRequestError`` naming the variable.

A ``${name}`` that is a whole string takes the variable's typed value; inside a longer
string it is replaced by its text. ``$${`` writes a literal ``${``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from wrale.fleet.brain.services import twin_doc
from wrale.shared.errors import InvalidRequestError

VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
PLACEHOLDER = re.compile(r"\$(\$)?\{([^}]*)\}")
TYPES = ("str", "int", "float", "bool")
SPEC_KEYS = ("type", "min", "max", "choices", "default", "required", "description")
MAX_VARIABLES = 100
MAX_STR = 1000
_UNSET = object()


def _bad(name: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"variables.{name}: {message}", variable=name)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def coerce(name: str, spec: Mapping[str, Any], value: Any) -> Any:
    """``value`` as variable ``name`` of ``spec`` wants it, or an error naming it."""
    kind = spec["type"]
    if kind == "bool":
        if not isinstance(value, bool):
            raise _bad(name, "must be true or false")
        out: Any = value
    elif kind == "str":
        if not isinstance(value, str):
            raise _bad(name, "must be a string")
        if len(value) > MAX_STR:
            raise _bad(name, f"at most {MAX_STR} characters")
        out = value
    elif kind == "int":
        if not _number(value) or (isinstance(value, float) and not value.is_integer()):
            raise _bad(name, "must be an integer")
        out = int(value)
    else:
        if not _number(value) or not math.isfinite(value):
            raise _bad(name, "must be a finite number")
        out = float(value)
    size = len(out) if kind == "str" else out
    if kind != "bool":
        if spec.get("min") is not None and size < spec["min"]:
            unit = " characters" if kind == "str" else ""
            raise _bad(name, f"must be at least {spec['min']:g}{unit}")
        if spec.get("max") is not None and size > spec["max"]:
            unit = " characters" if kind == "str" else ""
            raise _bad(name, f"must be at most {spec['max']:g}{unit}")
    if spec.get("choices") is not None and out not in spec["choices"]:
        raise _bad(name, f"must be one of {', '.join(json.dumps(c) for c in spec['choices'])}")
    return out


def check_schema(variables: Any) -> dict[str, dict[str, Any]]:
    """A normalised variables schema; errors name the variable."""
    if not isinstance(variables, dict):
        raise InvalidRequestError("variables: an object of name → {type, …}")
    if len(variables) > MAX_VARIABLES:
        raise InvalidRequestError(f"variables: at most {MAX_VARIABLES}")
    out: dict[str, dict[str, Any]] = {}
    for name, spec in variables.items():
        if not VAR_NAME.match(name):
            raise _bad(name, "names are a letter or _ then letters, digits or _ (max 64)")
        if not isinstance(spec, dict):
            raise _bad(name, "must be an object {type, min, max, choices, default, required}")
        unknown = sorted(set(spec) - set(SPEC_KEYS))
        if unknown:
            raise _bad(name, f"unknown key(s) {', '.join(unknown)}; known: {', '.join(SPEC_KEYS)}")
        kind = spec.get("type")
        if kind not in TYPES:
            raise _bad(name, f"type must be one of {', '.join(TYPES)}")
        clean: dict[str, Any] = {"type": kind}
        for bound in ("min", "max"):
            value = spec.get(bound)
            if value is None:
                continue
            if kind == "bool" or not _number(value) or not math.isfinite(value):
                raise _bad(name, f"{bound} must be a number (and only for str, int, float)")
            clean[bound] = value
        if "min" in clean and "max" in clean and clean["min"] > clean["max"]:
            raise _bad(name, "min must not exceed max")
        choices = spec.get("choices")
        if choices is not None:
            if not isinstance(choices, list) or not 0 < len(choices) <= 100:
                raise _bad(name, "choices must be a list of 1-100 values")
            bare = {"type": kind}
            clean["choices"] = [coerce(name, bare, c) for c in choices]
        required = spec.get("required")
        if required is not None and not isinstance(required, bool):
            raise _bad(name, "required must be true or false")
        if spec.get("default") is not None:
            clean["default"] = coerce(name, clean, spec["default"])
        clean["required"] = required if required is not None else "default" not in clean
        description = spec.get("description")
        if description is not None:
            if not isinstance(description, str) or len(description) > 255:
                raise _bad(name, "description must be a string of at most 255 characters")
            clean["description"] = description
        out[name] = clean
    return out


def placeholders(body: Any, path: str = "body") -> dict[str, str]:
    """Every variable a body refers to, with the first path that does."""
    found: dict[str, str] = {}
    if isinstance(body, str):
        for m in PLACEHOLDER.finditer(body):
            if m.group(1):
                continue
            name = m.group(2)
            if not VAR_NAME.match(name):
                raise InvalidRequestError(
                    f"{path}: ${{{name}}} is not a variable name (use $${{ for a literal ${{)",
                    path=path,
                )
            found.setdefault(name, path)
    elif isinstance(body, dict):
        for k, v in body.items():
            for name, where in placeholders(v, f"{path}.{k}").items():
                found.setdefault(name, where)
    elif isinstance(body, list):
        for i, v in enumerate(body):
            for name, where in placeholders(v, f"{path}.{i}").items():
                found.setdefault(name, where)
    return found


def check_template(body: Any, variables: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """A body and schema that can be stored: an object with config-key names at the top,
    JSON we can keep, and every placeholder declared."""
    if not isinstance(body, dict) or not body:
        raise InvalidRequestError("body: a non-empty object (its keys become config keys)")
    twin_doc.check_json(body, "body")
    for key in body:
        if not twin_doc.CONFIG_KEY.match(key):
            raise InvalidRequestError(
                f"body.{key}: top-level keys are 1-64 letters, digits, _ . : -"
            )
    schema = check_schema(variables)
    for name, where in placeholders(body).items():
        if name not in schema:
            raise InvalidRequestError(
                f"{where}: ${{{name}}} is not declared in variables", variable=name
            )
    return body, schema


def resolve_values(schema: Mapping[str, Mapping[str, Any]], given: Any) -> dict[str, Any]:
    """Each variable's value: given (checked), else its default; required ones must have
    one. Unset optional variables are absent."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise InvalidRequestError("variables: an object of name → value")
    unknown = sorted(set(given) - set(schema))
    if unknown:
        raise _bad(unknown[0], f"not a variable of this version (variables: {', '.join(schema)})")
    values: dict[str, Any] = {}
    for name, spec in schema.items():
        if name in given and given[name] is not None:
            values[name] = coerce(name, spec, given[name])
        elif "default" in spec:
            values[name] = spec["default"]
        elif spec.get("required", True):
            raise _bad(name, "required (it has no default)")
    return values


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _substitute(value: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            r = _substitute(v, values)
            if r is not _UNSET:
                out[k] = r
        return out
    if isinstance(value, list):
        return [None if (r := _substitute(v, values)) is _UNSET else r for v in value]
    if not isinstance(value, str):
        return value
    whole = PLACEHOLDER.fullmatch(value)
    if whole and not whole.group(1):
        return values.get(whole.group(2), _UNSET)

    def sub(m: re.Match[str]) -> str:
        if m.group(1):
            return "${" + m.group(2) + "}"
        return _text(values[m.group(2)]) if m.group(2) in values else ""

    return PLACEHOLDER.sub(sub, value)


def render(body: Mapping[str, Any], schema: Mapping[str, Any], given: Any) -> dict[str, Any]:
    """The body with every placeholder replaced (pure); errors name the variable."""
    values = resolve_values(check_schema(dict(schema)), given)
    rendered = _substitute(dict(body), values)
    assert isinstance(rendered, dict)
    return rendered
