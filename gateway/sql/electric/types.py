"""The type names of Electric's where parser, and the families it groups them in.

Electric types every node of a where itself (sync-service `lib/electric/replication/eval/
parser.ex`, `env.ex`, `lookups.ex`, with the tables of `env/known_functions.ex`,
`env/implicit_casts.ex`, `env/explicit_casts.ex`; the same in 1.0.10 and 1.7.12 for what the
gateway forwards). This package models those rules once: the gateway judges client wheres with
them (`gateway/sql/subset.py`), and the Electric imitation the tests run against refuses with
them what real Electric refuses.

The gateway knows a column's type only when the rules declare it (`client_where` as a map);
an undeclared column is `UNTYPED` and nothing that depends on its type is judged.
"""

from __future__ import annotations

from typing import Final

UNKNOWN: Final = "unknown"  # a string literal, NULL or `$n` before it meets a type
UNTYPED: Final = "untyped"  # a column whose type the rules do not declare

INTS: Final = frozenset({"int2", "int4", "int8"})
NUMBERS: Final = INTS | {"float4", "float8", "numeric"}
TEXTS: Final = frozenset({"text", "varchar", "bpchar", "name"})
TIMES: Final = frozenset({"date", "time", "timestamp", "timestamptz", "interval"})
# What a rule may declare for a client_where column (Electric's basic types, bar bytea).
DECLARABLE: Final = frozenset(
    {
        "bool", "int2", "int4", "int8", "float4", "float8", "numeric", "text", "varchar",
        "date", "time", "timestamp", "timestamptz", "interval", "uuid",
    }
)  # fmt: skip


def family(type_name: str) -> str:
    """`number`, `text` or the type itself."""
    if type_name in NUMBERS:
        return "number"
    if type_name in TEXTS:
        return "text"
    return type_name


def is_array(type_name: str) -> bool:
    return type_name.endswith("[]")
