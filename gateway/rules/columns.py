"""Column names in the rules (`columns`, `client_where`), and the types `client_where` declares.

A rule names a column exactly as the table has it, without SQL quoting: `Status`, not
`"Status"`. A client's where is read by PostgreSQL's parser, which keeps `"Status"` as `Status`
and lower-cases a bare `Status`, so the rule's `Status` is what a client reaches by writing
`"Status"`. A name written with quotes in the rules would never match anything: it is refused
with how to write it.

`client_where` is a list of columns, or a map from column to its type (`{status: text,
due_at: timestamptz}`). With types, the gateway judges a client's where as Electric types it
(`gateway/sql/electric/`) and refuses what Electric would refuse with its own 400; without, only
the form is judged.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml
from pglast import ast, parse_sql
from pglast.parser import ParseError

from gateway.rules.sections import RulesReader
from gateway.sql.electric.types import DECLARABLE
from gateway.sql.subset import type_name


@dataclass(frozen=True, slots=True)
class ClientWhere:
    """The columns a client's where may use, and the types the rules declare for them."""

    columns: frozenset[str]
    types: frozenset[tuple[str, str]]  # (column, type); empty when declared as a list


def _quoted(reader: RulesReader, node: yaml.Node, key: str, name: str) -> bool:
    if '"' not in name:
        return False
    bare = name.strip('"').replace('""', '"')
    reader.problem(
        node,
        key,
        f"{name} is quoted: write the column name as the table has it, without quotes: "
        f'{bare} (a client then writes "{bare}" in its where or columns)',
    )
    return True


def read_column_names(reader: RulesReader, node: yaml.Node, key: str) -> list[str]:
    """A list of unique column names, none of them written with SQL quotes."""
    names = reader.strings(node, key)
    items = node.value if isinstance(node, yaml.SequenceNode) else []
    for name, item in zip(names, items, strict=False):
        _quoted(reader, item, key, name)
    return names


def _declared_type(text: str) -> str | None:
    """`integer` -> int4, `timestamp with time zone` -> timestamptz, as PostgreSQL names them."""
    try:
        statements = parse_sql(f"SELECT NULL::{text}")
    except ParseError:
        return None
    stmt = statements[0].stmt if len(statements) == 1 else None
    targets: tuple[object, ...] = getattr(stmt, "targetList", None) or ()
    cast = getattr(targets[0], "val", None) if len(targets) == 1 else None
    if not isinstance(cast, ast.TypeCast) or cast.typeName is None or cast.typeName.arrayBounds:
        return None
    name = type_name(cast.typeName)
    return name if name in DECLARABLE else None


def read_client_where(reader: RulesReader, node: yaml.Node, key: str) -> ClientWhere:
    """`client_where` as a list of columns or a map from column to type."""
    if not isinstance(node, yaml.MappingNode):
        return ClientWhere(frozenset(read_column_names(reader, node, key)), frozenset())
    types: dict[str, str] = {}
    for name, (key_node, value_node) in reader.entries(node, key).items():
        if _quoted(reader, key_node, key, name):
            continue
        text = reader.string(value_node, f"{key}.{name}")
        declared = _declared_type(text) if text else None
        if declared is None:
            if text:
                reader.problem(
                    value_node,
                    f"{key}.{name}",
                    f"{text!r} is not a type Electric's where parser knows; declare one of "
                    f"{', '.join(sorted(DECLARABLE))}, or list the columns without types",
                )
            continue
        types[name] = declared
    return ClientWhere(frozenset(types), frozenset(types.items()))
