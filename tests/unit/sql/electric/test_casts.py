"""The `::type` casts Electric's where parser has (gateway/sql/electric/casts.py)."""

from __future__ import annotations

from gateway.sql.electric.casts import cast_problem


def test_casts_follow_electrics_tables() -> None:
    assert cast_problem("date", "timestamp") is None
    assert cast_problem("timestamptz", "date") is not None
    assert cast_problem("int4", "bool") is None
