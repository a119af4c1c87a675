"""Push every NOT of a checked where down into the conditions it covers, so none is forwarded.

Electric parses a where with PostgreSQL's parser, so parentheses and spelling do not change
what it sees; but Electric 1.0.x fails on every `NOT` expression, with or without parentheses
(sync-service 1.0.10 `eval/parser.ex`: `to_binary_operators/1` has no clause for a one-argument
`not`; fixed in 1.0.22, PR #2862), answering 500. Its `NOT IN`, `NOT LIKE`, `NOT BETWEEN` and
`IS NOT NULL` are separate constructs that work. Each rewrite below is an identity of SQL's
three-valued logic (NULL stays NULL), so PostgreSQL and every Electric return the same rows:

    NOT (a AND b) -> (NOT a) OR (NOT b)         NOT (a OR b) -> (NOT a) AND (NOT b)
    NOT (x = y)   -> x <> y  (and < with >=, > with <=)
    NOT (x IN (..)) -> x NOT IN (..)            NOT (x LIKE p) -> x NOT LIKE p (ILIKE too)
    NOT (x BETWEEN a AND b) -> x NOT BETWEEN a AND b
    NOT (x IS NULL) -> x IS NOT NULL            NOT NOT a -> a
    NOT (x IS TRUE) -> x IS NOT TRUE (FALSE, UNKNOWN too)
    NOT (x IS DISTINCT FROM y) -> x IS NOT DISTINCT FROM y
    NOT true -> false                           NOT c -> c = false (c a boolean column or cast)

The input must already be in the subset `subset.check_subset` accepts.
"""

from __future__ import annotations

from typing import Final

from pglast import ast
from pglast.enums import A_Expr_Kind, BoolExprType, BoolTestType, NullTestType

from gateway.sql.expressions import ExpressionError
from gateway.sql.subset import operator_name

_NEGATED_OPERATOR: Final = {
    "=": "<>", "<>": "=", "<": ">=", ">=": "<", ">": "<=", "<=": ">",
    "~~": "!~~", "!~~": "~~", "~~*": "!~~*", "!~~*": "~~*",
}  # fmt: skip
_NEGATED_KIND: Final = {
    A_Expr_Kind.AEXPR_BETWEEN: (A_Expr_Kind.AEXPR_NOT_BETWEEN, "NOT BETWEEN"),
    A_Expr_Kind.AEXPR_NOT_BETWEEN: (A_Expr_Kind.AEXPR_BETWEEN, "BETWEEN"),
    A_Expr_Kind.AEXPR_DISTINCT: (A_Expr_Kind.AEXPR_NOT_DISTINCT, "="),
    A_Expr_Kind.AEXPR_NOT_DISTINCT: (A_Expr_Kind.AEXPR_DISTINCT, "="),
}
_NEGATED_TEST: Final = {
    BoolTestType.IS_TRUE: BoolTestType.IS_NOT_TRUE,
    BoolTestType.IS_NOT_TRUE: BoolTestType.IS_TRUE,
    BoolTestType.IS_FALSE: BoolTestType.IS_NOT_FALSE,
    BoolTestType.IS_NOT_FALSE: BoolTestType.IS_FALSE,
    BoolTestType.IS_UNKNOWN: BoolTestType.IS_NOT_UNKNOWN,
    BoolTestType.IS_NOT_UNKNOWN: BoolTestType.IS_UNKNOWN,
}


def push_negations(node: ast.Node) -> ast.Node:
    """An equivalent tree without NOT; `node` itself is left unchanged."""
    if isinstance(node, ast.BoolExpr):
        args = node.args or ()
        if node.boolop == BoolExprType.NOT_EXPR:
            return _negate(args[0])
        return ast.BoolExpr(boolop=node.boolop, args=tuple(push_negations(a) for a in args))
    if isinstance(node, ast.BooleanTest) and node.arg is not None:  # `(NOT a) IS TRUE`
        return ast.BooleanTest(arg=push_negations(node.arg), booltesttype=node.booltesttype)
    return node


def _negate(node: ast.Node) -> ast.Node:
    if isinstance(node, ast.BoolExpr):
        args = node.args or ()
        if node.boolop == BoolExprType.NOT_EXPR:
            return push_negations(args[0])
        dual = (
            BoolExprType.OR_EXPR if node.boolop == BoolExprType.AND_EXPR else BoolExprType.AND_EXPR
        )
        return ast.BoolExpr(boolop=dual, args=tuple(_negate(a) for a in args))
    if isinstance(node, ast.NullTest):
        flipped = (
            NullTestType.IS_NOT_NULL
            if node.nulltesttype == NullTestType.IS_NULL
            else NullTestType.IS_NULL
        )
        return ast.NullTest(arg=node.arg, nulltesttype=flipped, argisrow=False)
    if isinstance(node, ast.BooleanTest) and node.arg is not None:  # two-valued: NOT goes in
        flipped_test = _NEGATED_TEST[node.booltesttype]  # type: ignore[index]
        return ast.BooleanTest(arg=push_negations(node.arg), booltesttype=flipped_test)
    if isinstance(node, ast.A_Expr):
        return _negate_operation(node)
    if isinstance(node, ast.A_Const) and isinstance(node.val, ast.Boolean):
        return ast.A_Const(isnull=False, val=ast.Boolean(boolval=not node.val.boolval))
    # A boolean column or cast: `c = false` is NULL where `NOT c` is, and false/true alike.
    return ast.A_Expr(
        kind=A_Expr_Kind.AEXPR_OP,
        name=(ast.String(sval="="),),
        lexpr=node,
        rexpr=ast.A_Const(isnull=False, val=ast.Boolean(boolval=False)),
    )


def _negate_operation(node: ast.A_Expr) -> ast.A_Expr:
    kind = node.kind
    assert kind is not None
    if kind in _NEGATED_KIND:
        kind, name = _NEGATED_KIND[kind]
    else:  # comparisons, LIKE/ILIKE and IN (`=` for IN, `<>` for NOT IN)
        operator = operator_name(node)
        if operator not in _NEGATED_OPERATOR:
            raise ExpressionError(f"cannot negate operator {operator!r}")
        name = _NEGATED_OPERATOR[operator]
    return ast.A_Expr(kind=kind, name=(ast.String(sval=name),), lexpr=node.lexpr, rexpr=node.rexpr)
