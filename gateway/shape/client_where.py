"""A client's own `where` (and `subset__where`/`subset__order_by`), checked on the parse tree.

SPEC: one boolean expression over the shape's `client_where` columns, literals, `$n`
parameters, comparisons, AND/OR/NOT, IN, BETWEEN, IS [NOT] NULL, LIKE/ILIKE and casts to plain
types. Anything else (subqueries, function calls, other columns, several statements, comments)
is refused. The checked tree, with its `$n` renumbered after the rule's parameters, is what is
deparsed for Electric; the client's text itself never travels.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from pglast import ast, parse_sql
from pglast.enums import A_Expr_Kind
from pglast.parser import ParseError, scan
from pglast.stream import RawStream

from gateway.errors import Code, Refusal
from gateway.sql.expressions import ExpressionError, deparse_expression, parse_expression, walk

MAX_WHERE_LENGTH: Final = 8192
_COMPARISONS: Final = frozenset({"=", "<>", "<", ">", "<=", ">="})
_LIKES: Final = frozenset({"~~", "!~~", "~~*", "!~~*"})
_BINARY: Final = {
    A_Expr_Kind.AEXPR_OP: _COMPARISONS,
    A_Expr_Kind.AEXPR_LIKE: _LIKES,
    A_Expr_Kind.AEXPR_ILIKE: _LIKES,
}
_LISTS: Final = (A_Expr_Kind.AEXPR_IN, A_Expr_Kind.AEXPR_BETWEEN, A_Expr_Kind.AEXPR_NOT_BETWEEN)
PLAIN_TYPES: Final = frozenset(
    {
        "bool", "boolean", "int2", "int4", "int8", "smallint", "integer", "bigint", "int",
        "numeric", "decimal", "float4", "float8", "real", "text", "varchar", "bpchar", "char",
        "date", "time", "timetz", "timestamp", "timestamptz", "interval", "uuid",
    }
)  # fmt: skip


def _invalid(message: str) -> Refusal:
    return Refusal(Code.INVALID_WHERE, message)


@dataclass(frozen=True, slots=True)
class CheckedWhere:
    """Deparsed SQL of a client where, its `$n` already shifted by the rule's parameter count."""

    sql: str
    param_count: int


def _check_columns(node: ast.ColumnRef, allowed: frozenset[str], what: str) -> None:
    fields = node.fields or ()
    if len(fields) != 1 or not isinstance(fields[0], ast.String):
        raise _invalid(f"{what} may name only plain columns of this shape")
    name = fields[0].sval
    if name not in allowed:
        accepted = ", ".join(sorted(allowed))
        raise _invalid(f"{what} may not use column {name!r}; columns it may use: {accepted}")


def _check_type(type_name: ast.TypeName) -> None:
    names = [str(n.sval) for n in type_name.names or () if isinstance(n, ast.String)]
    plain = (len(names) == 1 or (len(names) == 2 and names[0] == "pg_catalog")) and (
        names[-1] in PLAIN_TYPES
    )
    if not plain or type_name.arrayBounds or type_name.setof or type_name.pct_type:
        raise _invalid(
            f"cast to {'.'.join(names) or 'that type'} is not allowed; "
            f"plain types only: {', '.join(sorted(PLAIN_TYPES))}"
        )
    for modifier in type_name.typmods or ():
        if not isinstance(modifier, ast.A_Const):
            raise _invalid("type modifiers must be constants")


def _check_value(node: object, allowed: frozenset[str], what: str) -> None:
    if isinstance(node, ast.ColumnRef):
        _check_columns(node, allowed, what)
    elif isinstance(node, ast.TypeCast):
        assert node.typeName is not None
        _check_type(node.typeName)
        _check_value(node.arg, allowed, what)
    elif not isinstance(node, ast.A_Const | ast.ParamRef):
        raise _invalid(f"{what} may compare only columns, literals, $n parameters and casts")


def _check_predicate(node: object, allowed: frozenset[str], what: str) -> None:
    if isinstance(node, ast.BoolExpr):
        for argument in node.args or ():
            _check_predicate(argument, allowed, what)
    elif isinstance(node, ast.NullTest):
        _check_value(node.arg, allowed, what)
    elif isinstance(node, ast.A_Expr):
        kind = node.kind
        operator = node.name[-1].sval if node.name else ""
        if node.lexpr is None:
            raise _invalid(f"{what} may not use prefix operators")
        _check_value(node.lexpr, allowed, what)
        if kind in _BINARY and operator in _BINARY[kind]:
            _check_value(node.rexpr, allowed, what)
        elif kind in _LISTS and isinstance(node.rexpr, tuple):
            for item in node.rexpr:
                _check_value(item, allowed, what)
        else:
            label = kind.name.removeprefix("AEXPR_") if kind is not None else "?"
            form = repr(operator) if kind == A_Expr_Kind.AEXPR_OP else label
            raise _invalid(
                f"operator {form} is not allowed; use comparisons, IN, BETWEEN, "
                "IS [NOT] NULL, LIKE or ILIKE"
            )
    else:
        # A bare boolean column, literal or cast; anything else (functions, subqueries,
        # arithmetic, row constructors) fails here.
        _check_value(node, allowed, what)


def _reject_comments_and_statements(text: str, what: str) -> None:
    try:
        tokens = scan(text)
    except ParseError as error:
        raise _invalid(f"{what} does not parse: {error.args[0]}") from None
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
        return parse_expression(text)
    except ExpressionError as error:
        raise _invalid(f"{what} does not parse: {error.message}") from None


@lru_cache(maxsize=4096)
def check_client_where(
    text: str, allowed: frozenset[str], shift: int, what: str = "where"
) -> CheckedWhere:
    """Validate `text`; renumber its `$k` to `$k+shift`. Raises Refusal(invalid_where).

    Cached: a live client repeats the same where on every poll, and the result depends only
    on these arguments.
    """
    node = _parse(text, what)
    _check_predicate(node, allowed, what)
    numbers = sorted({p.number or 0 for p in walk(node) if isinstance(p, ast.ParamRef)})
    if numbers != list(range(1, len(numbers) + 1)):
        raise _invalid(f"{what} must number its parameters $1, $2, ... without gaps")
    for param in walk(node):
        if isinstance(param, ast.ParamRef):
            param.number = (param.number or 0) + shift
    try:
        sql = deparse_expression(node)
    except ExpressionError as error:
        raise _invalid(f"{what} cannot be forwarded safely: {error.message}") from None
    return CheckedWhere(sql=sql, param_count=len(numbers))


@lru_cache(maxsize=1024)
def check_order_by(text: str, allowed: frozenset[str]) -> str:
    """`subset__order_by`: columns of `allowed` with ASC/DESC and NULLS FIRST/LAST only."""
    what = "subset__order_by"
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
    for item in stmt.sortClause:
        if not isinstance(item, ast.SortBy) or item.useOp:
            raise _invalid(f"{what} must be a list of columns with ASC/DESC")
        if not isinstance(item.node, ast.ColumnRef):
            raise _invalid(f"{what} may order only by columns")
        _check_columns(item.node, allowed, what)
    text_out: str = RawStream()(stmt).split(" ORDER BY ", 1)[1]
    return text_out
