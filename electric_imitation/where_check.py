"""Judge a where clause the way Electric's own parser does (`replication/eval/parser.ex`).

Electric wraps the clause as `SELECT 1 WHERE <where>`, parses it with libpg_query and walks the
tree bottom-up, typing each node against its known operators and functions; the first node it
cannot type ends the walk with `At location N: <message>` (N: the node's byte offset in the
clause). We walk the same libpg_query tree (pglast's JSON form, which keeps locations) in the
same order and refuse with the same words. What it accepts (`parser.ex` and its tests, and the
`@electric-sql/client` where-clause reference):

- column references to the shape's table, literals, `$n` parameters;
- AND, OR, NOT; comparisons, LIKE/ILIKE, IN (list), BETWEEN, IS [NOT] NULL, IS [NOT] TRUE...,
  IS [NOT] DISTINCT FROM, `op ANY/ALL (array)`, array literals and `[i]` indexing;
- the operators and functions of `gateway.sql.electric` (no `now()`, `random()`, aggregates,
  CASE...);
- casts to the types Electric knows (`::text`, `::int4`, ...; not `::numeric` or enums);
- 1.7 only: `col IN (SELECT col FROM t WHERE ...)`, COALESCE/GREATEST/LEAST, row values.

Two 1.0.10 bugs are reproduced as crashes (a 500 from Electric): any boolean NOT, and a cast
applied to a parameter (see `versions.ServerVersion`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pglast import parse_sql
from pglast.parser import ParseError, parse_sql_json
from pglast.stream import RawStream

from electric_imitation.versions import ServerVersion
from electric_imitation.where_expressions import ExpressionTyper
from electric_imitation.where_values import WhereCrashError, WhereRefusalError

PREFIX: Final = "SELECT 1 WHERE "
_CLAUSES: Final = ("fromClause", "windowClause", "groupClause", "sortClause", "lockingClause")
_PARAM_CAST_CRASH: Final = "** (MatchError) no match of right hand side value: nil"

__all__ = ["CheckedWhere", "WhereCrashError", "WhereRefusalError", "check_where"]


@dataclass(frozen=True, slots=True)
class CheckedWhere:
    """A clause Electric accepts: its SQL as PostgreSQL should run it (`$n` kept)."""

    sql: str
    params: frozenset[int] = field(default_factory=frozenset)


def check_where(
    where: str,
    params: Mapping[str, str],
    columns: Mapping[str, str],
    server: ServerVersion,
    *,
    subqueries: bool = True,
) -> CheckedWhere:
    """Accept `where` as Electric `server` would, or raise WhereRefusalError/WhereCrashError.

    `columns` maps each column of the table to its type as `gateway.sql.electric` names it.
    """
    tree = _parse(where)
    typer = ExpressionTyper(columns, params, server, subqueries=subqueries and server.subqueries)
    result = typer.visit(tree)
    _check_params(params, typer.used, typer.resolved)
    if server.crashes_on_param_cast and typer.used and max(typer.used) > len(typer.resolved):
        raise WhereCrashError(_PARAM_CAST_CRASH)
    if server.refuses_non_boolean_where and result.type != "bool":
        raise WhereRefusalError("WHERE clause must return a boolean")
    return CheckedWhere(sql=_deparse(where), params=frozenset(typer.used))


def _parse(where: str) -> dict[str, Any]:
    query = PREFIX + where
    try:
        parsed = json.loads(parse_sql_json(query))
    except ParseError as error:
        message, index = error.args[0], error.args[1]
        # libpg_query's cursor position: 1-based, in the wrapped query (Electric does not
        # subtract its prefix here, unlike for the errors of its own walk).
        position = len(query) + 1 if index is None else index + 1
        raise WhereRefusalError(f"At location {position}: {message}") from None
    statements = parsed.get("stmts", [])
    if len(statements) != 1 or "SelectStmt" not in statements[0].get("stmt", {}):
        raise WhereRefusalError('unescaped ";" causing statement split')
    select = statements[0]["stmt"]["SelectStmt"]
    if any(select.get(clause) for clause in _CLAUSES):
        raise WhereRefusalError("malformed query ending with SQL clauses")
    where_clause: dict[str, Any] = select["whereClause"]
    return where_clause


def _check_params(params: Mapping[str, str], used: set[int], resolved: set[int]) -> None:
    """`extract_computed_params/2`: every value used, parameters numbered without gaps."""
    # Elixir iterates a small map's string keys in byte order.
    for key in sorted(params, key=lambda k: k.encode()):
        if not (key.isdigit() and int(key) in used):
            raise WhereRefusalError(f"At location 0: parameter value for ${key} was not used")
    for number in range(len(resolved), 0, -1):
        if number not in resolved:
            raise WhereRefusalError(
                f"At location 0: expression is missing ${number} - "
                "parameters should be numbered sequentially"
            )


def _deparse(where: str) -> str:
    # Electric runs the clause rebuilt from its parse tree, never the text it was sent: what
    # follows the expression (`LIMIT`, `HAVING`, comments) is gone, nothing can break out.
    select: Any = parse_sql(PREFIX + where)[0].stmt
    text: str = RawStream()(select.whereClause)
    return text
