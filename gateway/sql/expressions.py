"""One SQL boolean expression, parsed by PostgreSQL's own parser (pglast).

Both rule wheres (at load) and client wheres (per request) go through here: the text must parse
as exactly one expression in a WHERE position. What the upstream receives is written from the
checked tree by `emit.py`, so a client's spelling, comments or stray parentheses never reach
Electric.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from pglast import ast, parse_sql
from pglast.parser import ParseError
from pglast.stream import RawStream

_PREFIX: Final = "SELECT FROM _gw WHERE "
PREFIX_LENGTH: Final = len(_PREFIX)  # subtract from a node's `location` for its text offset
# Checking and writing a where recurse over its tree; a client could nest `NOT NOT ...` past
# Python's recursion limit within 8 KiB. No real filter comes near this depth.
MAX_DEPTH: Final = 100
_ONLY_WHERE: Final = frozenset(
    {
        "distinctClause",
        "intoClause",
        "targetList",
        "groupClause",
        "havingClause",
        "windowClause",
        "valuesLists",
        "sortClause",
        "limitOffset",
        "limitCount",
        "lockingClause",
        "withClause",
        "larg",
        "rarg",
    }
)


class ExpressionError(ValueError):
    """Text that is not exactly one SQL expression; `position` is 0-based in that text."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


def parse_expression(text: str, *, check_depth: bool = True) -> ast.Node:
    """Parse `text` as the sole content of a WHERE clause, or raise ExpressionError.

    `check_depth=False` leaves the depth limit to the caller: `subset.check_subset` enforces
    it on the way down, so a client's where is not walked one extra time (#17)."""
    try:
        statements = parse_sql(_PREFIX + text)
    except ParseError as error:
        message, index = (*error.args, None, None)[:2]
        position = index - PREFIX_LENGTH if isinstance(index, int) else None
        raise ExpressionError(str(message), position) from None
    if len(statements) != 1:
        raise ExpressionError("several statements; send one boolean expression")
    stmt = statements[0].stmt
    if not isinstance(stmt, ast.SelectStmt) or stmt.whereClause is None:
        raise ExpressionError("not a boolean expression")
    for name in _ONLY_WHERE:
        if getattr(stmt, name, None) not in (None, ()):
            raise ExpressionError("only a boolean expression may follow WHERE")
    if stmt.op is not None and stmt.op.value != 0:  # SETOP_NONE
        raise ExpressionError("only a boolean expression may follow WHERE")
    from_clause = stmt.fromClause or ()
    if len(from_clause) != 1 or getattr(from_clause[0], "relname", None) != "_gw":
        raise ExpressionError("only a boolean expression may follow WHERE")
    node: ast.Node = stmt.whereClause
    if check_depth and _deeper_than(node, MAX_DEPTH):
        raise ExpressionError(f"the expression nests more than {MAX_DEPTH} levels deep")
    return node


def _deeper_than(node: ast.Node, limit: int) -> bool:
    """Whether `node` nests more than `limit` AST nodes deep (iterative: no recursion limit)."""
    stack: list[tuple[object, int]] = [(node, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, ast.Node):
            if depth > limit:
                return True
            stack += [(getattr(item, attribute), depth + 1) for attribute in item]
        elif isinstance(item, tuple | list):
            stack += [(child, depth) for child in item]
    return False


def deparse_expression(node: ast.Node) -> str:
    """pglast's canonical text for `node`, for comparing wheres by meaning (never forwarded:
    what Electric receives is written by `emit.py`); refused unless it parses back the same."""
    text: str = RawStream()(node)
    if parse_expression(text) != node:  # defence in depth against a deparser bug
        raise ExpressionError("expression does not survive a round trip through the parser")
    return text


def walk(node: object) -> Iterator[ast.Node]:
    """Every AST node under `node` (itself included), depth first."""
    if isinstance(node, ast.Node):
        yield node
        for attribute in node:
            yield from walk(getattr(node, attribute))
    elif isinstance(node, tuple | list):
        for item in node:
            yield from walk(item)
