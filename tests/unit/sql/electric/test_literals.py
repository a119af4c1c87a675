"""Literals as Electric's parsers read them, and the stricter subset the gateway forwards
(gateway/sql/electric/literals.py)."""

from __future__ import annotations

import pytest

from gateway.sql.electric.literals import electric_reads, literal_problem


@pytest.mark.parametrize(
    ("text", "type_name", "fine"),
    [
        ("2024-03-01T10:00:00Z", "timestamptz", True),
        ("2024-03-01 10:00:00-05", "timestamptz", True),
        ("2024-03-01 10:00:00-00:00", "timestamptz", False),  # Elixir refuses -00:00
        ("2024-03-01 24:00:00Z", "timestamptz", False),
        ("2024-03-01", "timestamp", False),
        ("epoch", "timestamp", True),
        ("1", "bool", False),
        ("tru", "bool", True),
        ("+5", "int4", True),
        ("2147483648", "int4", False),
        ("1.", "float8", False),
        (".5", "float8", False),
        ("-1.5E3", "numeric", True),
        ("550e8400e29b41d4a716446655440000", "uuid", False),
        ("550e8400-e29b41d4-a716-4466-55440000", "uuid", False),  # Ecto.UUID: hyphens in place
        ("\u0661\u0662", "int4", False),  # Elixir reads ASCII digits only
        ("anything", "interval", True),
    ],
)
def test_literals_read_as_electrics_parsers_read_them(
    text: str, type_name: str, fine: bool
) -> None:
    assert (literal_problem(text, type_name) is None) is fine
    assert electric_reads(text, type_name) is fine


@pytest.mark.parametrize(
    ("text", "type_name"),
    [
        ("+2024-03-01", "date"),
        ("0000-01-01", "date"),
        ("12:00:00 PM", "time"),
        ("10:00:00,5", "time"),
        ("2024-03-01 10:00:00,5+00", "timestamptz"),
        ("-2024-03-01 10:00:00", "timestamp"),
    ],
)
def test_spellings_electric_reads_but_postgresql_does_not_are_not_forwarded(
    text: str, type_name: str
) -> None:
    # Electric's parsers take them (the imitation does too); PostgreSQL, which runs the clause
    # for the snapshot, refuses all but the 12-hour clock, which the gateway keeps out as well.
    assert electric_reads(text, type_name)
    assert literal_problem(text, type_name) is not None
