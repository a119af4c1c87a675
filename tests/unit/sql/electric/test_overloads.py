"""The overload a comparison picks, as Electric's where parser picks it
(gateway/sql/electric/overloads.py)."""

from __future__ import annotations

from gateway.sql.electric.overloads import pick_overload


def test_overloads_follow_electrics_tables() -> None:
    assert pick_overload("=", "int4", "int8") == "int8"
    assert pick_overload("=", "varchar", "unknown") == "text"
    assert pick_overload("=", "unknown", "unknown") == "text"
    assert pick_overload("<", "float4", "numeric") == "float4"
    assert pick_overload("=", "date", "timestamptz") is None
