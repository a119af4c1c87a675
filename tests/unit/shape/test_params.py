"""Client query parameters: allow-list, duplicates, secrets and value forms."""

from __future__ import annotations

import pytest
from yarl import URL

from gateway.errors import Code, Refusal
from gateway.shape.params import parse_shape_query

BASE = [("table", "tasks"), ("offset", "-1")]


def code_of(pairs: list[tuple[str, str]]) -> Code:
    with pytest.raises(Refusal) as caught:
        parse_shape_query(pairs)
    return caught.value.code


@pytest.mark.parametrize("key", ["table", "where", "params[1]", "offset", "columns"])
def test_duplicate_parameter_is_refused(key: str) -> None:
    pairs = [*BASE, ("where", "status = $1"), ("params[1]", "a"), ("columns", "id")]
    assert code_of([*pairs, (key, "other")]) is Code.DUPLICATE_PARAMETER


def test_percent_encoded_duplicate_names_are_caught_after_decoding() -> None:
    decoded = list(URL("/v1/shape?table=tasks&%74able=secrets&offset=-1").query.items())
    assert code_of(decoded) is Code.DUPLICATE_PARAMETER
    decoded = list(URL("/v1/shape?table=t&offset=-1&params%5B1%5D=a&params[1]=b").query.items())
    assert code_of(decoded) is Code.DUPLICATE_PARAMETER


@pytest.mark.parametrize("key", ["secret", "api_secret"])
def test_client_secret_is_forbidden_even_when_duplicated(key: str) -> None:
    assert code_of([*BASE, (key, "x"), (key, "y")]) is Code.FORBIDDEN_PARAMETER


@pytest.mark.parametrize(
    "key", ["queryable_columns", "source_id", "params", "params[0]", "params[a]", "TABLE", "x"]
)
def test_unknown_parameter_is_refused(key: str) -> None:
    assert code_of([*BASE, (key, "1")]) is Code.UNKNOWN_PARAMETER


def test_missing_table_or_offset_is_invalid_parameter() -> None:
    assert code_of([("offset", "-1")]) is Code.INVALID_PARAMETER
    assert code_of([("table", "tasks")]) is Code.INVALID_PARAMETER
    assert code_of([("table", ""), ("offset", "-1")]) is Code.INVALID_PARAMETER


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("offset", "0_-1"),
        ("offset", "abc"),
        ("handle", "a b"),
        ("handle", "x" * 200),
        ("log", "everything"),
        ("replica", "partial"),
        ("columns", 'id,"unterminated'),
        ("columns", "id,id"),
        ("columns", "a b"),
        ("cursor", "1;2"),
        ("where", "a\x00b"),
        ("subset__params", "[1]"),
        ("subset__params", '{"x": "1"}'),
        ("subset__limit", "-1"),
    ],
)
def test_malformed_values_are_invalid_parameter(key: str, value: str) -> None:
    pairs = {**dict(BASE), key: value}
    assert code_of(list(pairs.items())) is Code.INVALID_PARAMETER


def test_everything_the_electric_client_sends_is_accepted() -> None:
    query = parse_shape_query(
        [
            ("cache-buster", "1700000000000-abc"),
            ("columns", '"id","title"'),
            ("cursor", "123456"),
            ("expired_handle", "1-2"),
            ("experimental_live_sse", "true"),
            ("handle", "3-4"),
            ("live", "true"),
            ("live_sse", "true"),
            ("log", "full"),
            ("offset", "26800584_4"),
            ("params[1]", "open"),
            ("replica", "default"),
            ("table", "tasks"),
            ("where", "status = $1"),
        ]
    )
    assert query.live
    assert query.sse
    assert query.columns == ("id", "title")
    assert dict(query.params) == {1: "open"}


def test_live_is_true_unless_literally_false_as_electric_reads_it() -> None:
    assert parse_shape_query([*BASE, ("live", "")]).live
    assert parse_shape_query([*BASE, ("live", "0")]).live
    assert not parse_shape_query([*BASE, ("live", "false")]).live
