"""Attribute filters of vector store search and file_search: OpenAI's ComparisonFilter and
CompoundFilter (openai-assistants-openapi.yaml, ``ComparisonFilter``/``CompoundFilter``).

    {"type": "eq"|"ne"|"gt"|"gte"|"lt"|"lte"|"in"|"nin", "key": str, "value": ...}
    {"type": "and"|"or", "filters": [<filter>, ...]}        (nested to any depth)

Semantics where the spec is silent, chosen to be predictable [inf]:

* Types never mix: a string never equals a number, ``true`` never equals ``1`` (Python's
  ``True == 1`` must not leak through). Order comparisons work on two numbers or two strings
  (lexicographic, so ISO dates compare correctly); otherwise they are false.
* ``ne`` is exactly ``not eq`` and ``nin`` exactly ``not in``, so a file without the key (or with a
  value of another type) matches ``ne``/``nin`` and no other comparison.
* ``in``/``nin`` take an array of strings and numbers, other comparisons a scalar: ``validate_filter``
  rejects the other way round, and ``true``/``false`` with ``gt``/``gte``/``lt``/``lte``, instead of
  letting them silently match nothing.
* An empty ``and`` is true and an empty ``or`` false (the identities of each operator).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeGuard

from threadline.domain.errors import InvalidParameter

AttributeValue = str | float | bool
Attributes = Mapping[str, AttributeValue]

COMPARISON_TYPES = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin")
COMPOUND_TYPES = ("and", "or")
_ORDERING = frozenset({"gt", "gte", "lt", "lte"})
_ARRAY_TYPES = frozenset({"in", "nin"})
# Deep enough for any real filter; stops a hostile one from exhausting the recursion limit.
MAX_FILTER_DEPTH = 32


def validate_filter(filter: object, *, param: str = "filters") -> None:
    """Raise ``InvalidParameter`` (``param`` names the offending field, e.g.
    ``filters.filters[1].value``) unless ``filter`` is a well-formed filter."""
    _validate(filter, param, depth=1)


def _validate(node: object, param: str, depth: int) -> None:
    if depth > MAX_FILTER_DEPTH:
        raise InvalidParameter(
            f"Invalid '{param}': filters may be nested at most {MAX_FILTER_DEPTH} levels deep.", param=param
        )
    if not isinstance(node, Mapping):
        raise _invalid_type(param, "an object", node)
    if "type" not in node:
        raise _missing(f"{param}.type")
    kind = node["type"]
    if kind in COMPOUND_TYPES:
        _check_keys(node, param, required=("type", "filters"))
        children = node["filters"]
        if not isinstance(children, list):
            raise _invalid_type(f"{param}.filters", "an array", children)
        for position, child in enumerate(children):
            _validate(child, f"{param}.filters[{position}]", depth + 1)
    elif kind in COMPARISON_TYPES:
        _check_keys(node, param, required=("type", "key", "value"))
        if not isinstance(node["key"], str):
            raise _invalid_type(f"{param}.key", "a string", node["key"])
        _validate_value(str(kind), node["value"], f"{param}.value")
    else:
        supported = ", ".join(f"'{name}'" for name in (*COMPARISON_TYPES, *COMPOUND_TYPES))
        raise InvalidParameter(
            f"Invalid value for '{param}.type': '{kind}'. Supported values are: {supported}.",
            param=f"{param}.type",
        )


def _check_keys(node: Mapping[object, object], param: str, required: tuple[str, ...]) -> None:
    for key in node:
        if key not in required:
            raise InvalidParameter(
                f"Unknown parameter: '{param}.{key}'.", param=f"{param}.{key}", code="unknown_parameter"
            )
    for key in required:
        if key not in node:
            raise _missing(f"{param}.{key}")


def _validate_value(kind: str, value: object, param: str) -> None:
    if kind in _ARRAY_TYPES:
        if not isinstance(value, list):
            raise _invalid_type(param, f"an array for '{kind}'", value)
        for position, item in enumerate(value):
            if not (isinstance(item, str) or _is_number(item)):
                raise _invalid_type(f"{param}[{position}]", "a string or a number", item)
    elif kind in _ORDERING:
        if not (isinstance(value, str) or _is_number(value)):
            raise _invalid_type(param, f"a string or a number for '{kind}'", value)
    elif not isinstance(value, str | bool) and not _is_number(value):
        raise _invalid_type(param, f"a string, a number or a boolean for '{kind}'", value)


def _invalid_type(param: str, expected: str, got: object) -> InvalidParameter:
    return InvalidParameter(
        f"Invalid type for '{param}': expected {expected}, but got {_json_type(got)} instead.",
        param=param,
        code="invalid_type",
    )


def _missing(param: str) -> InvalidParameter:
    return InvalidParameter(
        f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, Mapping) else type(value).__name__


def _is_number(value: object) -> TypeGuard[int | float]:
    # bool is an int subclass; JSON true is not a number.
    return isinstance(value, int | float) and not isinstance(value, bool)


def matches_filter(attributes: Attributes, filter: Mapping[str, object]) -> bool:
    """Whether a file's ``attributes`` satisfy ``filter``. Validate the filter once with
    ``validate_filter`` first; a malformed node met here still raises ``InvalidParameter``."""
    kind = filter.get("type")
    if kind == "and":
        return all(matches_filter(attributes, child) for child in _children(filter))
    if kind == "or":
        return any(matches_filter(attributes, child) for child in _children(filter))
    key = filter.get("key")
    if kind not in COMPARISON_TYPES or not isinstance(key, str) or "value" not in filter:
        validate_filter(filter)  # raises with a precise message
        raise InvalidParameter("Invalid 'filters'.", param="filters")  # pragma: no cover - unreachable
    return _COMPARATORS[str(kind)](attributes.get(key), filter["value"])


def _children(filter: Mapping[str, object]) -> Sequence[Mapping[str, object]]:
    children = filter.get("filters")
    if not isinstance(children, list) or not all(isinstance(child, Mapping) for child in children):
        validate_filter(filter)
        raise InvalidParameter("Invalid 'filters'.", param="filters")  # pragma: no cover - unreachable
    return children


def _equal(actual: object, expected: object) -> bool:
    if actual is None or isinstance(actual, bool) != isinstance(expected, bool):
        return False
    if isinstance(actual, str) != isinstance(expected, str):
        return False
    return actual == expected


def _sign(actual: object, expected: object) -> int | None:
    """-1, 0 or 1 as ``actual`` is below, at or above ``expected``; None unless both are numbers
    or both strings."""
    if _is_number(actual) and _is_number(expected):
        return (actual > expected) - (actual < expected)
    if isinstance(actual, str) and isinstance(expected, str):
        return (actual > expected) - (actual < expected)
    return None


def _compare(test: Callable[[int], bool]) -> Callable[[object, object], bool]:
    def compare(actual: object, expected: object) -> bool:
        sign = _sign(actual, expected)
        return sign is not None and test(sign)

    return compare


def _contained(actual: object, expected: object) -> bool:
    return isinstance(expected, list) and any(_equal(actual, item) for item in expected)


_COMPARATORS: dict[str, Callable[[object, object], bool]] = {
    "eq": _equal,
    "ne": lambda actual, expected: not _equal(actual, expected),
    "gt": _compare(lambda sign: sign > 0),
    "gte": _compare(lambda sign: sign >= 0),
    "lt": _compare(lambda sign: sign < 0),
    "lte": _compare(lambda sign: sign <= 0),
    "in": _contained,
    "nin": lambda actual, expected: not _contained(actual, expected),
}
