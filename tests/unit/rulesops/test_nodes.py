"""The rule tests' node reader: strings as a test states them (a number is its text, one string
a list of one), problems reported the rules' way, and no `${VAR}` expansion."""

from __future__ import annotations

import textwrap

import yaml

from gateway.rulesops.nodes import NodeReader, compose_document


def node(text: str) -> yaml.Node:
    return compose_document(textwrap.dedent(text), "t.yaml")


def test_a_number_is_read_as_the_text_the_test_wrote() -> None:
    reader = NodeReader("t.yaml")
    assert reader.string(node("2\n"), "project_id") == "2"
    assert reader.string(node("007\n"), "code") == "007"  # its text, not int("007")
    assert reader.string(node("1.50\n"), "price") == "1.50"
    assert reader.problems == []


def test_a_boolean_or_an_empty_string_is_not_a_string() -> None:
    reader = NodeReader("t.yaml")
    assert reader.string(node("true\n"), "user") == ""
    assert reader.string(node("''\n"), "user") == ""
    assert reader.string(node("[a]\n"), "user") == ""  # reported once, as a non-value
    assert [str(p) for p in reader.problems] == [
        "t.yaml:1: user: must be a non-empty string",
        "t.yaml:1: user: must be a non-empty string",
        "t.yaml:1: user: must be a single value",
    ]


def test_variables_are_left_as_written() -> None:
    assert NodeReader("t.yaml").string(node("'${HOME}'\n"), "user") == "${HOME}"


def test_one_string_stands_for_a_list_of_one() -> None:
    reader = NodeReader("t.yaml")
    assert reader.strings(node("admin\n"), "roles") == ["admin"]
    assert reader.strings(node("[admin, 2]\n"), "roles") == ["admin", "2"]
    assert reader.strings(node("''\n"), "roles") == []
    assert [p.message for p in reader.problems] == ["must be a non-empty string"]


def test_a_string_map_reads_each_value_under_its_key() -> None:
    reader = NodeReader("t.yaml")
    text = """\
        acme: admin
        globex: 3
        initech: ''
        """
    assert reader.string_map(node(text), "memberships") == {
        "acme": "admin", "globex": "3", "initech": ""
    }  # fmt: skip
    assert [str(p) for p in reader.problems] == [
        "t.yaml:3: memberships.initech: must be a non-empty string"
    ]
