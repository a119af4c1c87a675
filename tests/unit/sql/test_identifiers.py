"""Identifiers parsed as Electric parses `table` and `columns`, written back canonically."""

from __future__ import annotations

import pytest

from gateway.sql.identifiers import (
    IdentifierError,
    format_column_list,
    format_relation,
    parse_column_list,
    parse_relation,
    quote_identifier,
)


def test_unquoted_names_are_downcased_and_quoted_names_kept() -> None:
    assert parse_column_list('Id,"Title","a,b","q""x"') == ("id", "Title", "a,b", 'q"x')


def test_relation_defaults_to_public_schema() -> None:
    assert parse_relation("tasks") == ("public", "tasks")
    assert parse_relation('"My Schema"."T.1"') == ("My Schema", "T.1")


@pytest.mark.parametrize("text", ["a.b.c", '""', "1abc", "a-b", "", "a,", '"x'])
def test_malformed_identifiers_are_refused(text: str) -> None:
    with pytest.raises(IdentifierError):
        parse_relation(text) if "," not in text else parse_column_list(text)


def test_identifier_longer_than_postgres_allows_is_refused() -> None:
    with pytest.raises(IdentifierError):
        parse_column_list("a" * 64)


def test_canonical_form_quotes_only_when_needed_and_round_trips() -> None:
    assert quote_identifier("tenant_id") == "tenant_id"
    assert quote_identifier("Title") == '"Title"'
    names = ("id", "Title", "a,b", 'q"x')
    assert parse_column_list(format_column_list(names)) == names
    assert format_relation("tenant_acme", "documents") == "tenant_acme.documents"
