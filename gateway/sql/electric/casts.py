"""Which `::type` casts Electric's where parser has (`Env.find_cast_function/3`).

A cast is an implicit cast (`env/implicit_casts.ex`), `<target>(text)` from text, `<source>out`
to text (there is none for timestamptz or jsonb; an enum goes to text as is), or bool <-> int4
(`env/explicit_casts.ex`). What `::type` may name at all is `CAST_TARGETS`.
"""

from __future__ import annotations

from typing import Final

from gateway.sql.electric.types import DECLARABLE, INTS, UNKNOWN, UNTYPED

# What `::type` may name (`Electric.Postgres.supported_types/0` plus interval).
CAST_TARGETS: Final = frozenset(
    {"bool", "bytea", "date", "float4", "float8", "int2", "int4", "int8", "jsonb", "text"}
    | {"time", "timestamp", "timestamptz", "uuid", "varchar", "interval"}
)
# The targets the gateway forwards: less bytea and jsonb, which no client where compares.
CAST_TYPES: Final = CAST_TARGETS & DECLARABLE
# `env/implicit_casts.ex` (source -> targets).
_IMPLICIT: Final[dict[str, frozenset[str]]] = {
    "int2": frozenset({"int4", "int8", "float4", "float8", "numeric"}),
    "int4": frozenset({"int8", "float4", "float8", "numeric"}),
    "int8": frozenset({"float4", "float8", "numeric"}),
    "float4": frozenset({"float8"}),
    "numeric": frozenset({"float4", "float8"}),
    "text": frozenset({"varchar", "bpchar", "name"}),
    "varchar": frozenset({"text", "bpchar", "name"}),
    "bpchar": frozenset({"text", "varchar", "name"}),
    "name": frozenset({"text"}),
    "date": frozenset({"timestamp"}),
    "time": frozenset({"interval"}),
}
# The `<type>out` functions of `known_functions.ex`: what `::text` accepts.
_HAS_OUT: Final = INTS | {
    "float4", "float8", "numeric", "date", "time", "timestamp", "interval", "bool", "uuid",
}  # fmt: skip
_EXPLICIT: Final = frozenset({("bool", "int4"), ("int4", "bool")})


def implicitly_castable(source: str, target: str) -> bool:
    return source == target or target in _IMPLICIT.get(source, ())


def cast_allowed(source: str, target: str) -> bool:
    """Whether Electric has a cast from `source` to `target`."""
    if implicitly_castable(source, target):
        return True
    if source == "text":
        return target in CAST_TARGETS - {"bytea", "jsonb"}
    if target == "text":
        return source in _HAS_OUT or source.startswith("enum ")
    return (source, target) in _EXPLICIT


def cast_problem(source: str, target: str) -> str | None:
    """Why Electric has no cast from `source` to `target`, None if it has (or the source's type
    is not known yet)."""
    if source in (UNKNOWN, UNTYPED) or cast_allowed(source, target):
        return None
    return f"Electric has no cast from {source} to {target}"
