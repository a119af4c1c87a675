"""Wheres compare by meaning: parsed, split into AND terms, deparsed in one canonical text."""

from __future__ import annotations

import pytest

from gateway.rulesops.conjuncts import expected_conjuncts, render_conjuncts
from gateway.sql.expressions import ExpressionError

PLANNED = "(tenant_id = $1 AND assigned_to = $2) AND (status = $3)"


def test_terms_are_split_at_every_top_level_and_whatever_the_parentheses() -> None:
    assert render_conjuncts(PLANNED) == ["tenant_id = $1", "assigned_to = $2", "status = $3"]


def test_bound_values_are_written_as_escaped_string_literals() -> None:
    values = {1: "acme", 2: "o'brien", 3: "open"}
    assert render_conjuncts(PLANNED, values=values) == [
        "tenant_id = 'acme'",
        "assigned_to = 'o''brien'",
        "status = 'open'",
    ]


def test_parameters_can_be_named_by_the_placeholder_they_came_from() -> None:
    terms = render_conjuncts(PLANNED, values={3: "open"}, names={1: "tenant", 2: "user"})
    assert terms == ["tenant_id = :tenant", "assigned_to = :user", "status = 'open'"]


def test_a_dollar_inside_a_string_literal_is_not_a_parameter() -> None:
    assert render_conjuncts("a = '$1' AND b = $1", names={1: "user"}) == ["a = '$1'", "b = :user"]


def test_an_or_term_is_parenthesised_so_terms_join_with_and_unambiguously() -> None:
    assert render_conjuncts("a = 1 AND (b = 2 OR c = 3)") == ["a = 1", "(b = 2 OR c = 3)"]


def test_spacing_case_and_order_of_terms_do_not_matter_to_expectations() -> None:
    assert set(expected_conjuncts("ASSIGNED_TO=:user and  tenant_id = 'acme'")) == {
        "tenant_id = 'acme'",
        "assigned_to = :user",
    }


def test_claim_placeholders_keep_their_claim_name() -> None:
    assert expected_conjuncts("org = :claims.org") == ["org = :claims.org"]


def test_an_expectation_that_is_not_sql_raises() -> None:
    with pytest.raises(ExpressionError):
        expected_conjuncts("tenant_id = = 'acme'")
