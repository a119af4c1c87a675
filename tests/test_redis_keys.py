"""Redis keys built from claim values never collide, whatever the values hold."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.redis_keys import key_part, make_key


def test_a_separator_inside_a_value_cannot_make_two_keys_equal() -> None:
    assert make_key("p", "audit:seen", "acme", "bob", "1:x") != make_key(
        "p", "audit:seen", "acme", "bob:1", "x"
    )


def test_a_part_holds_neither_the_separator_nor_a_cluster_hash_tag() -> None:
    part = key_part("a:{b}:c/ü\udc80")
    assert not set(part) & set(":{}")


@given(st.lists(st.text(), min_size=1, max_size=4), st.lists(st.text(), min_size=1, max_size=4))
def test_distinct_values_give_distinct_keys(left: list[str], right: list[str]) -> None:
    if left != right and len(left) == len(right):
        assert make_key("p", "k", *left) != make_key("p", "k", *right)
