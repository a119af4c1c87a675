"""Line-aware YAML reading: every problem is collected with its line (not only the first), in
file order, and PyYAML's own errors read as `PATH:LINE: (yaml): what` with a caret."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from gateway.rules.nodes import NodeReader, Problem, RulesError, compose_document


def document(text: str) -> yaml.Node:
    return compose_document(textwrap.dedent(text), "r.yaml")


def test_a_problem_reads_path_line_key_and_message() -> None:
    assert str(Problem("r.yaml", 7, "shapes.tasks", "needs a table")) == (
        "r.yaml:7: shapes.tasks: needs a table"
    )


def test_problems_are_raised_together_in_file_order() -> None:
    error = RulesError([Problem("r", 9, "b", "late"), Problem("r", 2, "a", "early")])
    assert [p.line for p in error.problems] == [2, 9]
    assert str(error) == "r:2: a: early\nr:9: b: late"


def test_duplicate_unknown_and_non_string_keys_are_each_reported_with_their_line() -> None:
    node = document("""\
        a: 1
        b: 2
        a: 3
        zzz: 4
        [x]: 5
        """)
    reader = NodeReader("r.yaml")
    entries = reader.mapping(node, "top", accepted=("a", "b"))
    assert set(entries) == {"a", "b"}
    assert reader.scalar(entries["a"], "top.a") == 1  # the first of two is kept, not the last
    assert [str(p) for p in reader.problems] == [
        "r.yaml:3: top.a: duplicate key (YAML would silently keep the last)",
        "r.yaml:4: top.zzz: unknown key; accepted: a, b",
        "r.yaml:5: top: keys must be plain strings",
    ]
    with pytest.raises(RulesError):
        reader.raise_problems()


def test_a_reader_without_problems_raises_nothing() -> None:
    reader = NodeReader("r.yaml")
    reader.mapping(document("a: 1\n"), "", accepted=("a",))
    reader.raise_problems()


def test_wrong_kinds_are_reported_and_reading_goes_on_with_a_stand_in() -> None:
    node = document("""\
        mapping: [1]
        sequence: {a: 1}
        scalar: [1]
        flag: "yes"
        count: 0
        truth: true
        """)
    reader = NodeReader("r.yaml")
    values = reader.mapping(node, "")
    assert reader.mapping(values["mapping"], "mapping") == {}
    assert reader.sequence(values["sequence"], "sequence") == []
    assert reader.scalar(values["scalar"], "scalar") is None
    assert reader.boolean(values["flag"], "flag") is False
    assert reader.integer(values["count"], "count") == 1
    assert reader.boolean(values["truth"], "truth") is True
    assert [(p.line, p.message) for p in reader.problems] == [
        (1, "must be a mapping"),
        (2, "must be a list"),
        (3, "must be a single value"),
        (4, "must be true or false"),
        (5, "must be a whole number of at least 1"),
    ]


def test_a_boolean_is_not_taken_for_a_whole_number() -> None:
    reader = NodeReader("r.yaml")
    assert reader.integer(document("true\n"), "n", minimum=0) == 0
    assert reader.integer(document("5\n"), "n", minimum=0) == 5
    assert [p.message for p in reader.problems] == ["must be a whole number of at least 0"]


def test_data_is_plain_nested_values() -> None:
    reader = NodeReader("r.yaml")
    assert reader.data(document("{a: [1, b], c: {d: null}}\n")) == {"a": [1, "b"], "c": {"d": None}}


def test_a_yaml_error_names_its_line_and_column_and_points_at_it() -> None:
    with pytest.raises(RulesError) as caught:
        document("""\
            a: 1
            b: [1, 2
            c: 3
            """)
    (problem,) = caught.value.problems
    assert (problem.path, problem.key) == ("r.yaml", "(yaml)")
    assert "that starts at line 2" in problem.message
    assert problem.message.endswith("^")
    assert "(at column" in problem.message


def test_a_tab_in_the_source_line_is_kept_under_the_caret() -> None:
    with pytest.raises(RulesError) as caught:
        compose_document('a: "x\ty" ]\n', "r.yaml")
    (problem,) = caught.value.problems
    source, caret = problem.message.splitlines()[-2:]
    assert source == '    a: "x\ty" ]'
    assert caret == "    " + "     \t   ^"  # the tab kept, so the caret sits under the `]`


@pytest.mark.parametrize("text", ["", "a: 1\n---\nb: 2\n"])
def test_a_file_must_hold_exactly_one_document(text: str) -> None:
    with pytest.raises(RulesError) as caught:
        compose_document(text, "r.yaml")
    assert [str(p) for p in caught.value.problems] == [
        "r.yaml:1: (file): must hold exactly one YAML document"
    ]
