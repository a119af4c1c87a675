"""Write a checked where (or order_by) tree as the text the gateway forwards to Electric.

Our own writer instead of pglast's deparser, so the forwarded form is one we chose and can keep
stable across pglast versions: every operand of AND, OR and NOT in parentheses
(`(a = 1) AND ((b = 2) OR (c = 3))`), casts as `column::type` and `'5'::int4`, literals as
standard SQL strings and numbers, keywords quoted as identifiers. It writes only the subset
`subset.check_subset` accepts, and refuses to return text that does not parse back to the same
tree (compared after the normalisations the form itself makes), so a writer bug can never change
what a where means.
"""

from __future__ import annotations

from typing import Final

from pglast import ast
from pglast.enums import A_Expr_Kind, BoolExprType, NullTestType, SortByDir, SortByNulls
from pglast.keywords import COL_NAME_KEYWORDS, RESERVED_KEYWORDS, TYPE_FUNC_NAME_KEYWORDS

from gateway.sql.expressions import ExpressionError, parse_expression
from gateway.sql.identifiers import quote_identifier
from gateway.sql.subset import BOOL_TESTS, operator_name, type_name

_KEYWORDS: Final = RESERVED_KEYWORDS | COL_NAME_KEYWORDS | TYPE_FUNC_NAME_KEYWORDS
_LIKE_WORDS: Final = {"~~": "LIKE", "!~~": "NOT LIKE", "~~*": "ILIKE", "!~~*": "NOT ILIKE"}
_DISTINCT: Final = {
    A_Expr_Kind.AEXPR_DISTINCT: "IS DISTINCT FROM",
    A_Expr_Kind.AEXPR_NOT_DISTINCT: "IS NOT DISTINCT FROM",
}
_DIRECTIONS: Final[dict[SortByDir | None, str]] = {
    SortByDir.SORTBY_ASC: " ASC",
    SortByDir.SORTBY_DESC: " DESC",
}
_NULLS: Final[dict[SortByNulls | None, str]] = {
    SortByNulls.SORTBY_NULLS_FIRST: " NULLS FIRST",
    SortByNulls.SORTBY_NULLS_LAST: " NULLS LAST",
}


def column_name(node: ast.ColumnRef) -> str:
    """A plain column, quoted when PostgreSQL would not read it back bare (case, keywords)."""
    fields = node.fields or ()
    if len(fields) != 1 or not isinstance(fields[0], ast.String):
        raise ExpressionError("only plain column names can be written")
    name = str(fields[0].sval)
    quoted = quote_identifier(name)
    return f'"{name}"' if quoted == name and name in _KEYWORDS else quoted


def _literal(node: ast.A_Const) -> str:
    if node.isnull:
        return "NULL"
    value = node.val
    if isinstance(value, ast.Boolean):
        return "true" if value.boolval else "false"
    if isinstance(value, ast.Integer):
        return str(value.ival or 0)
    if isinstance(value, ast.Float):
        return str(value.fval)
    if isinstance(value, ast.String):
        return "'" + str(value.sval).replace("'", "''") + "'"
    raise ExpressionError(f"cannot write the literal {value!r}")


def _value(node: object) -> str:
    if isinstance(node, ast.ColumnRef):
        return column_name(node)
    if isinstance(node, ast.ParamRef):
        return f"${node.number}"
    if isinstance(node, ast.A_Const):
        return _literal(node)
    if isinstance(node, ast.TypeCast) and node.typeName is not None:
        operand = _value(node.arg)
        if operand.startswith("-"):  # `-1::int4` would read as -(1::int4)
            operand = f"({operand})"
        return f"{operand}::{type_name(node.typeName)}"
    raise ExpressionError(f"cannot write {type(node).__name__} as a value")


def _operands(node: ast.BoolExpr) -> list[ast.Node]:
    """AND (OR) operands with nested ANDs (ORs) spliced in: one flat list, as PostgreSQL reads."""
    out: list[ast.Node] = []
    for arg in node.args or ():
        nested = isinstance(arg, ast.BoolExpr) and arg.boolop == node.boolop
        out += _operands(arg) if nested else [arg]
    return out


