from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from threadline.domain.errors import InvalidParameter
from threadline.retrieval.filters import MAX_FILTER_DEPTH, matches_filter, validate_filter

ATTRIBUTES: dict[str, str | float | bool] = {
    "author": "alice",
    "year": 2024,
    "score": 4.5,
    "draft": False,
    "date": "2024-06-01",
}


def cmp(kind: str, key: str, value: object) -> dict[str, object]:
    return {"type": kind, "key": key, "value": value}


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        (cmp("eq", "author", "alice"), True),
        (cmp("eq", "author", "bob"), False),
        (cmp("ne", "author", "bob"), True),
        (cmp("eq", "year", 2024.0), True),  # int and float are one JSON number
        (cmp("eq", "year", "2024"), False),  # types never mix
        (cmp("ne", "year", "2024"), True),
        (cmp("eq", "draft", False), True),
        (cmp("eq", "draft", 0), False),  # false is not 0
        (cmp("gt", "year", 2023), True),
        (cmp("gt", "year", 2024), False),
        (cmp("gte", "year", 2024), True),
        (cmp("lt", "score", 5), True),
        (cmp("lte", "score", 4.5), True),
        (cmp("lt", "score", 4.5), False),
        (cmp("gte", "date", "2024-01-01"), True),  # strings compare lexicographically (ISO dates)
        (cmp("lt", "date", "2024-01-01"), False),
        (cmp("gt", "author", 1), False),  # string attribute, number value
        (cmp("gt", "draft", 0), False),  # booleans are not ordered
        (cmp("in", "author", ["bob", "alice"]), True),
        (cmp("in", "author", []), False),
        (cmp("in", "year", ["2024", 2024]), True),
        (cmp("in", "year", ["2024"]), False),
        (cmp("nin", "author", ["bob"]), True),
        (cmp("nin", "author", ["alice"]), False),
        (cmp("in", "draft", [0]), False),
        # A missing key matches only the negative comparisons.
        (cmp("eq", "missing", "x"), False),
        (cmp("gt", "missing", 1), False),
        (cmp("in", "missing", ["x"]), False),
        (cmp("ne", "missing", "x"), True),
        (cmp("nin", "missing", ["x"]), True),
        ({"type": "and", "filters": [cmp("eq", "author", "alice"), cmp("gte", "year", 2024)]}, True),
        ({"type": "and", "filters": [cmp("eq", "author", "alice"), cmp("gt", "year", 2024)]}, False),
        ({"type": "or", "filters": [cmp("eq", "author", "bob"), cmp("eq", "draft", False)]}, True),
        ({"type": "or", "filters": [cmp("eq", "author", "bob"), cmp("eq", "draft", True)]}, False),
        ({"type": "and", "filters": []}, True),
        ({"type": "or", "filters": []}, False),
        (
            {
                "type": "or",
                "filters": [
                    {"type": "and", "filters": [cmp("eq", "author", "bob"), cmp("eq", "year", 2024)]},
                    {"type": "and", "filters": [cmp("eq", "author", "alice"), cmp("lt", "score", 5)]},
                ],
            },
            True,
        ),
    ],
)
def test_semantics(filter: dict[str, object], expected: bool) -> None:
    validate_filter(filter)
    assert matches_filter(ATTRIBUTES, filter) is expected


scalars = st.one_of(st.text(max_size=3), st.integers(-3, 3), st.floats(-3, 3), st.booleans())


@given(
    key=st.sampled_from(["author", "year", "score", "draft", "missing"]),
    value=scalars,
    items=st.lists(st.one_of(st.text(max_size=3), st.integers(-3, 3)), max_size=3),
)
def test_negations_are_exact_complements(key: str, value: object, items: list[object]) -> None:
    assert matches_filter(ATTRIBUTES, cmp("ne", key, value)) is not matches_filter(
        ATTRIBUTES, cmp("eq", key, value)
    )
    assert matches_filter(ATTRIBUTES, cmp("nin", key, items)) is not matches_filter(
        ATTRIBUTES, cmp("in", key, items)
    )


def nested(depth: int) -> dict[str, object]:
    node: dict[str, object] = cmp("eq", "a", 1)
    for _ in range(depth - 1):
        node = {"type": "and", "filters": [node]}
    return node


@pytest.mark.parametrize(
    ("filter", "param", "code"),
    [
        ([], "filters", "invalid_type"),
        ("eq", "filters", "invalid_type"),
        ({}, "filters.type", "missing_required_parameter"),
        ({"type": "like", "key": "a", "value": "b"}, "filters.type", "invalid_value"),
        ({"type": "eq", "value": 1}, "filters.key", "missing_required_parameter"),
        ({"type": "eq", "key": "a"}, "filters.value", "missing_required_parameter"),
        ({"type": "eq", "key": 1, "value": 1}, "filters.key", "invalid_type"),
        ({"type": "eq", "key": "a", "value": None}, "filters.value", "invalid_type"),
        ({"type": "eq", "key": "a", "value": {"x": 1}}, "filters.value", "invalid_type"),
        ({"type": "eq", "key": "a", "value": [1]}, "filters.value", "invalid_type"),
        ({"type": "gt", "key": "a", "value": True}, "filters.value", "invalid_type"),
        ({"type": "in", "key": "a", "value": "x"}, "filters.value", "invalid_type"),
        ({"type": "in", "key": "a", "value": ["x", True]}, "filters.value[1]", "invalid_type"),
        ({"type": "nin", "key": "a", "value": [["x"]]}, "filters.value[0]", "invalid_type"),
        ({"type": "eq", "key": "a", "value": 1, "extra": 1}, "filters.extra", "unknown_parameter"),
        ({"type": "and"}, "filters.filters", "missing_required_parameter"),
        ({"type": "and", "filters": {}}, "filters.filters", "invalid_type"),
        ({"type": "or", "filters": [cmp("eq", "a", 1)], "key": "a"}, "filters.key", "unknown_parameter"),
        (
            {"type": "and", "filters": [cmp("eq", "a", 1), {"type": "or", "filters": [{"type": "xx"}]}]},
            "filters.filters[1].filters[0].type",
            "invalid_value",
        ),
        (nested(MAX_FILTER_DEPTH + 1), "filters" + ".filters[0]" * MAX_FILTER_DEPTH, "invalid_value"),
    ],
)
def test_validation_errors(filter: object, param: str, code: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        validate_filter(filter)
    assert caught.value.param == param
    assert caught.value.code == code
    assert caught.value.status == 400
    assert param in caught.value.message


def test_deep_but_allowed_nesting() -> None:
    filter = nested(MAX_FILTER_DEPTH)
    validate_filter(filter)
    assert matches_filter({"a": 1}, filter)


def test_param_prefix() -> None:
    with pytest.raises(InvalidParameter) as caught:
        validate_filter({"type": "eq", "key": "a"}, param="tools[0].file_search.filters")
    assert caught.value.param == "tools[0].file_search.filters.value"


@pytest.mark.parametrize(
    "filter",
    [{"type": "nope", "key": "a", "value": 1}, {"type": "and", "filters": "x"}, {"type": "eq", "key": "a"}],
)
def test_matching_an_unvalidated_malformed_filter_raises(filter: Mapping[str, object]) -> None:
    with pytest.raises(InvalidParameter):
        matches_filter(ATTRIBUTES, filter)
