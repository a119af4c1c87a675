"""The values of Electric's where walk: typed nodes, refusals and crashes (`parser.ex`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

_SELECT_CLAUSES: Final = (
    "distinctClause",
    "groupClause",
    "havingClause",
    "windowClause",
    "limitOffset",
    "limitCount",
    "sortClause",
    "lockingClause",
    "withClause",
)


_SIMPLE_NAME: Final = re.compile(r"^[a-z_][a-z0-9_]*$")


class WhereRefusalError(Exception):
    """Electric refuses the clause: a 400 whose `errors.where` is `[message]`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class WhereCrashError(Exception):
    """Electric's parser would raise here: a 500 whose body names this exception."""

    def __init__(self, exception: str) -> None:
        super().__init__(exception)
        self.exception = exception


@dataclass(frozen=True, slots=True)
class Value:
    """A typed node: `kind` is const, ref, func or unknown (literal/NULL/param awaiting a type)."""

    type: str
    kind: str
    location: int
    name: str = ""
    literal: str | None = None
    param: int | None = None


def identifier(names: list[str]) -> str:
    """How Electric prints a name in messages: `pg_catalog.` dropped, odd names quoted."""
    if len(names) == 2 and names[0] == "pg_catalog":
        names = names[1:]
    return ".".join(
        name if _SIMPLE_NAME.match(name) else '"' + name.replace('"', '""') + '"' for name in names
    )


def quoted(operator: str) -> str:
    """Electric names operators `"="` (`known_definition.ex`), and says so in its messages."""
    return '"' + operator + '"'


def check_subselect(select: dict[str, Any]) -> None:
    """`extract_parts_from_select/1`: plain columns from one table, no other clauses."""
    for target in select.get("targetList", []):
        value = target["ResTarget"].get("val", {})
        fields = value.get("ColumnRef", {}).get("fields", [])
        if len(fields) != 1 or "String" not in fields[0]:
            location = target["ResTarget"].get("location", 0)
            raise WhereRefusalError(f"At location {location}: Expected a plain column reference")
    tables = select.get("fromClause", [])
    if len(tables) != 1 or "RangeVar" not in tables[0]:
        raise WhereRefusalError("Expected a single table reference")
    clauses = ("distinctClause", "groupClause", "havingClause", "windowClause", "limitOffset")
    if any(
        select.get(c) for c in (*clauses, "limitCount", "sortClause", "lockingClause", "withClause")
    ):
        raise WhereRefusalError("SELECT statement must not contain any clauses")