def _condition(node: object) -> str:
    if isinstance(node, ast.BoolExpr):
        args = node.args or ()
        if node.boolop == BoolExprType.NOT_EXPR:
            return f"NOT ({_condition(args[0])})"
        word = " AND " if node.boolop == BoolExprType.AND_EXPR else " OR "
        return word.join(f"({_condition(a)})" for a in _operands(node))
    if isinstance(node, ast.NullTest):
        test = "IS NULL" if node.nulltesttype == NullTestType.IS_NULL else "IS NOT NULL"
        return f"{_value(node.arg)} {test}"
    if isinstance(node, ast.BooleanTest):
        arg = node.arg
        plain = isinstance(arg, ast.ColumnRef | ast.TypeCast | ast.A_Const)
        operand = _value(arg) if plain else f"({_condition(arg)})"
        return f"{operand} {BOOL_TESTS[node.booltesttype]}"  # type: ignore[index]
    if isinstance(node, ast.A_Expr):
        return _operation(node)
    return _value(node)


def _operation(node: ast.A_Expr) -> str:
    left, operator, kind = _value(node.lexpr), operator_name(node), node.kind
    if kind == A_Expr_Kind.AEXPR_OP and operator is not None:
        return f"{left} {operator} {_value(node.rexpr)}"
    if kind in _DISTINCT and operator == "=":
        return f"{left} {_DISTINCT[kind]} {_value(node.rexpr)}"
    if kind in (A_Expr_Kind.AEXPR_LIKE, A_Expr_Kind.AEXPR_ILIKE) and operator in _LIKE_WORDS:
        return f"{left} {_LIKE_WORDS[operator]} {_value(node.rexpr)}"
    items = node.rexpr if isinstance(node.rexpr, tuple) else ()
    if kind == A_Expr_Kind.AEXPR_IN and operator in ("=", "<>"):
        words = "IN" if operator == "=" else "NOT IN"
        return f"{left} {words} ({', '.join(_value(item) for item in items)})"
    if kind in (A_Expr_Kind.AEXPR_BETWEEN, A_Expr_Kind.AEXPR_NOT_BETWEEN) and len(items) == 2:
        return f"{left} {operator} {_value(items[0])} AND {_value(items[1])}"
    raise ExpressionError(f"cannot write operator {operator!r}")


def _canonical(node: object) -> object:
    """What the written form preserves: nested ANDs (ORs) flattened, `pg_catalog.` dropped."""
    if isinstance(node, ast.BoolExpr):
        if node.boolop == BoolExprType.NOT_EXPR:
            return ("not", _canonical((node.args or ())[0]))
        return (node.boolop, tuple(_canonical(arg) for arg in _operands(node)))
    if isinstance(node, ast.TypeCast) and node.typeName is not None:
        modifiers = node.typeName.typmods, node.typeName.arrayBounds
        return ("cast", _canonical(node.arg), type_name(node.typeName), modifiers)
    if isinstance(node, ast.A_Expr):
        rexpr = node.rexpr
        right = [_canonical(r) for r in rexpr] if isinstance(rexpr, tuple) else _canonical(rexpr)
        return (node.kind, operator_name(node), _canonical(node.lexpr), right)
    if isinstance(node, ast.NullTest):
        return ("null", node.nulltesttype, _canonical(node.arg))
    if isinstance(node, ast.BooleanTest):
        return ("test", node.booltesttype, _canonical(node.arg))
    return node  # leaves: pglast compares them field by field, locations excluded


def emit_where(node: ast.Node) -> str:
    """The forwarded text of `node`; ExpressionError when it would not read back the same."""
    text = _condition(node)
    if _canonical(parse_expression(text)) != _canonical(node):
        raise ExpressionError("the where does not survive a round trip through the parser")
    return text


def emit_order_by(items: tuple[ast.SortBy, ...]) -> str:
    """`col [ASC|DESC] [NULLS FIRST|LAST], ...` from checked SortBy items of plain columns."""
    out = []
    for item in items:
        if not isinstance(item.node, ast.ColumnRef):
            raise ExpressionError("only columns can be written in an order_by")
        direction = _DIRECTIONS.get(item.sortby_dir, "")
        nulls = _NULLS.get(item.sortby_nulls, "")
        out.append(f"{column_name(item.node)}{direction}{nulls}")
    return ", ".join(out)
