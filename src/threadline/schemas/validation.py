"""Parse a JSON body into a request model; turn pydantic's errors into OpenAI's 400s.

OpenAI names the offending parameter with a dotted/indexed path (``messages[0].content``) and uses a
stable ``code`` per kind of failure; we map pydantic's error types onto them.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from threadline.domain.errors import InvalidParameter, InvalidRequest

M = TypeVar("M", bound=BaseModel)

_TYPE_NAMES = {
    bool: "a boolean",
    int: "an integer",
    float: "a decimal",
    str: "a string",
    list: "an array",
    dict: "an object",
    type(None): "null",
}


def param_path(loc: tuple[int | str, ...], data: Any) -> str:
    """OpenAI's ``a.b[0].c`` path for a pydantic error location. Pydantic also puts union branch
    names and discriminator tags into ``loc``; walking the input keeps only real keys and indexes."""
    path = ""
    current = data
    for position, part in enumerate(loc):
        if isinstance(part, int):
            if isinstance(current, list) and 0 <= part < len(current):
                path += f"[{part}]"
                current = current[part]
            continue
        is_last = position == len(loc) - 1
        if isinstance(current, dict) and (part in current or is_last):
            path += f".{part}" if path else part
            current = current.get(part)
    return path


def _got(value: Any) -> str:
    for kind, name in _TYPE_NAMES.items():
        if type(value) is kind:
            return name
    return "a value"


def _error_for(err: ErrorDetails, data: Any) -> InvalidRequest:
    param = param_path(err["loc"], data)
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if kind == "missing":
        return InvalidParameter(
            f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
        )
    if kind == "extra_forbidden":
        return InvalidParameter(
            f"Unrecognized request argument supplied: {param}", param=param, code="unknown_parameter"
        )
    if kind == "string_too_long":
        return InvalidParameter(
            f"Invalid '{param}': string too long. Expected a string with maximum length "
            f"{ctx.get('max_length')}, but got a string with length {len(value)} instead.",
            param=param,
            code="string_above_max_length",
        )
    if kind == "string_too_short":
        return InvalidParameter(
            f"Invalid '{param}': string too short. Expected a string with minimum length "
            f"{ctx.get('min_length')}, but got a string with length {len(value)} instead.",
            param=param,
            code="string_below_min_length",
        )
    if kind == "string_pattern_mismatch":
        return InvalidParameter(
            f"Invalid '{param}': string does not match pattern. Expected a string that matches the "
            f"pattern '{ctx.get('pattern')}'.",
            param=param,
            code="invalid_value",
        )
    if kind == "too_long":
        if isinstance(value, dict):
            return InvalidParameter(
                f"Invalid '{param}': too many properties. Expected an object with at most "
                f"{ctx.get('max_length')} properties, but got an object with {len(value)} "
                "properties instead.",
                param=param,
                code="object_above_max_properties",
            )
        return InvalidParameter(
            f"Invalid '{param}': array too long. Expected an array with maximum length "
            f"{ctx.get('max_length')}, but got an array with length {ctx.get('actual_length')} instead.",
            param=param,
            code="array_above_max_length",
        )
    if kind == "too_short":
        return InvalidParameter(
            f"Invalid '{param}': empty array. Expected an array with minimum length "
            f"{ctx.get('min_length')}, but got an empty array instead.",
            param=param,
            code="empty_array",
        )
    if kind in {"less_than_equal", "less_than", "greater_than_equal", "greater_than"}:
        number = "integer" if isinstance(value, int) else "decimal"
        above = kind.startswith("less")
        bound = next(iter(ctx.values()), "?")
        relation = {
            "less_than_equal": "<=",
            "less_than": "<",
            "greater_than_equal": ">=",
            "greater_than": ">",
        }
        return InvalidParameter(
            f"Invalid '{param}': {number} {'above maximum' if above else 'below minimum'} value. "
            f"Expected a value {relation[kind]} {bound}, but got {value} instead.",
            param=param,
            code=f"{number}_{'above_max' if above else 'below_min'}_value",
        )
    if kind.endswith("_type") or kind in {"model_attributes_type", "dict_type", "list_type"}:
        expected = kind.removesuffix("_type").replace("model_attributes", "object").replace("dict", "object")
        expected = {"int": "integer", "float": "decimal", "bool": "boolean", "list": "array"}.get(
            expected, expected
        )
        return InvalidParameter(
            f"Invalid type for '{param}': expected {'an' if expected[0] in 'aeiou' else 'a'} {expected}, "
            f"but got {_got(value)} instead.",
            param=param,
            code="invalid_type",
        )
    message = err["msg"].removeprefix("Value error, ")
    return InvalidParameter(f"Invalid '{param}': {message}", param=param, code="invalid_value")


def parse_model(model: type[M], data: Any) -> M:
    """Validate ``data`` (already-decoded JSON) as ``model``; raise a 400 naming the first bad param."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        # A union (e.g. content: string | parts) reports one error per branch; the most specific one
        # (the deepest path) is the one a user can act on.
        raise _error_for(max(errors, key=lambda e: len(e["loc"])), data) from None
