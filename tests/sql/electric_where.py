"""Test oracle: is a forwarded where in the subset Electric supports, in the conservative form?

Written from Electric's where-clause reference (`@electric-sql/client`,
`skills/electric-shapes/references/where-clause.md`) and its evaluator's types (sync-service
`eval/parser.ex`), independently of `gateway/sql/subset.py` and `emit.py`: the property tests
judge the gateway's output with it, so a bug in either shows up as a disagreement.
"""

from __future__ import annotations

from typing import Final

from pglast import ast
from pglast.enums import A_Expr_Kind, BoolExprType
from pglast.parser import ParseError, scan

from gateway.sql.expressions import ExpressionError, parse_expression

ELECTRIC_CAST_TYPES: Final = {
    "bool", "int2", "int4", "int8", "float4", "float8", "text", "varchar", "date", "time",
    "timestamp", "timestamptz", "interval", "uuid",
}  # fmt: skip
OPERATORS: Final = {
    A_Expr_Kind.AEXPR_OP: {"=", "<>", "<", ">", "<=", ">="},
    A_Expr_Kind.AEXPR_LIKE: {"~~", "!~~"},
    A_Expr_Kind.AEXPR_ILIKE: {"~~*", "!~~*"},
    A_Expr_Kind.AEXPR_IN: {"=", "<>"},
    A_Expr_Kind.AEXPR_BETWEEN: {"BETWEEN"},
    A_Expr_Kind.AEXPR_NOT_BETWEEN: {"NOT BETWEEN"},
    A_Expr_Kind.AEXPR_DISTINCT: {"="},
    A_Expr_Kind.AEXPR_NOT_DISTINCT: {"="},
}
OPENS_OPERAND: Final = {None, "ASCII_40", "AND", "OR", "IN_P"}


def _value_problem(node: object) -> str | None:
    if isinstance(node, ast.ColumnRef):
        fields = node.fields or ()
        ok = len(fields) == 1 and isinstance(fields[0], ast.String)
        return None if ok else "a column that is not plain"
    if isinstance(node, ast.ParamRef):
        return None
    if isinstance(node, ast.A_Const):
        literal = (ast.Integer, ast.Float, ast.String, ast.Boolean)
        return None if node.isnull or isinstance(node.val, literal) else "an odd literal"
    if isinstance(node, ast.TypeCast) and node.typeName is not None:
        names = [n.sval for n in node.typeName.names or () if isinstance(n, ast.String)]
        if names[:1] == ["pg_catalog"]:
            names = names[1:]
        if len(names) != 1 or names[0] not in ELECTRIC_CAST_TYPES:
            return f"a cast to {names}"
        if node.typeName.typmods or node.typeName.arrayBounds:
            return "a cast with type modifiers"
        if not isinstance(node.arg, ast.ColumnRef | ast.A_Const):
            return "a cast of something other than a column or literal"
        return _value_problem(node.arg)
    return f"{type(node).__name__} as a value"


def _tree_problem(node: object) -> str | None:
    if isinstance(node, ast.BoolExpr):
        if node.boolop == BoolExprType.NOT_EXPR:
            return "a NOT (Electric 1.0.x fails on it)"
        for arg in node.args or ():
            if problem := _tree_problem(arg):
                return problem
        return None
    if isinstance(node, ast.NullTest):
        return _value_problem(node.arg)
    if isinstance(node, ast.BooleanTest):  # IS [NOT] TRUE/FALSE/UNKNOWN: both parsers have it
        return _tree_problem(node.arg)
    if isinstance(node, ast.A_Expr):
        names = [n.sval for n in node.name or () if isinstance(n, ast.String)]
        if node.kind not in OPERATORS or len(names) != 1 or names[0] not in OPERATORS[node.kind]:
            return f"operator {node.kind} {names}"
        rexpr = node.rexpr if isinstance(node.rexpr, tuple) else (node.rexpr,)
        problems = [_value_problem(value) for value in (node.lexpr, *rexpr)]
        return next((p for p in problems if p), None)
    if isinstance(node, ast.A_Const) and isinstance(node.val, ast.Boolean):
        return None
    if isinstance(node, ast.ColumnRef | ast.TypeCast):
        return _value_problem(node)
    return f"{type(node).__name__} as a condition"


def _form_problem(text: str) -> str | None:
    """Casts as `::`, no NOT but NOT IN/LIKE/ILIKE/BETWEEN and IS NOT, AND/OR operands in ()."""
    try:
        tokens = scan(text)
    except ParseError as error:
        return f"does not scan: {error}"
    names = [t.name for t in tokens]
    between = 0
    for i, name in enumerate(names):
        before = names[i - 1] if i else None
        after = names[i + 1] if i + 1 < len(names) else None
        if name in ("CAST", "SQL_COMMENT", "C_COMMENT"):
            return f"{name} in the text"
        if name == "NOT" and before != "IS" and after not in ("IN_P", "LIKE", "ILIKE", "BETWEEN"):
            return "a NOT that negates a condition"
        if name == "BETWEEN":
            between += 1
        elif name == "AND" and between:
            between -= 1
        elif name in ("AND", "OR") and (before != "ASCII_41" or after != "ASCII_40"):
            return f"an {name} whose operands are not both in parentheses"
        elif name == "ASCII_40" and before not in OPENS_OPERAND and after != "ASCII_45":
            return "a parenthesis around a value"
    return None


def electric_where_problem(text: str) -> str | None:
    """None when `text` is a where Electric supports, written in the gateway's form."""
    try:
        node = parse_expression(text)
    except ExpressionError as error:
        return f"does not parse: {error.message}"
    return _tree_problem(node) or _form_problem(text)


def is_electric_where(text: str) -> bool:
    return electric_where_problem(text) is None
