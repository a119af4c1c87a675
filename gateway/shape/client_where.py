"""A client's own `where` (and `subset__where`/`subset__order_by`), checked on the parse tree.

Allowed: one boolean expression over the shape's `client_where` columns in the subset Electric
supports (`gateway/sql/subset.py`: literals, `$n` parameters, comparisons, AND/OR/NOT, [NOT] IN,
[NOT] BETWEEN, IS [NOT] NULL, [NOT] LIKE/ILIKE, casts of columns and literals to Electric's
types). Anything else (sub-selects, functions, arrays, other columns, several statements,
comments, casts on parameters) is 400 invalid_where. The checked tree, with its `$n` renumbered
after the rule's parameters and its NOTs pushed down, is written by `gateway/sql/emit.py` for
Electric; the client's text itself never travels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from pglast import ast, parse_sql
from pglast.parser import ParseError, scan

from gateway.errors import Code, Refusal
from gateway.sql.electric.literals import literal_problem
from gateway.sql.emit import emit_order_by, emit_where
from gateway.sql.expressions import ExpressionError, parse_expression
from gateway.sql.negation import push_negations
from gateway.sql.subset import check_subset

MAX_WHERE_LENGTH: Final = 8192
# What a where costs to check grows with its tokens (names, values, operators), not its bytes:
# 8 KiB of one-digit IN-list items is 4,000 values. At this cap the costliest accepted where
# takes about 12 ms of CPU on a loaded 2-core machine (bench/planner.py), so a request with
# both a `where` and a `subset__where` at the cap stays under 25 ms (#17). It still allows an
# IN list of 750 `$n` parameters, or about 5 KiB of typical filters.
MAX_WHERE_TOKENS: Final = 1500


def _invalid(message: str) -> Refusal:
    return Refusal(Code.INVALID_WHERE, message)


@dataclass(frozen=True, slots=True)
class CheckedWhere:
    """Forwarded SQL of a client where, its `$n` already shifted by the rule's parameter count;
    `param_types[k - 1]` is the type Electric reads the client's `$k` as (None: not known)."""

    sql: str
    param_count: int
    param_types: tuple[str | None, ...] = ()

    def param_problem(self, number: int, value: str) -> str | None:
        """Why Electric would refuse `value` for the client's `$number`, None if it would not."""
        known = self.param_types[number - 1] if number <= len(self.param_types) else None
        return literal_problem(value, known) if known is not None else None


def _reject_comments_and_statements(text: str, what: str) -> None:
    try:
        tokens = scan(text)
    except ParseError as error:
        raise _invalid(f"{what} does not parse: {error.args[0]}") from None
    if len(tokens) > MAX_WHERE_TOKENS:
        raise _invalid(
            f"{what} has more than {MAX_WHERE_TOKENS} tokens (names, values, operators); "
            "send fewer values, or split it into several shapes or subset requests"
        )
    for token in tokens:
        if token.name in ("SQL_COMMENT", "C_COMMENT"):
            raise _invalid(f"{what} may not contain comments")
        if token.name == "ASCII_59":
            raise _invalid(f"{what} must be one expression, without ';'")


def _parse(text: str, what: str) -> ast.Node:
    if len(text) > MAX_WHERE_LENGTH:
        raise _invalid(f"{what} is longer than {MAX_WHERE_LENGTH} characters")
    if not text.strip():
        raise _invalid(f"{what} is empty")
    _reject_comments_and_statements(text, what)
    try:
        return parse_expression(text, check_depth=False)  # check_subset enforces the depth
    except ExpressionError as error:
        raise _invalid(f"{what} does not parse: {error.message}") from None


def check_client_where(
    text: str,
    allowed: frozenset[str],
    shift: int,
    what: str = "where",
    types: frozenset[tuple[str, str]] = frozenset(),
) -> CheckedWhere:
    """Validate `text`; renumber its `$k` to `$k+shift`. Raises Refusal(invalid_where).

    `types` are the column types the rules declare. Pure: the result depends only on these
    arguments, so `gateway/decisions.py` keeps it (a where costs up to tens of ms to check).
    """
    node = _parse(text, what)
    try:
        checked = check_subset(node, allowed, dict(types))
    except ExpressionError as error:
        raise _invalid(f"{what}: {error.message}") from None
    numbers = sorted({p.number or 0 for p in checked.refs})
    if numbers != list(range(1, len(numbers) + 1)):
        raise _invalid(f"{what} must number its parameters $1, $2, ... without gaps")
    for param in checked.refs:  # the tree is this call's own: renumber it in place
        param.number = (param.number or 0) + shift
    try:
        sql = emit_where(push_negations(node))
    except ExpressionError as error:
        raise _invalid(f"{what} cannot be forwarded safely: {error.message}") from None
    known = tuple(checked.params.get(n) for n in numbers)
    return CheckedWhere(sql=sql, param_count=len(numbers), param_types=known)


def _sort_items(text: str, what: str) -> list[tuple[ast.SortBy, str]]:
    """Each ORDER BY item with the plain column it names."""
    if len(text) > MAX_WHERE_LENGTH or not text.strip():
        raise _invalid(f"{what} must be a non-empty list of columns")
    _reject_comments_and_statements(text, what)
    try:
        statements = parse_sql("SELECT FROM _gw ORDER BY " + text)
    except ParseError as error:
        raise _invalid(f"{what} does not parse: {error.args[0]}") from None
    stmt = statements[0].stmt if len(statements) == 1 else None
    if (
        not isinstance(stmt, ast.SelectStmt)
        or stmt.whereClause is not None
        or stmt.limitCount is not None
        or stmt.limitOffset is not None
        or stmt.lockingClause
        or not stmt.sortClause
    ):
        raise _invalid(f"{what} must be a list of columns with ASC/DESC")
    items = []
    for item in stmt.sortClause:
        if not isinstance(item, ast.SortBy) or item.useOp:
            raise _invalid(f"{what} must be a list of columns with ASC/DESC")
        fields = item.node.fields or () if isinstance(item.node, ast.ColumnRef) else ()
        if len(fields) != 1 or not isinstance(fields[0], ast.String):
            raise _invalid(f"{what} may order only by plain column names")
        items.append((item, str(fields[0].sval)))
    return items


def check_order_by(text: str, readable: frozenset[str] | None) -> str:
    """`subset__order_by`: columns with ASC/DESC and NULLS FIRST/LAST only (#8 item 3).

    Any column the role can read may be used: `readable` is its column allow-list, or None when
    the grant has none (then any plain column; Electric refuses one the table lacks). A column
    outside the allow-list is 403 column_not_allowed: ordering by it with a limit would reveal
    its values' order.
    """
    what = "subset__order_by"
    items = _sort_items(text, what)
    for _, name in items:
        if readable is not None and name not in readable:
            raise Refusal(
                Code.COLUMN_NOT_ALLOWED,
                f"{what} may not order by {name!r}: it is not among the columns this shape "
                f"offers you: {', '.join(sorted(readable))}",
            )
    return emit_order_by(tuple(item for item, _ in items))
